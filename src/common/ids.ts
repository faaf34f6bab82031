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

export function randomUuid(): string {
  return uuidToBase64(randomUuidBytes());
}

export function isUuid(s: string): boolean {
  return /^[A-Za-z0-9_-]{22}$/.test(s) && Buffer.from(s, 'base64url').length === 16;
}
