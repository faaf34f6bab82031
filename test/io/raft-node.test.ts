import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isRaftkaError } from '../../src/common/errors.ts';
import { formatDir } from '../../src/io/meta-properties.ts';
import { parseVoters, startRaftNode } from '../../src/io/raft-node.ts';
import type { StateMachine } from '../../src/raft/types.ts';
import { tempDir, waitFor } from '../support/tmp.ts';

const sm = (): StateMachine & { applied: number[] } => {
  const applied: number[] = [];
  return { applied, apply: (i) => void applied.push(i), snapshot: () => new Uint8Array(0), restore: () => undefined };
};

void test('voter lists parse in the ID@HOST:PORT:DIRID form, with or without an address', () => {
  assert.deepEqual(parseVoters('1@127.0.0.1:9093:AAAAAAAAAAAAAAAAAAAAAA, 2@BBBBBBBBBBBBBBBBBBBBBB'), [
    { nodeId: 1, directoryId: 'AAAAAAAAAAAAAAAAAAAAAA', address: '127.0.0.1:9093' },
    { nodeId: 2, directoryId: 'BBBBBBBBBBBBBBBBBBBBBB', address: '' },
  ]);
  assert.throws(() => parseVoters('x@y:z'), (e) => isRaftkaError(e, 'INVALID_CONFIG'));
});

void test('a node refuses an unformatted dir and a dir of another cluster', async (t) => {
  const dir = tempDir(t);
  const base = { nodeId: 1, clusterId: 'c1', dir, listen: '127.0.0.1:0', voters: [], stateMachine: sm() };
  await assert.rejects(startRaftNode(base), (e) => isRaftkaError(e, 'INVALID_CONFIG') && /not formatted/.test(e.message));
  formatDir({ dir, clusterId: 'c2', nodeId: 1 });
  await assert.rejects(startRaftNode(base), (e) => isRaftkaError(e, 'INCONSISTENT_CLUSTER_ID'));
});

void test('a single-voter node elects itself, commits proposals, and keeps them across a restart', async (t) => {
  const dir = tempDir(t);
  const { meta } = formatDir({ dir, clusterId: 'c1', nodeId: 1 });
  const opts = {
    nodeId: 1, clusterId: 'c1', dir, listen: '127.0.0.1:0',
    voters: [{ nodeId: 1, directoryId: meta.directoryId, address: '' }],
    raftConfig: { electionTimeoutMs: 200, heartbeatIntervalMs: 20 },
  };
  const first = sm();
  let node = await startRaftNode({ ...opts, stateMachine: first });
  try {
    await waitFor('leadership', () => node.driver.isLeader, 5_000);
    const a = await node.driver.propose(new TextEncoder().encode('one'));
    const b = await node.driver.propose(new TextEncoder().encode('two'));
    assert.equal(b.index, a.index + 1);
    assert.ok((await node.driver.readIndex()) >= b.index);
  } finally {
    await node.close();
  }
  const second = sm();
  node = await startRaftNode({ ...opts, stateMachine: second });
  t.after(() => node.close());
  await waitFor('leadership after restart', () => node.driver.isLeader, 5_000);
  await node.driver.propose(new TextEncoder().encode('three'));
  // Everything committed before the restart is applied again, in order, then the new entry.
  assert.deepEqual(second.applied.slice(0, first.applied.length), first.applied);
  assert.ok(second.applied.length > first.applied.length);
});
