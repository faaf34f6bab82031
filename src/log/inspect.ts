// Read-only inspection of a partition directory (what kafka-dump-log does): walks every
// segment file and reports each batch or the first defect, without opening the log for
// writing, so it is safe on a directory a broker is using or one that failed recovery.
import { open, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { LOG_OVERHEAD, Off, readBatchHeader, validateBatchAt, type BatchHeader } from './batch.ts';

export type InspectedBatch =
  | { kind: 'batch'; file: string; position: number; header: BatchHeader; bytes: Buffer }
  | { kind: 'defect'; file: string; position: number; error: string };

export async function* inspectLogDir(dir: string): AsyncGenerator<InspectedBatch> {
  const files = (await readdir(dir)).filter((f) => /^\d{20}\.log$/.test(f)).sort();
  for (const file of files) yield* inspectSegment(join(dir, file));
}

export async function* inspectSegment(path: string): AsyncGenerator<InspectedBatch> {
  const fh = await open(path, 'r');
  try {
    const size = (await fh.stat()).size;
    const head = Buffer.alloc(LOG_OVERHEAD);
    let pos = 0;
    while (pos < size) {
      if (size - pos < LOG_OVERHEAD) {
        yield { kind: 'defect', file: path, position: pos, error: `${size - pos} trailing bytes` };
        return;
      }
      await fh.read(head, 0, LOG_OVERHEAD, pos);
      const batchSize = head.readInt32BE(Off.batchLength) + LOG_OVERHEAD;
      if (batchSize <= LOG_OVERHEAD || pos + batchSize > size) {
        yield { kind: 'defect', file: path, position: pos, error: `batch length ${batchSize} runs past the end of the file (${size} bytes)` };
        return;
      }
      const bytes = Buffer.allocUnsafe(batchSize);
      await fh.read(bytes, 0, batchSize, pos);
      try {
        validateBatchAt(bytes, 0);
      } catch (e) {
        yield { kind: 'defect', file: path, position: pos, error: (e as Error).message };
        return;
      }
      yield { kind: 'batch', file: path, position: pos, header: readBatchHeader(bytes), bytes };
      pos += batchSize;
    }
  } finally {
    await fh.close();
  }
}
