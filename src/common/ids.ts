// Ids in Kafka's shapes: UUIDs for topics, clusters and directories, printed in Kafka's
// URL-safe base64 form (22 chars) so they look like `kafka-storage random-uuid` output.
import { randomBytes } from 'node:crypto';

export function randomUuidBytes(): Buffer {
  const b = randomBytes(16);
  b[6] = (b[6]! & 0x0f) | 0x40;
  b[8] = (b[8]! & 0x3f) | 0x80;
  return b;
}

export function uuidToBase64(b: Buffer): string {
  return b.toString('base64url');
}

/**
 * A random id in Kafka's base64url form. Never one starting with '-', as Kafka's
 * Uuid.randomUuid: such an id passed on a command line (`--cluster-id -x…`) reads as an
 * option (1 id in 64 otherwise).
 */
export function randomUuid(): string {
  for (;;) {
    const id = uuidToBase64(randomUuidBytes());
    if (!id.startsWith('-')) return id;
  }
}

export function isUuid(s: string): boolean {
  return /^[A-Za-z0-9_-]{22}$/.test(s) && Buffer.from(s, 'base64url').length === 16;
}
