// Kafka's default partitioner, bit for bit: murmur2 vectors from Kafka's own
// UtilsTest.testMurmur2, toPositive, and KIP-480 sticky partitioning for null keys.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { DefaultPartitioner, murmur2, partitionForKey, toPositive } from '../../src/client/partitioner.ts';
import { assertProperty } from '../support/property.ts';

// org.apache.kafka.common.utils.UtilsTest#testMurmur2.
const KAFKA_VECTORS: Array<[Uint8Array, number]> = [
  [Buffer.from('21'), -973932308],
  [Buffer.from('foobar'), -790332482],
  [Buffer.from('a-little-bit-long-string'), -985981536],
  [Buffer.from('a-little-bit-longer-string'), -1486304829],
  [Buffer.from('lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8'), -58897971],
  [new Uint8Array([0x61, 0x62, 0x63]), 479470107],
];

test('murmur2 matches Kafka UtilsTest vectors', () => {
  for (const [bytes, want] of KAFKA_VECTORS) assert.equal(murmur2(bytes), want, Buffer.from(bytes).toString());
});

/**
 * A second, independent murmur2: Java's int arithmetic spelled out with BigInt mod 2^32,
 * so the Math.imul version is checked on every tail length (the Kafka vectors have tails
 * of 0, 2 and 3 bytes only).
 */
function murmur2Reference(data: Uint8Array): number {
  const M32 = 0xffffffffn;
  const mul = (a: bigint, b: bigint) => (a * b) & M32;
  const m = 0x5bd1e995n;
  let h = (0x9747b28cn ^ BigInt(data.length)) & M32;
  let i = 0;
  for (; i + 4 <= data.length; i += 4) {
    let k = BigInt(data[i]!) | (BigInt(data[i + 1]!) << 8n) | (BigInt(data[i + 2]!) << 16n) | (BigInt(data[i + 3]!) << 24n);
    k = mul(k, m);
    k ^= k >> 24n;
    k = mul(k, m);
    h = mul(h, m) ^ k;
  }
  const rest = data.length - i;
  if (rest === 3) h ^= BigInt(data[i + 2]!) << 16n;
  if (rest >= 2) h ^= BigInt(data[i + 1]!) << 8n;
  if (rest >= 1) h = mul(h ^ BigInt(data[i]!), m);
  h ^= h >> 13n;
  h = mul(h, m);
  h ^= h >> 15n;
  return Number(BigInt.asIntN(32, h));
}

test('the reference implementation agrees with the Kafka vectors, and murmur2 with it on every length', async () => {
  for (const [bytes, want] of KAFKA_VECTORS) assert.equal(murmur2Reference(bytes), want);
  await assertProperty(
    'murmur2 = reference',
    fc.property(fc.uint8Array({ maxLength: 40 }), (bytes) => murmur2(bytes) === murmur2Reference(bytes)),
    { numRuns: 500 },
  );
});

test('toPositive clears the sign bit like Utils.toPositive, and keys map to toPositive(murmur2) % n', () => {
  assert.equal(toPositive(-790332482), 1357151166);
  assert.equal(toPositive(-2147483648), 0);
  assert.equal(toPositive(2147483647), 2147483647);
  assert.equal(partitionForKey(Buffer.from('foobar'), 50), 1357151166 % 50);
  assert.equal(partitionForKey(Buffer.from('21'), 6), (-973932308 & 0x7fffffff) % 6);
});

test('murmur2 returns a signed int32 and is a pure function of the bytes', async () => {
  await assertProperty(
    'murmur2 int32',
    fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
      const h = murmur2(bytes);
      return Number.isInteger(h) && h >= -(2 ** 31) && h < 2 ** 31 && h === murmur2(Uint8Array.from(bytes));
    }),
  );
});

test('keyed records ignore stickiness; null keys stick to one partition until its batch is sealed', () => {
  let r = 0;
  const rolls = [0.1, 0.9, 0.5, 0.1, 0.7];
  const p = new DefaultPartitioner(() => rolls[r++ % rolls.length]!);
  const args = { topic: 't', key: null, numPartitions: 6, availablePartitions: [0, 1, 2, 3, 4, 5] };
  const first = p.partition(args);
  assert.equal(first, 0); // floor(0.1 * 6)
  for (let i = 0; i < 100; i++) assert.equal(p.partition(args), first);
  assert.equal(p.partition({ ...args, key: Buffer.from('foobar') }), partitionForKey(Buffer.from('foobar'), 6));
  // A batch of another partition sealing changes nothing.
  p.onNewBatch('t', 3, 6, args.availablePartitions);
  assert.equal(p.partition(args), first);
  // The sticky partition's batch sealed: switch, never back to the same one.
  p.onNewBatch('t', first, 6, args.availablePartitions);
  const second = p.partition(args);
  assert.notEqual(second, first);
  assert.equal(second, 5); // [1..5][floor(0.9 * 5)]
  // Stickiness is per topic.
  assert.equal(p.partition({ ...args, topic: 'other' }), 3); // floor(0.5 * 6)
});

test('sticky choice prefers partitions with a leader', () => {
  const p = new DefaultPartitioner(() => 0.99);
  assert.equal(p.partition({ topic: 't', key: null, numPartitions: 6, availablePartitions: [2, 4] }), 4);
  // Even a random source that always says the same thing cannot pick the old one again.
  p.onNewBatch('t', 4, 6, [2, 4]);
  assert.equal(p.partition({ topic: 't', key: null, numPartitions: 6, availablePartitions: [2, 4] }), 2);
  p.onNewBatch('t', 2, 6, [2, 4]);
  assert.equal(p.partition({ topic: 't', key: null, numPartitions: 6, availablePartitions: [2, 4] }), 4);
});
