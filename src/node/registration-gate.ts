// A broker acts on metadata (opens its replicas, takes its leaderships) only from an image
// that holds this process's own registration [KIP-631: a broker publishes metadata once
// it has caught up past its registration record]. The controller writes a new
// incarnation's registration in the same batch that fences the old one (its leaderships
// moved, its ISR places taken), so no image from then on makes the process act on its
// predecessor's roles. An image from before may: restored at start, or even current with
// the quorum while the old incarnation's session still runs, it names this node leader
// at its old epoch. A node restarted after a power loss then led that epoch with a log
// cut to its fsynced length, and its followers truncated acknowledged records to match.
import type { MetadataImage } from '../metadata/image.ts';
import type { MetadataStateMachine } from '../metadata/state-machine.ts';

/**
 * Calls `apply` with every new image from the first one holding broker `brokerId`'s
 * registration under `incarnationId` on (`first` marks that one). Returns the
 * unsubscribe function.
 */
export function applyOnceRegistered(
  metadata: Pick<MetadataStateMachine, 'subscribe'>,
  brokerId: number,
  incarnationId: string,
  apply: (image: MetadataImage, first: boolean) => void,
): () => void {
  let registered = false;
  return metadata.subscribe((u) => {
    const first = !registered && u.image.broker(brokerId)?.incarnationId === incarnationId;
    if (first) registered = true;
    if (registered) apply(u.image, first);
  });
}
