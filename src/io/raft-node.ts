// Assembles one Raft quorum member from its parts: the formatted data dir
// (meta.properties), LevelDB storage, the pure core, the gRPC transport and the driver.
// The full broker node (node.ts, the cluster issue) builds on this; until then the test
// process in raft-node-process.ts runs it with a toy state machine.
import type { Server as GrpcServer } from '@grpc/grpc-js';
import { RaftkaError } from '../common/errors.ts';
import { systemClock, type Clock } from '../common/clock.ts';
import { systemRandom } from '../common/random.ts';
import { componentLogger, silentLogger, type Logger } from '../common/logger.ts';
import { RaftCore } from '../raft/core.ts';
import { RaftDriver } from '../raft/driver.ts';
import type { ClusterConfig, Message, NodeId, RaftConfig, StateMachine, VoterKey } from '../raft/types.ts';
import { checkMetaProperties, type MetaProperties } from './meta-properties.ts';
import { RaftStorage } from './raft-storage.ts';
import { RaftTransport } from './raft-transport.ts';
import { raftMessageCodec } from './raft-codec.ts';

export interface VoterAddress extends VoterKey {
  /** host:port of its Raft listener; '' while unknown (learned later via `setPeerAddress`). */
  readonly address: string;
}

/**
 * Parses Kafka's `controller.quorum.bootstrap`-style voter list with directory ids, as
 * `kafka-storage format --initial-controllers` takes it: `ID@HOST:PORT:DIRID,...`.
 * `ID@DIRID` leaves the address to be learned later.
 */
export function parseVoters(text: string): VoterAddress[] {
  return text
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .map((s) => {
      const m = /^(\d+)@(?:(.*):(\d+):)?([A-Za-z0-9_-]+)$/.exec(s);
      if (m === null) {
        throw new RaftkaError('INVALID_CONFIG', `Invalid voter ${JSON.stringify(s)}: expected ID@HOST:PORT:DIRECTORY_ID or ID@DIRECTORY_ID`);
      }
      return { nodeId: Number(m[1]), directoryId: m[4]!, address: m[2] !== undefined ? `${m[2]}:${m[3]}` : '' };
    });
}

export interface RaftNodeOptions {
  nodeId: NodeId;
  clusterId: string;
  /** The formatted metadata data dir. */
  dir: string;
  /** host:port for the Raft listener; port 0 picks one. */
  listen: string;
  /** The initial voters (used while the log holds no configuration). */
  voters: readonly VoterAddress[];
  stateMachine: StateMachine;
  raftConfig?: Partial<RaftConfig>;
  snapshotIntervalEntries?: number;
  clock?: Clock;
  logger?: Logger;
  /** Extra gRPC services on the Raft listener (the controller RPCs). */
  registerServices?: (server: GrpcServer) => void;
  /** A peer's incoming Raft stream ended (see RaftTransportOptions). */
  onPeerStreamClosed?: (nodeId: NodeId) => void;
}

export interface RaftNodeHandle {
  readonly meta: MetaProperties;
  readonly driver: RaftDriver;
  readonly transport: RaftTransport<Message>;
  readonly storage: RaftStorage;
  /** The bound Raft port. */
  readonly port: number;
  setPeerAddress(nodeId: NodeId, address: string): void;
  close(): Promise<void>;
}

export async function startRaftNode(opts: RaftNodeOptions): Promise<RaftNodeHandle> {
  const logger = opts.logger ?? silentLogger();
  const log = componentLogger(logger, 'raft-node', { nodeId: opts.nodeId });
  const clock = opts.clock ?? systemClock;
  // Refuses an unformatted dir and one formatted for another cluster or node.
  const meta = checkMetaProperties(opts.dir, { nodeId: opts.nodeId, clusterId: opts.clusterId });
  const self = opts.voters.find((v) => v.nodeId === opts.nodeId);
  if (self !== undefined && self.directoryId !== meta.directoryId) {
    // Not fatal: this disk is not the voter the quorum knows [KIP-853], so it runs as a
    // non-voting member until a voter change adds it with its new directory id.
    log.warn({ expected: self.directoryId, actual: meta.directoryId }, 'directory id differs from the configured voter; not voting');
  }
  const storage = await RaftStorage.open({ dir: opts.dir, directoryId: meta.directoryId, logger });
  const persisted = storage.loaded();
  const bootstrapConfig: ClusterConfig = {
    voters: opts.voters.map((v) => ({ nodeId: v.nodeId, directoryId: v.directoryId })),
    observers: [],
  };
  const core = new RaftCore({
    nodeId: opts.nodeId,
    directoryId: meta.directoryId,
    clusterId: opts.clusterId,
    bootstrapConfig,
    persisted,
    nowMs: clock.monotonicMs(),
    random: systemRandom,
    ...(opts.raftConfig ? { config: opts.raftConfig } : {}),
  });
  const transport = new RaftTransport<Message>({
    clusterId: opts.clusterId,
    nodeId: opts.nodeId,
    directoryId: meta.directoryId,
    listen: opts.listen,
    peers: new Map(opts.voters.filter((v) => v.nodeId !== opts.nodeId).map((v) => [v.nodeId, v.address])),
    codec: raftMessageCodec,
    // Membership follows the log's configuration, not the start-up list.
    isKnownPeer: (id) => {
      const c = core.clusterConfig();
      return id !== opts.nodeId && (c.voters.some((v) => v.nodeId === id) || c.observers.includes(id));
    },
    // `driver` is assigned below, before `transport.start()` lets any message in.
    onMessages: (_from, messages) => driver.receive(messages),
    ...(opts.registerServices ? { registerServices: opts.registerServices } : {}),
    ...(opts.onPeerStreamClosed ? { onPeerStreamClosed: opts.onPeerStreamClosed } : {}),
    logger,
  });
  const driver = new RaftDriver({
    core,
    persisted,
    store: storage,
    transport,
    stateMachine: opts.stateMachine,
    clock,
    logger,
    ...(opts.snapshotIntervalEntries !== undefined ? { snapshotIntervalEntries: opts.snapshotIntervalEntries } : {}),
  });
  let port: number;
  try {
    port = await transport.start();
  } catch (e) {
    await storage.close();
    throw e;
  }
  driver.start();
  log.info({ port, directoryId: meta.directoryId, clusterId: opts.clusterId }, 'raft node started');
  const d = driver;
  return {
    meta,
    driver: d,
    transport,
    storage,
    port,
    setPeerAddress: (nodeId, address) => transport.addPeer(nodeId, address),
    close: async () => {
      await d.stop();
      await transport.close();
      await storage.close();
    },
  };
}
