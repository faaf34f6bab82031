// Record values for the load generators. A pool of distinct values is made once and
// reused round-robin, so the generator does no per-record allocation. Plain values are
// random uppercase letters (like kafka-producer-perf-test: they do not compress to
// nothing); JSON values are event-like documents that compress the way real JSON does.
// An e2e value starts with its send time (float64 ms since the epoch, sub-ms precision,
// comparable across worker threads).

export const STAMP_BYTES = 8;
const POOL_SIZE = 64;

function randomLetters(size: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(size);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    b[i] = 65 + (x % 26);
  }
  return b;
}

function jsonValue(size: number, i: number): Buffer {
  const doc = {
    id: i,
    user: `user-${(i * 7919) % 1000}`,
    event: ['page_view', 'click', 'add_to_cart', 'purchase'][i % 4],
    path: `/products/${i % 50}`,
    ua: 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36',
    tags: ['a', 'b', 'c'],
  };
  let s = JSON.stringify(doc);
  while (s.length < size) s += ',' + JSON.stringify({ ...doc, seq: s.length });
  return Buffer.from(s.slice(0, size));
}

/** `POOL_SIZE` distinct values of exactly `size` bytes. */
export function valuePool(size: number, json: boolean): Buffer[] {
  if (!Number.isSafeInteger(size) || size < 0) throw new RangeError(`record size must be a non-negative integer, got ${size}`);
  return Array.from({ length: POOL_SIZE }, (_, i) => (json ? jsonValue(size, i) : randomLetters(size, i + 1)));
}

/** Wall-clock ms with sub-ms precision, the same clock in every thread of the process. */
export function nowEpochMs(): number {
  return performance.timeOrigin + performance.now();
}

/** A copy of `template` (at least STAMP_BYTES long) stamped with `atMs`. */
export function stampedValue(template: Buffer, atMs: number): Buffer {
  return stampInto(Buffer.allocUnsafe(Math.max(STAMP_BYTES, template.length)), template, atMs);
}

/** Writes `template` stamped with `atMs` into `into` (at least STAMP_BYTES and template's length long). */
export function stampInto(into: Buffer, template: Buffer, atMs: number): Buffer {
  template.copy(into, STAMP_BYTES, STAMP_BYTES);
  into.writeDoubleLE(atMs, 0);
  return into;
}

export function readStamp(value: Buffer | null): number | undefined {
  return value !== null && value.length >= STAMP_BYTES ? value.readDoubleLE(0) : undefined;
}
