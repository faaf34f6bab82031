// `raftka log …`: offline tools for partition directories.
import type { Command } from 'commander';
import { basename } from 'node:path';
import { decodeRecords } from '../log/batch.ts';
import { inspectLogDir } from '../log/inspect.ts';

const CODECS = ['none', 'gzip', 'snappy', 'lz4', 'zstd'];

function printable(b: Buffer | null): string {
  if (b === null) return 'null';
  const s = b.toString('utf8');
  return /^[\x20-\x7e]*$/.test(s) ? JSON.stringify(s.length > 80 ? `${s.slice(0, 80)}…` : s) : `<${b.length} bytes>`;
}

export function registerLogCommands(program: Command): void {
  const log = program.command('log').description('inspect partition log directories');
  log
    .command('dump')
    .description('print every batch of a partition directory, checking each CRC (like kafka-dump-log)')
    .argument('<dir>', 'partition directory')
    .option('--records', 'also decode and print the records')
    .option('--json', 'one JSON object per batch')
    .action(async (dir: string, opts: { records?: boolean; json?: boolean }) => {
      let batches = 0;
      let defects = 0;
      for await (const item of inspectLogDir(dir)) {
        if (item.kind === 'defect') {
          defects++;
          if (opts.json) console.log(JSON.stringify({ defect: item.error, file: item.file, position: item.position }));
          else console.log(`DEFECT in ${basename(item.file)} at position ${item.position}: ${item.error}`);
          continue;
        }
        batches++;
        const h = item.header;
        const records = opts.records ? decodeRecords(item.bytes) : [];
        if (opts.json) {
          const { crc: _crc, ...fields } = h;
          console.log(JSON.stringify({ file: basename(item.file), position: item.position, ...fields, records: records.map((r) => ({ offset: r.offset, timestamp: r.timestamp, key: r.key?.toString('base64') ?? null, value: r.value?.toString('base64') ?? null })) }));
          continue;
        }
        console.log(
          `baseOffset: ${h.baseOffset} lastOffset: ${h.lastOffset} count: ${h.recordCount} position: ${item.position} size: ${h.sizeInBytes} ` +
            `leaderEpoch: ${h.partitionLeaderEpoch} compression: ${CODECS[h.compression] ?? h.compression} maxTimestamp: ${h.maxTimestamp} ` +
            `producerId: ${h.producerId} producerEpoch: ${h.producerEpoch} baseSequence: ${h.baseSequence}${h.isControl ? ' control' : ''}${h.isTransactional ? ' transactional' : ''} crc: ok`,
        );
        for (const r of records) {
          const headers = r.headers.map((x) => `${x.key}=${printable(x.value)}`).join(',');
          console.log(`  | offset: ${r.offset} timestamp: ${r.timestamp} key: ${printable(r.key)} value: ${printable(r.value)}${headers ? ` headers: ${headers}` : ''}`);
        }
      }
      if (!opts.json) console.log(`${batches} batches, ${defects} defects`);
      if (defects > 0) process.exitCode = 3;
    });
}
