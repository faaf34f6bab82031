// A node's configuration: Kafka's broker/controller key names where Kafka has the same
// setting, parsed from a properties file and/or flags into a typed object. Topic-level
// defaults come from the `log.*` keys as in Kafka (log.segment.bytes → segment.bytes).
import { readFileSync } from 'node:fs';
import { RaftkaError } from './common/errors.ts';
import { boolDef, intDef, listDef, longDef, parseConfig, parseProperties, stringDef, type ConfigOf } from './common/config.ts';

export const NODE_CONFIG_DEFS = {
  'node.id': intDef(-1, 'This node id (unique in the cluster)', { min: 0 }),
  'process.roles': {
    ...listDef(['broker', 'controller'], 'broker, controller, or both'),
    validate: (v: readonly string[]) =>
      v.includes('broker') && v.every((r) => r === 'broker' || r === 'controller')
        ? undefined
        : 'expected broker or broker,controller (controller-only nodes are not supported)',
  },
  listeners: stringDef('CLIENT://127.0.0.1:9092,REPLICATION://127.0.0.1:0,CONTROLLER://127.0.0.1:0', 'NAME://host:port for CLIENT, REPLICATION and CONTROLLER'),
  'advertised.listeners': stringDef('', 'Addresses other nodes and clients use; defaults to the bound listeners'),
  'controller.quorum.voters': stringDef('', 'ID@HOST:PORT:DIRECTORY_ID,… of the Raft voters'),
  'log.dirs': stringDef('', 'The data directory (formatted with `raftka storage format`)'),
  'broker.rack': stringDef('', 'Rack of this broker, for rack-aware replica placement'),
  'broker.session.timeout.ms': intDef(9000, 'A broker that has not heartbeated this long is fenced', { min: 100 }),
  'broker.heartbeat.interval.ms': intDef(2000, 'How often a broker heartbeats to the controller', { min: 10 }),
  'replica.lag.time.max.ms': longDef(30_000, 'A follower not caught up for this long leaves the ISR', { min: 10 }),
  'replica.fetch.wait.max.ms': intDef(500, 'Long-poll wait of a follower fetch', { min: 0 }),
  'replica.fetch.max.bytes': intDef(1024 * 1024, 'Bytes per partition in a follower fetch', { min: 1024 }),
  'min.insync.replicas': intDef(1, 'Default min.insync.replicas of new topics', { min: 1 }),
  'default.replication.factor': intDef(1, 'Replication factor of topics created without one', { min: 1 }),
  'num.partitions': intDef(1, 'Partitions of topics created without a count', { min: 1 }),
  'unclean.leader.election.enable': boolDef(false, 'Default for topics: elect an out-of-sync replica rather than stay offline'),
  'controlled.shutdown.timeout.ms': intDef(10_000, 'Bound on moving leaderships away at SIGTERM', { min: 0 }),
  'log.segment.bytes': intDef(1024 * 1024 * 1024, 'Default segment.bytes', { min: 64 }),
  'log.retention.ms': longDef(7 * 24 * 3600 * 1000, 'Default retention.ms', { min: -1 }),
  'log.retention.bytes': longDef(-1, 'Default retention.bytes', { min: -1 }),
  'log.retention.check.interval.ms': longDef(300_000, 'How often retention and compaction run', { min: 10 }),
  'log.flush.before.ack': boolDef(true, 'Default flush.before.ack: fsync a write before acknowledging it'),
  'producer.id.expiration.ms': longDef(24 * 3600 * 1000, 'An idempotent producer with no batch for this long is forgotten by every partition', { min: 1 }),
  'producer.id.expiration.check.interval.ms': longDef(600_000, 'How often idle producer ids are expired', { min: 1 }),
  'group.min.session.timeout.ms': intDef(6000, 'Shortest session timeout a group member may ask for', { min: 1 }),
  'group.max.session.timeout.ms': intDef(1_800_000, 'Longest session timeout a group member may ask for', { min: 1 }),
  'group.initial.rebalance.delay.ms': intDef(3000, 'How long the first rebalance of an empty group waits for more members', { min: 0 }),
  'group.max.size': intDef(1000, 'Most members of one consumer group', { min: 1 }),
  'offsets.topic.num.partitions': intDef(12, 'Partitions of __consumer_offsets (fixed once it exists)', { min: 1 }),
  'offsets.topic.replication.factor': intDef(3, 'Replication factor of __consumer_offsets (capped at the live brokers when it is created)', { min: 1 }),
  'offsets.retention.minutes': longDef(7 * 24 * 60, 'Committed offsets of an empty group expire this long after it became empty', { min: 1 }),
  'raft.election.timeout.ms': intDef(1000, 'Raft election timeout (randomized in [T, 2T))', { min: 50 }),
  // Test-only hooks for the Jepsen suite (src/node/test-hooks.ts); empty means off.
  'test.fsync.ledger': stringDef('', 'Test only: file recording each segment file\'s last fsynced length (power-loss simulation)'),
  'test.clock.control': stringDef('', 'Test only: file holding the wall-clock skew in ms, re-read while running (clock faults)'),
  'test.replication.peer.addresses': stringDef('', 'Test only: ID@HOST:PORT,… replica fetch addresses overriding the advertised ones (fault proxies)'),
  'test.ports.file': stringDef('', 'Test only: file the node writes its bound listener ports to (JSON) once all listen'),
} as const;

export type NodeConfig = ConfigOf<typeof NODE_CONFIG_DEFS>;

export interface Listener {
  readonly name: 'CLIENT' | 'REPLICATION' | 'CONTROLLER';
  readonly host: string;
  readonly port: number;
}

export function parseListeners(text: string, key = 'listeners'): Map<Listener['name'], Listener> {
  const out = new Map<Listener['name'], Listener>();
  for (const part of text.split(',').map((s) => s.trim()).filter((s) => s !== '')) {
    const m = /^(CLIENT|REPLICATION|CONTROLLER):\/\/([^:/]*|\[[^\]]+\]):(\d+)$/.exec(part);
    if (!m) throw new RaftkaError('INVALID_CONFIG', `Invalid value ${JSON.stringify(part)} for configuration ${key}: expected NAME://host:port with NAME one of CLIENT, REPLICATION, CONTROLLER`);
    const port = Number(m[3]);
    if (port > 65535) throw new RaftkaError('INVALID_CONFIG', `Invalid port ${port} in ${key}`);
    out.set(m[1] as Listener['name'], { name: m[1] as Listener['name'], host: m[2] === '' ? '0.0.0.0' : m[2]!, port });
  }
  for (const need of ['CLIENT', 'REPLICATION'] as const) {
    if (!out.has(need)) throw new RaftkaError('INVALID_CONFIG', `Configuration ${key} needs a ${need} listener`);
  }
  return out;
}

/** Builds the node config from an optional properties file and overrides (flags). */
export function loadNodeConfig(file: string | undefined, overrides: Record<string, string> = {}): NodeConfig {
  let fromFile: Record<string, string> = {};
  if (file !== undefined) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (e) {
      throw new RaftkaError('INVALID_CONFIG', `Cannot read config file ${file}: ${(e as Error).message}`);
    }
    fromFile = parseProperties(text);
  }
  const cfg = parseConfig(NODE_CONFIG_DEFS, { ...fromFile, ...overrides });
  if (cfg['node.id'] < 0) throw new RaftkaError('INVALID_CONFIG', 'Configuration node.id is required');
  if (cfg['log.dirs'] === '') throw new RaftkaError('INVALID_CONFIG', 'Configuration log.dirs is required');
  const listeners = parseListeners(cfg.listeners);
  if (!listeners.has('CONTROLLER')) {
    // Broker-only nodes need one too: the Raft leader pushes the metadata log to it.
    throw new RaftkaError('INVALID_CONFIG', 'Configuration listeners needs a CONTROLLER listener (the Raft endpoint)');
  }
  if (cfg['advertised.listeners'] !== '') parseListeners(cfg['advertised.listeners'], 'advertised.listeners');
  if (cfg['controller.quorum.voters'] === '') throw new RaftkaError('INVALID_CONFIG', 'Configuration controller.quorum.voters is required');
  return cfg;
}

/** Topic-config defaults derived from the broker's log.* keys. */
export function topicDefaults(cfg: NodeConfig): Record<string, string> {
  return {
    'segment.bytes': String(cfg['log.segment.bytes']),
    'retention.ms': String(cfg['log.retention.ms']),
    'retention.bytes': String(cfg['log.retention.bytes']),
    'flush.before.ack': String(cfg['log.flush.before.ack']),
  };
}
