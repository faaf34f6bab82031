import { uuidToBase64 } from '../../src/common/ids.ts';

/** A valid (version 4) UUID in the wire's base64 form, distinct for each `n`: readable test ids. */
export function testUuid(n: number): string {
  const b = Buffer.alloc(16);
  b.writeUInt32BE(n, 12);
  b[6] = 0x40;
  b[8] = 0x80;
  return uuidToBase64(b);
}
