// Large buffers for log reads, lent and given back. A consumer fetch reads up to a
// megabyte per partition from a segment file into a buffer whose bytes live only until
// the Fetch response is encoded (the encoder copies them). Allocating a new one per read
// made V8 count a megabyte of external memory per fetch, and external memory growth is
// what starts a major GC: under consume load a broker ran one every ~150 ms and spent
// half its CPU marking (perf record; 107 Mark-Compacts in ~25 s, --trace-gc). With the
// read buffer lent from here and given back once the response is encoded, interleaved
// runs read 144-181 MB/s instead of 117-130 on about a third less broker CPU. Batches
// the tail cache joins for one read are put in a lent buffer too (log/partition-log.ts).
//
// Giving a buffer back is only for a holder that knows no one else uses its bytes any
// more: the Fetch response encoder (server/client-api.ts) and the replica fetch server
// once a response is written (io/replica-fetch-tcp.ts). A buffer never given back (the
// gRPC replica transport of the tests, a cancelled call) is simply garbage, as before.
// The follower's replica fetch client assembles response frames in a pool of its own the
// same way, given back once the fetcher has appended the records.

/** Reads up to a default max.partition.fetch.bytes, plus the index step a read starts before its offset. */
export const READ_BUFFER_BYTES = 1024 * 1024 + 64 * 1024;
/** Idle buffers kept (each READ_BUFFER_BYTES): they count in a broker's resident memory for good. */
export const READ_BUFFERS_KEPT = 4;
/** Below this a read takes an ordinary allocation (Node's pool serves small ones cheaply). */
const POOLED_MIN_BYTES = 64 * 1024;

export class ReadBufferPool {
  private readonly idle: Buffer[] = [];
  /** The buffers lent out and not yet given back, by backing store. */
  private readonly lent = new WeakMap<ArrayBufferLike, Buffer>();

  constructor(
    readonly bufferBytes = READ_BUFFER_BYTES,
    readonly kept = READ_BUFFERS_KEPT,
  ) {}

  /** A buffer of at least `size` bytes (exactly `size` when it is not a pooled one). */
  acquire(size: number): Buffer {
    if (size < POOLED_MIN_BYTES || size > this.bufferBytes) return Buffer.allocUnsafe(size);
    // allocUnsafeSlow: a backing store of its own, so the buffer's identity is its store.
    const buf = this.idle.pop() ?? Buffer.allocUnsafeSlow(this.bufferBytes);
    this.lent.set(buf.buffer, buf);
    return buf;
  }

  /**
   * Gives back the buffer under `view` (any view of a buffer this pool lent). Views of
   * other memory, and a second give-back of the same buffer, are ignored.
   */
  release(view: Uint8Array): void {
    const buf = this.lent.get(view.buffer);
    if (buf === undefined) return;
    this.lent.delete(view.buffer);
    if (this.idle.length < this.kept) this.idle.push(buf);
  }

  /** Buffers waiting to be lent again (tests, inspection). */
  get idleCount(): number {
    return this.idle.length;
  }
}

/** The process's pool: log reads take from it; the Fetch encoder and the replica fetch server give back. */
export const readBuffers = new ReadBufferPool();
