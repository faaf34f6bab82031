// The clean-shutdown marker: taken once (removed as it is read), and anything short of a
// complete, valid marker reads as an unclean stop.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CLEAN_SHUTDOWN_FILE, takeCleanShutdown, writeCleanShutdown } from '../../src/log/clean-shutdown.ts';
import { createLogger } from '../../src/common/logger.ts';
import { tempDir } from '../support/tmp.ts';

function capturingLogger(): { logger: ReturnType<typeof createLogger>; lines: Array<{ msg: string; err?: string }> } {
  const lines: Array<{ msg: string; err?: string }> = [];
  const logger = createLogger({ level: 'warn', destination: { write: (s: string) => void lines.push(JSON.parse(s) as { msg: string; err?: string }) } });
  return { logger, lines };
}

test('a written marker is taken once: its broker epoch, then -1', async (t) => {
  const dir = tempDir(t);
  const { logger, lines } = capturingLogger();
  assert.equal(await takeCleanShutdown(dir, logger), -1, 'no marker: the last stop was not clean');
  await writeCleanShutdown(dir, 17);
  assert.ok(existsSync(join(dir, CLEAN_SHUTDOWN_FILE)));
  assert.equal(await takeCleanShutdown(dir, logger), 17);
  assert.ok(!existsSync(join(dir, CLEAN_SHUTDOWN_FILE)), 'taking it removes it');
  assert.equal(await takeCleanShutdown(dir, logger), -1, 'a crash after this start must not pass for a clean stop');
  assert.deepEqual(lines, []);
});

test('a damaged or foreign marker reads as an unclean stop, is reported and removed', async (t) => {
  const cases: Array<[string, RegExp]> = [
    ['{"version":1,"brokerEpoch":', /JSON/],
    ['{"version":2,"brokerEpoch":5}', /expected \{"version":1/],
    ['{"version":1,"brokerEpoch":-3}', /non-negative integer/],
    ['{"version":1,"brokerEpoch":"5"}', /non-negative integer/],
    ['{"version":1,"brokerEpoch":1.5}', /non-negative integer/],
  ];
  for (const [text, why] of cases) {
    const dir = tempDir(t);
    const { logger, lines } = capturingLogger();
    writeFileSync(join(dir, CLEAN_SHUTDOWN_FILE), text);
    assert.equal(await takeCleanShutdown(dir, logger), -1, text);
    assert.ok(!existsSync(join(dir, CLEAN_SHUTDOWN_FILE)), text);
    assert.equal(lines.length, 1, text);
    assert.match(lines[0]!.msg, /clean-shutdown marker unreadable/);
    assert.match(lines[0]!.err ?? '', why, text);
  }
});

test('a marker write cut short (only its temp file on disk) reads as an unclean stop and leaves nothing behind', async (t) => {
  const dir = tempDir(t);
  const { logger } = capturingLogger();
  writeFileSync(join(dir, `${CLEAN_SHUTDOWN_FILE}.tmp`), '{"version":1,"brokerEpoch":4}');
  assert.equal(await takeCleanShutdown(dir, logger), -1);
  assert.ok(!existsSync(join(dir, `${CLEAN_SHUTDOWN_FILE}.tmp`)));
});
