import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BROKER_MALLOC_ENV, BROKER_NODE_FLAGS, brokerBundle, brokerLaunch } from '../../src/node/broker-bundle.ts';

const REPO = fileURLToPath(new URL('../../', import.meta.url));

test('the broker bundle is built under .cache/broker, named by its content, and runs the broker command', () => {
  const path = brokerBundle();
  assert.ok(existsSync(path));
  assert.equal(dirname(path), join(REPO, '.cache', 'broker'));
  assert.match(basename(path), /^broker-[0-9a-f]{16}\.mjs$/);
  assert.equal(brokerBundle(), path, 'built once per process');
  const help = execFileSync(process.execPath, [path, 'broker', '--help'], { encoding: 'utf8' });
  assert.match(help, /--config <file>/);
});

test('a bundled broker refuses a bad --set clearly (the bundle finds its proto files and config code)', () => {
  let err: { status: number; stderr: string } | undefined;
  try {
    execFileSync(process.execPath, [brokerBundle(), 'broker', '--set', 'no-equals-sign'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    err = e as { status: number; stderr: string };
  }
  assert.ok(err, 'the broker must exit with an error');
  assert.equal(err.status, 1);
  assert.match(err.stderr, /--set expects key=value, got "no-equals-sign"/);
});

test('brokerLaunch: flags, bundle entry, allocator settings unless the environment has its own', () => {
  const launch = brokerLaunch({ PATH: '/bin', MALLOC_ARENA_MAX: '4' });
  assert.deepEqual(launch.args, [...BROKER_NODE_FLAGS, brokerBundle()]);
  assert.equal(launch.env['MALLOC_ARENA_MAX'], '4');
  assert.equal(launch.env['MALLOC_MMAP_THRESHOLD_'], BROKER_MALLOC_ENV['MALLOC_MMAP_THRESHOLD_']);
  assert.equal(launch.env['PATH'], '/bin');
  const fromSource = brokerLaunch({ RAFTKA_BROKER_FROM_SOURCE: '1' });
  assert.deepEqual(fromSource.args.slice(0, BROKER_NODE_FLAGS.length + 2), [...BROKER_NODE_FLAGS, '--import', 'tsx']);
  assert.match(fromSource.args.at(-1)!, /src\/cli\/broker-main\.ts$/);
});
