// The metadata log's state machine, plugged into the Raft driver (src/raft/types.ts
// StateMachine). Every node — voter or broker-only observer — runs one: it decodes each
// committed entry, replays its records as one atomic batch into a new immutable image,
// and hands that image to its listeners (the broker reconciles its replicas from it; the
// controller, when active, learns what committed). Pure: no I/O, no clock.
//
// The image's `controllerEpoch` is the Raft term of the last applied entry: the term of
// the leader that wrote it, which is the active controller's epoch [KIP-595, KIP-631].
import type { Entry, Snapshot, StateMachine } from '../raft/types.ts';
import { decodeRecords } from './codec.ts';
import { MetadataDelta } from './delta.ts';
import { MetadataImage } from './image.ts';
import type { MetadataRecord } from './records.ts';
import { decodeSnapshot, encodeSnapshot } from './snapshot.ts';
import { RaftkaError } from '../common/errors.ts';

export interface MetadataUpdate {
  readonly image: MetadataImage;
  readonly previous: MetadataImage;
  /** The records replayed; null when the image came from a snapshot. */
  readonly records: readonly MetadataRecord[] | null;
}

export type MetadataListener = (update: MetadataUpdate) => void;

export class MetadataStateMachine implements StateMachine {
  private current: MetadataImage = MetadataImage.EMPTY;
  private readonly listeners = new Set<MetadataListener>();

  get image(): MetadataImage {
    return this.current;
  }

  /**
   * Calls `listener` with every new image, in log order, synchronously from apply() and
   * restore(). A listener must not throw: the error would stop the Raft driver's apply
   * loop, which is right for a bug and wrong for anything a listener can handle itself.
   * Returns the unsubscribe function.
   */
  subscribe(listener: MetadataListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  apply(index: number, entry: Entry): void {
    if (index <= this.current.offset) {
      throw new RaftkaError('CORRUPT_STORAGE', `metadata entry ${index} applied after ${this.current.offset}: entries must arrive once, in order`);
    }
    const previous = this.current;
    let records: MetadataRecord[] = [];
    // Config and no-op entries carry no metadata records, yet they move the image's
    // position and (for a new leader's no-op) its controller epoch.
    if (entry.kind === 'normal') {
      records = decodeRecords(entry.data, { where: `metadata log entry ${index}` });
      const delta = new MetadataDelta(previous);
      for (const r of records) {
        try {
          delta.replay(r);
        } catch (e) {
          if (e instanceof RaftkaError) throw new RaftkaError(e.errorName, `metadata log entry ${index}: ${e.message}`, { cause: e });
          throw e;
        }
      }
      this.current = delta.apply(index, entry.term);
    } else {
      this.current = previous.withPosition(index, entry.term);
    }
    this.emit({ image: this.current, previous, records });
  }

  snapshot(): Uint8Array {
    return encodeSnapshot(this.current);
  }

  restore(snapshot: Snapshot): void {
    const previous = this.current;
    const image = decodeSnapshot(snapshot.data);
    // The Raft snapshot metadata is authoritative for the position: the snapshot replaces
    // every entry up to meta.index.
    this.current = image.withPosition(snapshot.meta.index, snapshot.meta.term);
    this.emit({ image: this.current, previous, records: null });
  }

  private emit(update: MetadataUpdate): void {
    for (const l of this.listeners) l(update);
  }
}
