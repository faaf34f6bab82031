// Compression codecs by their Kafka attribute id. The log stores compressed batches as
// they arrive; only the cleaner and the SDK decompress. gzip comes with Node; snappy,
// lz4 and zstd are registered by the SDK's codec module (a later issue) through
// `registerCodec`, so the log layer has no hard dependency on native codec packages.
import { gzipSync, gunzipSync } from 'node:zlib';
import { RaftkaError } from '../common/errors.ts';

export const CompressionType = { none: 0, gzip: 1, snappy: 2, lz4: 3, zstd: 4 } as const;
export type CompressionName = keyof typeof CompressionType;

export interface Codec {
  compress(data: Buffer): Buffer;
  decompress(data: Buffer): Buffer;
}

const codecs = new Map<number, Codec>([
  [CompressionType.none, { compress: (d) => d, decompress: (d) => d }],
  [CompressionType.gzip, { compress: (d) => gzipSync(d), decompress: (d) => gunzipSync(d) }],
]);

export function registerCodec(type: number, codec: Codec): void {
  codecs.set(type, codec);
}

export function codecFor(type: number): Codec {
  const c = codecs.get(type);
  if (!c) throw new RaftkaError('UNSUPPORTED_VERSION', `compression codec ${type} is not available`);
  return c;
}

export function compressionTypeOf(name: string): number {
  if (!Object.hasOwn(CompressionType, name)) {
    throw new RaftkaError('INVALID_CONFIG', `unknown compression type ${JSON.stringify(name)}`);
  }
  return CompressionType[name as CompressionName];
}
