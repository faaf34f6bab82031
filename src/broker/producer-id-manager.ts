// Hands out idempotent producer ids for InitProducerId [KIP-98] from blocks the active
// controller allocates through the metadata log (AllocateProducerIds, one ProducerIds
// record per block) [KIP-730]. The controller answers only after the record commits and
// its nextProducerId only grows, so blocks never overlap across brokers, controller
// failovers or restarts; a broker that restarts simply asks for a fresh block (the rest
// of its old one is never used, which costs ids, not correctness).
//
// Like Kafka's RPCProducerIdManager, the next block is fetched in the background once
// the current one is 90% used, so InitProducerId rarely waits for the controller. One
// fetch at a time; concurrent callers share it.
import { RaftkaError } from '../common/errors.ts';
import type { Logger } from '../common/logger.ts';

export interface ProducerIdBlock {
  readonly start: number;
  readonly len: number;
}

export interface ProducerIdManagerOptions {
  /**
   * Asks the active controller for a block; rejects with a RaftkaError (NOT_CONTROLLER and
   * other retriable codes while the controller moves or this broker is registering).
   */
  allocate(): Promise<ProducerIdBlock>;
  /** How long `nextProducerId` keeps retrying before REQUEST_TIMED_OUT (default 10 s). */
  timeoutMs?: number;
  /** Pause between failed block requests (default 100 ms). */
  retryBackoffMs?: number;
  logger: Logger;
}

/** Fetch the next block once this fraction of the current one is used (Kafka: 0.9). */
const PREFETCH_FRACTION = 0.9;

export class ProducerIdManager {
  /** Blocks obtained and not yet used up, oldest first (at most the current and a prefetched one). */
  private readonly blocks: Array<{ next: number; end: number; len: number }> = [];
  private fetching: Promise<void> | undefined;
  private closed = false;

  constructor(private readonly opts: ProducerIdManagerOptions) {}

  /** A producer id no one else was or will be given. */
  async nextProducerId(): Promise<number> {
    const deadline = Date.now() + (this.opts.timeoutMs ?? 10_000);
    for (;;) {
      if (this.closed) throw new RaftkaError('BROKER_NOT_AVAILABLE', 'the broker is shutting down');
      const id = this.take();
      if (id !== undefined) return id;
      try {
        await this.fetch();
      } catch (e) {
        // Every failure is retried until the deadline: besides NOT_CONTROLLER, a broker
        // that is (re)registering is refused with BROKER_ID_NOT_REGISTERED or
        // STALE_BROKER_EPOCH for a moment, which its registration soon fixes.
        const left = deadline - Date.now();
        if (left <= 0) {
          throw new RaftkaError('REQUEST_TIMED_OUT', `no producer id block from the controller within ${this.opts.timeoutMs ?? 10_000} ms: ${(e as Error).message}`);
        }
        await new Promise((r) => setTimeout(r, Math.min(left, this.opts.retryBackoffMs ?? 100)));
      }
    }
  }

  private take(): number | undefined {
    while (this.blocks.length > 0 && this.blocks[0]!.next >= this.blocks[0]!.end) this.blocks.shift();
    const b = this.blocks[0];
    if (!b) return undefined;
    const id = b.next++;
    // Prefetch in the background when only the current block is left and it runs low.
    if (this.blocks.length === 1 && b.end - b.next <= Math.round(b.len * (1 - PREFETCH_FRACTION))) void this.fetch().catch(() => undefined);
    return id;
  }

  private fetch(): Promise<void> {
    this.fetching ??= this.opts
      .allocate()
      .then((block) => {
        if (!Number.isSafeInteger(block.start) || block.start < 0 || !Number.isInteger(block.len) || block.len <= 0) {
          throw new RaftkaError('UNKNOWN_SERVER_ERROR', `the controller sent an invalid producer id block ${JSON.stringify(block)}`);
        }
        this.blocks.push({ next: block.start, end: block.start + block.len, len: block.len });
        this.opts.logger.info({ start: block.start, len: block.len }, 'obtained a producer id block');
      })
      .finally(() => {
        this.fetching = undefined;
      });
    return this.fetching;
  }

  close(): void {
    this.closed = true;
  }
}
