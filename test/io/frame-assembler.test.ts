// The replica fetch client's framing: frames come out whole and unchanged however the
// byte stream is cut into reads, even though every read lands in the same reused buffer;
// a length past the bound is an error, not an allocation.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { assertProperty } from '../support/property.ts';
import { FrameAssembler } from '../../src/io/replica-fetch-tcp.ts';
import { MESSAGE_BYTES_MAX } from '../../src/proto/rpc.ts';

function frame(body: Buffer): Buffer {
  const head = Buffer.alloc(4);
  head.writeUInt32BE(body.length, 0);
  return Buffer.concat([head, body]);
}

test('frame assembler: whole frames from any cut of the stream into one reused read buffer', async () => {
  await assertProperty(
    'frames survive any read boundaries',
    fc.property(
      fc.array(fc.uint8Array({ minLength: 5, maxLength: 3000 }), { minLength: 1, maxLength: 20 }),
      fc.array(fc.integer({ min: 1, max: 4096 }), { minLength: 1, maxLength: 50 }),
      (bodies, cuts) => {
        const stream = Buffer.concat(bodies.map((b) => frame(Buffer.from(b))));
        const scratch = Buffer.alloc(4096);
        const a = new FrameAssembler();
        const got: Buffer[] = [];
        let pos = 0;
        let i = 0;
        while (pos < stream.length) {
          const n = Math.min(cuts[i++ % cuts.length]!, stream.length - pos);
          stream.copy(scratch, 0, pos, pos + n);
          assert.equal(a.push(scratch, n, (body) => got.push(body)), undefined);
          scratch.fill(0xee); // the next read overwrites the buffer
          pos += n;
        }
        assert.deepEqual(got.map((b) => b.toString('hex')), bodies.map((b) => Buffer.from(b).toString('hex')));
      },
    ),
  );
});

test('frame assembler: a length outside [5, MESSAGE_BYTES_MAX] is refused', () => {
  const big = Buffer.alloc(4);
  big.writeUInt32BE(MESSAGE_BYTES_MAX + 1, 0);
  assert.match(new FrameAssembler().push(big, 4, () => assert.fail('no frame')) ?? '', /outside/);
  assert.match(new FrameAssembler().push(Buffer.from([0, 0, 0, 4]), 4, () => assert.fail('no frame')) ?? '', /outside/);
});
