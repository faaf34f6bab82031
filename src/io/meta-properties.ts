// meta.properties: the identity a data directory is formatted with, Kafka style
// (`kafka-storage format`). A directory is formatted once, with a cluster id, the node
// id and a fresh directory id. A node refuses to start on a directory that was never
// formatted (it would otherwise start an empty log as if it were a fresh cluster) or on
// one formatted for another cluster or node. The directory id is what makes a voter
// whose disk was wiped distinguishable from the voter it was before [KIP-853]: a
// re-format mints a new directory id.
//
// The file is written to a temp name, fsynced, renamed into place and the directory
// fsynced, so a crash during format leaves either no file or a complete one.
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { RaftkaError } from '../common/errors.ts';
import { isUuid, randomUuid } from '../common/ids.ts';
import { parseProperties } from '../common/config.ts';

export const META_PROPERTIES = 'meta.properties';
/** Version 1 is Kafka's KRaft meta.properties version (cluster.id, node.id, directory.id). */
export const META_VERSION = 1;

export interface MetaProperties {
  readonly version: number;
  readonly clusterId: string;
  readonly nodeId: number;
  readonly directoryId: string;
}

export function metaPropertiesPath(dir: string): string {
  return join(dir, META_PROPERTIES);
}

function corrupt(path: string, why: string, cause?: unknown): RaftkaError {
  return new RaftkaError('CORRUPT_STORAGE', `${path} is unreadable: ${why}`, cause === undefined ? {} : { cause });
}

/** The directory's meta.properties, or undefined when the directory is not formatted. */
export function readMetaProperties(dir: string): MetaProperties | undefined {
  const path = metaPropertiesPath(dir);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw corrupt(path, (e as Error).message, e);
  }
  let props: Record<string, string>;
  try {
    props = parseProperties(text);
  } catch (e) {
    throw corrupt(path, (e as Error).message, e);
  }
  const version = Number(props['version']);
  if (version !== META_VERSION) throw corrupt(path, `unsupported version ${JSON.stringify(props['version'])}`);
  const clusterId = props['cluster.id'];
  if (clusterId === undefined || clusterId === '') throw corrupt(path, 'cluster.id is missing');
  const nodeIdText = props['node.id'];
  const nodeId = Number(nodeIdText);
  if (nodeIdText === undefined || !Number.isSafeInteger(nodeId) || nodeId < 0) {
    throw corrupt(path, `node.id ${JSON.stringify(nodeIdText)} is not a non-negative integer`);
  }
  const directoryId = props['directory.id'];
  if (directoryId === undefined || !isUuid(directoryId)) {
    throw corrupt(path, `directory.id ${JSON.stringify(directoryId)} is not a UUID`);
  }
  return { version, clusterId, nodeId, directoryId };
}

export interface FormatOptions {
  readonly dir: string;
  readonly clusterId: string;
  readonly nodeId: number;
  /** Leave an already formatted directory as it is instead of failing. */
  readonly ignoreFormatted?: boolean;
  /** For tests; a fresh one is minted otherwise. */
  readonly directoryId?: string;
  readonly now?: Date;
}

export interface FormatResult {
  readonly meta: MetaProperties;
  /** False when the directory was already formatted and left as it was. */
  readonly formatted: boolean;
}

export function validateClusterId(clusterId: string): void {
  // Kafka requires a base64 UUID from `random-uuid`; any short token of the same
  // alphabet is accepted here so that tests and the dev cluster can pick readable ids.
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(clusterId)) {
    throw new RaftkaError('INVALID_CONFIG', `Invalid cluster id ${JSON.stringify(clusterId)}: expected 1-64 characters of [A-Za-z0-9_-]`);
  }
}

export function formatDir(opts: FormatOptions): FormatResult {
  validateClusterId(opts.clusterId);
  if (!Number.isSafeInteger(opts.nodeId) || opts.nodeId < 0) {
    throw new RaftkaError('INVALID_CONFIG', `Invalid node id ${opts.nodeId}: expected a non-negative integer`);
  }
  const existing = readMetaProperties(opts.dir);
  if (existing !== undefined) {
    if (opts.ignoreFormatted) return { meta: existing, formatted: false };
    throw new RaftkaError(
      'INVALID_CONFIG',
      `${metaPropertiesPath(opts.dir)} already exists (cluster.id=${existing.clusterId}, node.id=${existing.nodeId}); ` +
        'use --ignore-formatted to skip formatted directories',
    );
  }
  const meta: MetaProperties = {
    version: META_VERSION,
    clusterId: opts.clusterId,
    nodeId: opts.nodeId,
    directoryId: opts.directoryId ?? randomUuid(),
  };
  mkdirSync(opts.dir, { recursive: true });
  const text =
    `#\n#${(opts.now ?? new Date()).toUTCString()}\n` +
    `cluster.id=${meta.clusterId}\n` +
    `directory.id=${meta.directoryId}\n` +
    `node.id=${meta.nodeId}\n` +
    `version=${meta.version}\n`;
  const path = metaPropertiesPath(opts.dir);
  const tmp = `${path}.tmp`;
  const fd = openSync(tmp, 'w');
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  const dirFd = openSync(opts.dir, 'r');
  try {
    fsyncSync(dirFd);
  } finally {
    closeSync(dirFd);
  }
  return { meta, formatted: true };
}

/**
 * Start-up check: the directory must be formatted, for this cluster (when the caller
 * knows which) and for this node id. Returns the stored identity.
 */
export function checkMetaProperties(dir: string, expect: { nodeId: number; clusterId?: string }): MetaProperties {
  const meta = readMetaProperties(dir);
  if (meta === undefined) {
    throw new RaftkaError(
      'INVALID_CONFIG',
      `${dir} is not formatted (no ${META_PROPERTIES}); run \`raftka storage format\` first`,
    );
  }
  if (expect.clusterId !== undefined && meta.clusterId !== expect.clusterId) {
    throw new RaftkaError(
      'INCONSISTENT_CLUSTER_ID',
      `${metaPropertiesPath(dir)} has cluster.id=${meta.clusterId}, but this node is configured for cluster ${expect.clusterId}`,
    );
  }
  if (meta.nodeId !== expect.nodeId) {
    throw new RaftkaError(
      'INVALID_CONFIG',
      `${metaPropertiesPath(dir)} has node.id=${meta.nodeId}, but this node is configured as node ${expect.nodeId}`,
    );
  }
  return meta;
}
