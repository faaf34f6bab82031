// The clean-shutdown marker of a broker's data directory [KIP-966]. A broker writes it
// once every one of its logs has closed cleanly (flushed, indexes sealed), naming the
// broker epoch it was registered with; the next incarnation takes it at start and sends
// that epoch as previousBrokerEpoch. The controller then knows the restart lost nothing
// (the broker keeps its places in the ELRs of topics that do not fsync before
// acknowledging) and need not wait for the old registration's session to expire.
//
// Taking it removes it, durably, before the broker writes anything: a crash of the new
// incarnation must never pass for a clean stop.
import { join } from 'node:path';
import type { Logger } from '../common/logger.ts';
import { fsyncDir, readFileIfExists, unlinkIfExists, writeFileAtomic } from './checkpoint.ts';

export const CLEAN_SHUTDOWN_FILE = 'clean-shutdown';
const VERSION = 1;

export async function writeCleanShutdown(dataDir: string, brokerEpoch: number): Promise<void> {
  await writeFileAtomic(join(dataDir, CLEAN_SHUTDOWN_FILE), `${JSON.stringify({ version: VERSION, brokerEpoch })}\n`);
}

/**
 * The broker epoch of the clean shutdown this directory records, or -1 when the last
 * stop was not clean (no marker, or one that cannot be read: treated as unclean, the
 * safe reading). The marker is gone when this resolves.
 */
export async function takeCleanShutdown(dataDir: string, logger: Logger): Promise<number> {
  const path = join(dataDir, CLEAN_SHUTDOWN_FILE);
  // A write cut short by a crash leaves only its temp file, which proves nothing.
  await unlinkIfExists(`${path}.tmp`);
  const text = await readFileIfExists(path);
  if (text === undefined) return -1;
  let epoch = -1;
  try {
    const m = JSON.parse(text) as { version?: unknown; brokerEpoch?: unknown };
    if (m.version !== VERSION || typeof m.brokerEpoch !== 'number' || !Number.isSafeInteger(m.brokerEpoch) || m.brokerEpoch < 0) {
      throw new Error(`expected {"version":${VERSION},"brokerEpoch":<non-negative integer>}`);
    }
    epoch = m.brokerEpoch;
  } catch (e) {
    logger.warn({ file: path, err: (e as Error).message }, 'clean-shutdown marker unreadable; treating the last stop as unclean');
  }
  await unlinkIfExists(path);
  await fsyncDir(dataDir);
  return epoch;
}
