// The active controller's logic [KIP-500, KIP-631]: a deterministic object that turns
// requests (and the passage of time) into metadata records plus the response to send
// once those records are committed. It does no I/O and reads no clock: `nowMs`
// (monotonic milliseconds) and the `Random` used for topic ids come in from the caller.
//
// ─── How an I/O shell drives it ─────────────────────────────────────────────────────
// The shell runs on every controller-capable node and follows the Raft leadership:
//  1. When this node becomes Raft leader at term T and its state machine has applied
//     every entry of earlier terms (e.g. its own no-op of term T is applied), call
//     `activate(stateMachine.image, T, now)` and propose the returned records.
//  2. For each request, call the handler. If `records` is non-empty, propose
//     `encodeRecords(records)` as ONE Raft entry, immediately and in call order (the
//     controller has already replayed them into its own view, so the next request sees
//     them, as KRaft's active controller does), and send `response` once that entry
//     commits. If `records` is empty, send `response` once every entry proposed so far
//     has committed (it may describe state that is not committed yet). A handler
//     throws only RaftkaError NOT_CONTROLLER (inactive) or INVALID_REQUEST (a
//     structurally malformed request, refused before anything changed): answer the
//     request with that code. Anything else thrown is a bug: deactivate.
//  3. Call `tick(now)` every ~100 ms (fences brokers whose session expired, rebalances
//     preferred leaders) and `brokerDisconnected(id, epoch, now)` when a broker's
//     heartbeat connection drops (fast failover), proposing what they return.
//  4. If a proposal fails (leadership lost, entry overwritten, timeout, too large), or Raft
//     leadership moves away: `deactivate()`, fail the pending responses with
//     NOT_CONTROLLER, and start over at step 1 when leading again. The speculative view
//     may hold records that will never commit; only a fresh activation from the
//     committed image is safe.
//
// Soft state that is not in the log (heartbeat times) is lost on failover; a new
// controller gives every registered broker a fresh session [KIP-631].
//
// ─── Broker lifecycle (as the image records it) ─────────────────────────────────────
//   (none) ──register──▶ fenced ──heartbeat(caughtUp, !wantFence)──▶ unfenced
//   unfenced ──session expired | brokerDisconnected | wantFence | controlled shutdown──▶ fenced
//   fenced | unfenced ──register (new incarnation; the old one's session ended or the
//                        restart is clean)──▶ fenced, with a higher broker epoch
//   fenced | unfenced ──unregister──▶ (none)
// Every transition to fenced (or away) takes the broker out of every ISR and moves its
// leaderships in the same atomic batch (see partition-change.ts), so no committed image
// has a fenced leader or a fenced ISR member.
import { RaftkaError, assert, isRaftkaError, type ErrorName } from '../common/errors.ts';
import { isUuid, uuidToBase64 } from '../common/ids.ts';
import type { Random } from '../common/random.ts';
import { replayAll } from '../metadata/delta.ts';
import { MetadataImage, type PartitionState } from '../metadata/image.ts';
import {
  NO_LEADER,
  PRODUCER_ID_BLOCK_SIZE,
  record,
  type ConfigRecord,
  type MetadataRecord,
  type PartitionRecord,
} from '../metadata/records.ts';
import { isTopicConfigKey, parseTopicConfig } from '../metadata/topic-config.ts';
import { CONFIG_VALUE_LENGTH_MAX, REPLICAS_MAX } from '../metadata/codec.ts';
import { topicNameProblem, unifyCollisionChars } from './names.ts';
import { checkShape, list, obj, opt, type Shape } from './shape.ts';
import { planPartitionChange, type ElectionMode } from './partition-change.ts';
import { ReplicaLogEnds } from './replica-log-ends.ts';
import { hashString, placeReplicas, type ClusterLoad } from './placement.ts';
import {
  OK,
  apiError,
  controllerConfig,
  type AllocateProducerIdsRequest,
  type AllocateProducerIdsResponse,
  type AlterableConfig,
  type AlterConfigsResourceResult,
  type AlterPartitionRequest,
  type AlterPartitionResponse,
  type BrokerHeartbeatRequest,
  type BrokerHeartbeatResponse,
  type CreatableTopic,
  type CreatableTopicResult,
  type CreatePartitionsRequest,
  type CreatePartitionsResponse,
  type CreatePartitionsTopicResult,
  type CreateTopicsRequest,
  type CreateTopicsResponse,
  type ControlledShutdownRequest,
  type ControlledShutdownResponse,
  type ControllerConfig,
  type ControllerResult,
  type DeletableTopicResult,
  type DeleteTopicsRequest,
  type DeleteTopicsResponse,
  type ElectLeadersRequest,
  type ElectLeadersResponse,
  type ElectLeadersResult,
  type IncrementalAlterConfigsRequest,
  type IncrementalAlterConfigsResponse,
  type RegisterBrokerRequest,
  type RegisterBrokerResponse,
  type TickResponse,
  type UnregisterBrokerRequest,
} from './types.ts';

/** Limits on request sizes (every list is bounded). */
export const ENDPOINTS_MAX = 64;
/** Kafka allows 32767; the record codec bounds replica lists (a record every node must read). */
export const REPLICATION_FACTOR_MAX = REPLICAS_MAX;
export const RESOURCES_PER_REQUEST_MAX = 10_000;
export const STRING_LENGTH_MAX = 1024;


const ENDPOINT = obj({ name: 'string', host: 'string', port: 'int' });
const ASSIGNMENTS = opt(list(list('int', REPLICAS_MAX)));

/** The structure of each request (field types, list bounds); see shape.ts. */
const SHAPES = {
  registerBroker: obj({
    brokerId: 'int',
    incarnationId: 'string',
    endpoints: list(ENDPOINT, ENDPOINTS_MAX),
    rack: { nullable: 'string' },
    previousBrokerEpoch: opt('int'),
  }),
  brokerHeartbeat: obj({
    brokerId: 'int',
    brokerEpoch: 'int',
    currentMetadataOffset: 'int',
    caughtUp: 'bool',
    wantFence: 'bool',
    wantShutDown: 'bool',
    leaderlessReplicas: opt(list(obj({ topicId: 'string', partition: 'int', leaderEpoch: 'int', lastWrittenEpoch: 'int', logEndOffset: 'int' }))),
  }),
  controlledShutdown: obj({ brokerId: 'int', brokerEpoch: 'int' }),
  unregisterBroker: obj({ brokerId: 'int' }),
  createTopics: obj({
    topics: list(
      obj({
        name: 'string',
        numPartitions: opt('int'),
        replicationFactor: opt('int'),
        assignments: ASSIGNMENTS,
        configs: opt({ dict: 'string', max: 1000 }),
      }),
    ),
    validateOnly: opt('bool'),
  }),
  deleteTopics: obj({ topicNames: opt(list('string')), topicIds: opt(list('string')) }),
  createPartitions: obj({
    topics: list(obj({ name: 'string', count: 'int', assignments: ASSIGNMENTS })),
    validateOnly: opt('bool'),
  }),
  alterPartition: obj({
    brokerId: 'int',
    brokerEpoch: opt('int'),
    topicId: 'string',
    partition: 'int',
    leaderEpoch: 'int',
    partitionEpoch: 'int',
    newIsr: list('int', REPLICAS_MAX),
    newIsrBrokerEpochs: opt(list(obj({ brokerId: 'int', brokerEpoch: 'int' }), REPLICAS_MAX)),
  }),
  electLeaders: obj({
    electionType: { oneOf: ['preferred', 'unclean'] },
    partitions: opt(list(obj({ topic: 'string', partition: 'int' }))),
  }),
  incrementalAlterConfigs: obj({
    resources: list(
      obj({
        resourceType: { oneOf: ['topic', 'broker', 'cluster'] },
        resourceName: 'string',
        configs: list(obj({ name: 'string', op: { oneOf: ['set', 'delete'] }, value: { nullable: 'string' } }), 1000),
      }),
    ),
    validateOnly: opt('bool'),
  }),
  allocateProducerIds: obj({ brokerId: 'int', brokerEpoch: 'int' }),
} as const satisfies Record<string, Shape>;

interface Session {
  readonly brokerEpoch: number;
  /** Monotonic ms of the last heartbeat or registration; -Infinity once disconnected. */
  lastContactMs: number;
  /** The last heartbeat asked to stay fenced (so the broker is not merely starting). */
  readonly wantFence?: boolean;
}

export interface ActivateOptions {
  /**
   * How long each registered broker has to heartbeat this new controller before it is
   * fenced (default: broker.session.timeout.ms, as KRaft). A shell that wants fast
   * failover when the old controller's node died with its broker may pass a few
   * heartbeat intervals: live brokers find the new controller in that time, and the dead
   * one is fenced well before a full session.
   */
  readonly initialSessionMs?: number;
  /**
   * Cluster-level topic config defaults to write if the image has none for that key
   * (e.g. the dev cluster's min.insync.replicas=2), so every broker reads them from the
   * image rather than from its own configuration.
   */
  readonly clusterConfigDefaults?: Readonly<Record<string, string>>;
}

/** What changed for a broker: the broker records, then how its partitions follow. */
interface BrokerChange {
  readonly removeFromIsr: boolean;
  /** Unclean restart: leave the ELR of non-durable topics [KIP-966]. */
  readonly uncleanRestart: boolean;
}

export class QuorumController {
  readonly config: ControllerConfig;
  private readonly random: Random;
  private img: MetadataImage = MetadataImage.EMPTY;
  private active = false;
  private epoch = -1;
  private readonly sessions = new Map<number, Session>();
  private readonly replicaLogEnds = new ReplicaLogEnds();
  private lastRebalanceMs = 0;

  constructor(random: Random, config: ControllerConfig = controllerConfig()) {
    this.random = random;
    this.config = config;
  }

  get isActive(): boolean {
    return this.active;
  }

  /** The Raft term this controller was activated at (-1 when inactive). */
  get controllerEpoch(): number {
    return this.epoch;
  }

  /** The committed image plus every record this controller has handed out since. */
  get image(): MetadataImage {
    return this.img;
  }

  activate(
    committed: MetadataImage,
    controllerEpoch: number,
    nowMs: number,
    opts: ActivateOptions = {},
  ): ControllerResult<null> {
    const records: ConfigRecord[] = [];
    const present = committed.configsOf('cluster', '');
    const defaults = opts.clusterConfigDefaults ?? {};
    for (const name of Object.keys(defaults).sort()) {
      if (!present.has(name)) records.push(record({ type: 'config', resourceType: 'cluster', resourceName: '', name, value: defaults[name]! }));
    }
    // Validated before anything changes, so that a typo in a node's configuration stops
    // it at start-up rather than reaching the log.
    if (records.length > 0) parseTopicConfig(Object.fromEntries(records.map((r) => [r.name, r.value!])));
    assert(
      controllerEpoch >= committed.controllerEpoch,
      () => `controller epoch ${controllerEpoch} is older than the image's ${committed.controllerEpoch}`,
    );
    this.img = committed;
    this.active = true;
    this.epoch = controllerEpoch;
    this.sessions.clear();
    this.replicaLogEnds.clear();
    const timeoutMs = this.config['broker.session.timeout.ms'];
    const initialMs = Math.min(opts.initialSessionMs ?? timeoutMs, timeoutMs);
    for (const b of committed.brokers.values()) {
      this.sessions.set(b.brokerId, { brokerEpoch: b.brokerEpoch, lastContactMs: nowMs - (timeoutMs - initialMs) });
    }
    this.lastRebalanceMs = nowMs;
    this.append(records);
    return { records, response: null };
  }

  deactivate(): void {
    this.active = false;
    this.epoch = -1;
    this.sessions.clear();
    this.replicaLogEnds.clear();
    this.img = MetadataImage.EMPTY;
  }

  // ─── Broker lifecycle ─────────────────────────────────────────────────────────────

  registerBroker(req: RegisterBrokerRequest, nowMs: number): ControllerResult<RegisterBrokerResponse> {
    this.begin(req, SHAPES.registerBroker);
    const fail = (e: ErrorName, m: string): ControllerResult<RegisterBrokerResponse> => ({
      records: [],
      response: { ...apiError(e, m), brokerEpoch: -1 },
    });
    const problem = registrationProblem(req);
    if (problem !== undefined) return fail('INVALID_REQUEST', problem);
    const existing = this.img.broker(req.brokerId);
    if (existing !== undefined && existing.incarnationId === req.incarnationId) {
      // A retry of a registration we already made: same answer, nothing new to write.
      this.sessions.set(req.brokerId, { brokerEpoch: existing.brokerEpoch, lastContactMs: nowMs });
      return { records: [], response: { ...OK, brokerEpoch: existing.brokerEpoch } };
    }
    const cleanRestart = existing !== undefined && req.previousBrokerEpoch === existing.brokerEpoch;
    if (existing !== undefined && this.hasLiveSession(existing.brokerId, existing.brokerEpoch, nowMs) && !cleanRestart) {
      return fail(
        'DUPLICATE_BROKER_REGISTRATION',
        `Broker ${req.brokerId} is registered with incarnation ${existing.incarnationId}, whose session has not expired`,
      );
    }
    const brokerEpoch = this.img.lastBrokerEpoch + 1;
    const reg = record({
      type: 'registerBroker',
      brokerId: req.brokerId,
      incarnationId: req.incarnationId,
      brokerEpoch,
      endpoints: req.endpoints.map((e) => ({ name: e.name, host: e.host, port: e.port })),
      rack: req.rack ?? null,
      fenced: true,
    });
    // The new incarnation starts fenced, so the old one's leaderships and ISR places go
    // (a restarted process lost its in-memory replica state and must catch up first).
    const records = this.brokerChange([reg], req.brokerId, { removeFromIsr: true, uncleanRestart: !cleanRestart });
    this.sessions.set(req.brokerId, { brokerEpoch, lastContactMs: nowMs });
    return { records, response: { ...OK, brokerEpoch } };
  }

  brokerHeartbeat(req: BrokerHeartbeatRequest, nowMs: number): ControllerResult<BrokerHeartbeatResponse> {
    this.begin(req, SHAPES.brokerHeartbeat);
    const reply = (error: ErrorName, message: string | null, isFenced: boolean, shouldShutDown: boolean) => ({
      ...apiError(error, message),
      isCaughtUp: req.caughtUp === true,
      isFenced,
      shouldShutDown,
    });
    const b = this.img.broker(req.brokerId);
    const stale = this.staleBroker(req.brokerId, req.brokerEpoch);
    if (b === undefined || stale !== undefined) {
      return { records: [], response: reply(stale?.error ?? 'BROKER_ID_NOT_REGISTERED', stale?.errorMessage ?? null, true, false) };
    }
    this.sessions.set(b.brokerId, { brokerEpoch: b.brokerEpoch, lastContactMs: nowMs, wantFence: req.wantFence });
    // Before any election below (an unfencing may elect this broker unclean).
    this.replicaLogEnds.note(b.brokerId, b.brokerEpoch, req.leaderlessReplicas ?? []);
    if (req.wantShutDown) {
      this.endSession(b.brokerId);
      const records = this.fence(b.brokerId);
      return { records, response: reply('NONE', null, true, true) };
    }
    if (b.fenced && req.caughtUp && !req.wantFence) {
      const unfence = record({ type: 'unfenceBroker', brokerId: b.brokerId, brokerEpoch: b.brokerEpoch });
      const records = this.brokerChange([unfence], b.brokerId, { removeFromIsr: false, uncleanRestart: false });
      return { records, response: reply('NONE', null, false, false) };
    }
    if (!b.fenced && req.wantFence) {
      return { records: this.fence(b.brokerId), response: reply('NONE', null, true, false) };
    }
    return { records: [], response: reply('NONE', null, b.fenced, false) };
  }

  /**
   * Controlled shutdown: fences the broker, which moves its leaderships to other ISR
   * members and takes it out of every ISR (into the ELR where the ISR falls below
   * min.insync.replicas, so it can lead again if it is the last one with the data).
   * All in one atomic batch, so once it commits the broker leads nothing and may exit.
   */
  controlledShutdown(req: ControlledShutdownRequest, _nowMs: number): ControllerResult<ControlledShutdownResponse> {
    this.begin(req, SHAPES.controlledShutdown);
    const stale = this.staleBroker(req.brokerId, req.brokerEpoch);
    if (stale !== undefined) return { records: [], response: { ...stale, remainingLeaderships: -1 } };
    this.endSession(req.brokerId);
    const records = this.fence(req.brokerId);
    return { records, response: { ...OK, remainingLeaderships: this.img.partitionsLedBy(req.brokerId).length } };
  }

  /**
   * The broker's connection to the controller dropped. A dead process closes its
   * sockets long before its session times out, so fencing now is what makes failover
   * take a heartbeat round trip rather than broker.session.timeout.ms. A broker that is
   * in fact alive heartbeats again and is unfenced once caught up.
   */
  brokerDisconnected(brokerId: number, brokerEpoch: number, _nowMs: number): ControllerResult<{ fenced: boolean }> {
    this.requireActive();
    const b = this.img.broker(brokerId);
    if (b === undefined || b.brokerEpoch !== brokerEpoch) return { records: [], response: { fenced: false } };
    this.endSession(brokerId);
    if (b.fenced) return { records: [], response: { fenced: false } };
    return { records: this.fence(brokerId), response: { fenced: true } };
  }

  unregisterBroker(req: UnregisterBrokerRequest, _nowMs: number): ControllerResult<ReturnType<typeof apiError>> {
    this.begin(req, SHAPES.unregisterBroker);
    const b = this.img.broker(req.brokerId);
    if (b === undefined) return { records: [], response: apiError('BROKER_ID_NOT_REGISTERED', `Broker ${req.brokerId} is not registered`) };
    const unregister = record({ type: 'unregisterBroker', brokerId: b.brokerId, brokerEpoch: b.brokerEpoch });
    const records = this.brokerChange([unregister], b.brokerId, { removeFromIsr: true, uncleanRestart: false });
    this.sessions.delete(b.brokerId);
    this.replicaLogEnds.forget(b.brokerId);
    return { records, response: OK };
  }

  /**
   * Time passes: fence every unfenced broker whose session expired (its leaderships
   * move), and every leader.imbalance.check.interval.ms move leadership back to
   * preferred replicas that are in the ISR again.
   */
  tick(nowMs: number): ControllerResult<TickResponse> {
    this.requireActive();
    const records: MetadataRecord[] = [];
    const fencedBrokers: number[] = [];
    for (const b of [...this.img.brokers.values()].sort((x, y) => x.brokerId - y.brokerId)) {
      if (b.fenced || this.hasLiveSession(b.brokerId, b.brokerEpoch, nowMs)) continue;
      records.push(...this.fence(b.brokerId));
      fencedBrokers.push(b.brokerId);
    }
    let preferredElections = 0;
    if (this.config['auto.leader.rebalance.enable'] && nowMs - this.lastRebalanceMs >= this.config['leader.imbalance.check.interval.ms']) {
      this.lastRebalanceMs = nowMs;
      const rebalance = this.electAll('preferred');
      preferredElections = rebalance.length;
      this.append(rebalance);
      records.push(...rebalance);
    }
    return { records, response: { fencedBrokers, preferredElections } };
  }

  // ─── Topics ───────────────────────────────────────────────────────────────────────

  createTopics(req: CreateTopicsRequest, _nowMs: number): ControllerResult<CreateTopicsResponse> {
    this.begin(req, SHAPES.createTopics);
    const topics = req.topics ?? [];
    if (topics.length > RESOURCES_PER_REQUEST_MAX) {
      return {
        records: [],
        response: {
          topics: topics.map((t) => topicFailure(String(t.name), 'INVALID_REQUEST', `At most ${RESOURCES_PER_REQUEST_MAX} topics per request`)),
        },
      };
    }
    const counts = new Map<string, number>();
    for (const t of topics) counts.set(t.name, (counts.get(t.name) ?? 0) + 1);
    const records: MetadataRecord[] = [];
    const results: CreatableTopicResult[] = [];
    const base = this.img;
    // One request is one Raft entry: its partitions share one budget, so the entry stays
    // well below the Raft entry size limit.
    let budget = this.config['create.topic.partitions.max'];
    for (const t of topics) {
      if ((counts.get(t.name) ?? 0) > 1) {
        results.push(topicFailure(t.name, 'INVALID_REQUEST', `Topic ${t.name} appears more than once in the request`));
        continue;
      }
      const r = this.createTopic(t, budget);
      if ('error' in r) {
        results.push(r);
        continue;
      }
      budget -= r.result.numPartitions;
      // Appended even when only validating, so later topics of the request see this one
      // (name collisions, placement load); a validation run then restores the image.
      this.append(r.records);
      if (!req.validateOnly) records.push(...r.records);
      results.push(r.result);
    }
    if (req.validateOnly) this.img = base;
    return { records, response: { topics: results } };
  }

  private createTopic(t: CreatableTopic, budget: number): CreatableTopicResult | { records: MetadataRecord[]; result: CreatableTopicResult } {
    const name = t.name;
    const nameProblem = topicNameProblem(name);
    if (nameProblem !== undefined) return topicFailure(String(name), 'INVALID_TOPIC_EXCEPTION', nameProblem);
    if (this.img.topic(name) !== undefined) return topicFailure(name, 'TOPIC_ALREADY_EXISTS', `Topic '${name}' already exists.`);
    const unified = unifyCollisionChars(name);
    for (const other of this.img.topicIdsByName.keys()) {
      if (unifyCollisionChars(other) === unified) {
        return topicFailure(name, 'INVALID_TOPIC_EXCEPTION', `Topic '${name}' collides with existing topic: ${other}`);
      }
    }
    const configs = t.configs ?? {};
    const configProblem = topicConfigProblem(configs);
    if (configProblem !== undefined) return topicFailure(name, 'INVALID_CONFIG', configProblem);

    let assignments: number[][];
    const numPartitionsArg = t.numPartitions ?? -1;
    const rfArg = t.replicationFactor ?? -1;
    if (t.assignments !== undefined) {
      if (numPartitionsArg !== -1 || rfArg !== -1) {
        return topicFailure(name, 'INVALID_REQUEST', 'Both numPartitions or replicationFactor and replicasAssignments were set; give one');
      }
      const problem = this.assignmentProblem(t.assignments, 0, budget);
      if (problem !== undefined) return topicFailure(name, problem.error, problem.message);
      assignments = t.assignments.map((a) => [...a]);
    } else {
      const numPartitions = numPartitionsArg === -1 ? this.config['num.partitions'] : numPartitionsArg;
      const rf = rfArg === -1 ? this.config['default.replication.factor'] : rfArg;
      const max = this.config['create.topic.partitions.max'];
      if (!Number.isSafeInteger(numPartitions) || numPartitions < 1 || numPartitions > max) {
        return topicFailure(name, 'INVALID_PARTITIONS', `Number of partitions must be between 1 and ${max}, got ${numPartitions}`);
      }
      if (numPartitions > budget) {
        return topicFailure(name, 'INVALID_PARTITIONS', `One request may create at most ${max} partitions in all; ${budget} are left for this topic`);
      }
      if (!Number.isSafeInteger(rf) || rf < 1 || rf > REPLICATION_FACTOR_MAX) {
        return topicFailure(name, 'INVALID_REPLICATION_FACTOR', `Replication factor must be between 1 and ${REPLICATION_FACTOR_MAX}, got ${rf}`);
      }
      try {
        assignments = this.place(name, numPartitions, rf, []);
      } catch (e) {
        if (isRaftkaError(e)) return topicFailure(name, e.errorName, e.message);
        throw e;
      }
    }
    const topicId = this.newTopicId();
    const records: MetadataRecord[] = [record({ type: 'topic', name, topicId })];
    assignments.forEach((replicas, partition) => records.push(this.newPartition(topicId, partition, replicas)));
    for (const key of Object.keys(configs).sort()) {
      records.push(record({ type: 'config', resourceType: 'topic', resourceName: name, name: key, value: configs[key]! }));
    }
    return {
      records,
      result: { ...OK, name, topicId, numPartitions: assignments.length, replicationFactor: assignments[0]!.length },
    };
  }

  deleteTopics(req: DeleteTopicsRequest, _nowMs: number): ControllerResult<DeleteTopicsResponse> {
    this.begin(req, SHAPES.deleteTopics);
    const names = req.topicNames ?? [];
    const ids = req.topicIds ?? [];
    if (names.length + ids.length > RESOURCES_PER_REQUEST_MAX) {
      return { records: [], response: { topics: [{ ...apiError('INVALID_REQUEST', `At most ${RESOURCES_PER_REQUEST_MAX} topics per request`), name: '', topicId: '' }] } };
    }
    const results: DeletableTopicResult[] = [];
    const records: MetadataRecord[] = [];
    // A topic named twice (or by name and by id) is deleted once and reported each time.
    const removedByName = new Map<string, string>();
    const removedById = new Map<string, string>();
    const remove = (topicId: string, name: string): void => {
      const r = record({ type: 'removeTopic', topicId });
      this.append([r]);
      records.push(r);
      removedByName.set(name, topicId);
      removedById.set(topicId, name);
      results.push({ ...OK, name, topicId });
    };
    for (const name of names) {
      const t = this.img.topic(name);
      if (t !== undefined) remove(t.topicId, t.name);
      else if (removedByName.has(name)) results.push({ ...OK, name, topicId: removedByName.get(name)! });
      else results.push({ ...apiError('UNKNOWN_TOPIC_OR_PARTITION', `Topic ${name} does not exist`), name, topicId: '' });
    }
    for (const topicId of ids) {
      const t = this.img.topicById(topicId);
      if (t !== undefined) remove(t.topicId, t.name);
      else if (removedById.has(topicId)) results.push({ ...OK, name: removedById.get(topicId)!, topicId });
      else results.push({ ...apiError('UNKNOWN_TOPIC_ID', `Topic id ${topicId} does not exist`), name: '', topicId });
    }
    return { records, response: { topics: results } };
  }

  createPartitions(req: CreatePartitionsRequest, _nowMs: number): ControllerResult<CreatePartitionsResponse> {
    this.begin(req, SHAPES.createPartitions);
    const base = this.img;
    const records: MetadataRecord[] = [];
    const results: CreatePartitionsTopicResult[] = [];
    const seen = new Set<string>();
    let budget = this.config['create.topic.partitions.max'];
    for (const t of (req.topics ?? []).slice(0, RESOURCES_PER_REQUEST_MAX)) {
      const fail = (e: ErrorName, m: string): void => void results.push({ ...apiError(e, m), name: t.name });
      if (seen.has(t.name)) {
        fail('INVALID_REQUEST', `Topic ${t.name} appears more than once in the request`);
        continue;
      }
      seen.add(t.name);
      const topic = this.img.topic(t.name);
      if (topic === undefined) {
        fail('UNKNOWN_TOPIC_OR_PARTITION', `Topic ${t.name} does not exist`);
        continue;
      }
      const current = topic.partitions.length;
      const max = this.config['create.topic.partitions.max'];
      if (!Number.isSafeInteger(t.count) || t.count <= current) {
        fail('INVALID_PARTITIONS', `Topic currently has ${current} partitions, which is higher than or equal to the requested ${t.count}`);
        continue;
      }
      if (t.count - current > budget) {
        fail('INVALID_PARTITIONS', `At most ${max} partitions may be added in one request; ${budget} are left, asked for ${t.count - current}`);
        continue;
      }
      const rf = topic.partitions[0]!.replicas.length;
      let assignments: number[][];
      if (t.assignments !== undefined) {
        if (t.assignments.length !== t.count - current) {
          fail('INVALID_REPLICA_ASSIGNMENT', `Got ${t.assignments.length} assignments for ${t.count - current} new partitions`);
          continue;
        }
        const problem = this.assignmentProblem(t.assignments, rf, budget);
        if (problem !== undefined) {
          fail(problem.error, problem.message);
          continue;
        }
        assignments = t.assignments.map((a) => [...a]);
      } else {
        try {
          assignments = this.place(t.name, t.count - current, rf, topic.partitions.map((p) => p.replicas));
        } catch (e) {
          if (!isRaftkaError(e)) throw e;
          fail(e.errorName, e.message);
          continue;
        }
      }
      budget -= assignments.length;
      const recs = assignments.map((replicas, i) => this.newPartition(topic.topicId, current + i, replicas));
      this.append(recs);
      if (!req.validateOnly) records.push(...recs);
      results.push({ ...OK, name: t.name });
    }
    if (req.validateOnly) this.img = base;
    return { records, response: { topics: results } };
  }

  // ─── Partitions ───────────────────────────────────────────────────────────────────

  /**
   * ISR changes from a partition leader [KIP-497]. Fenced by leader epoch (only the
   * current leader may change the ISR) and by partition epoch (a leader must have seen
   * the latest partition state, e.g. that the controller removed a fenced follower,
   * before it proposes a new ISR). A replica may join only if it is registered and
   * unfenced (and at the epoch the leader saw, when given) [KIP-903].
   *
   * What the controller cannot check and the leader must: propose a replica only once
   * its log reaches max(high watermark, the leader's epoch start offset), and until the
   * answer arrives count it in the high watermark (Kafka's "maximal ISR") — the
   * controller may elect it the moment the change commits. test/controller/
   * durability.test.ts shows a lost acknowledged write when either rule is dropped.
   */
  alterPartition(req: AlterPartitionRequest, _nowMs: number): ControllerResult<AlterPartitionResponse> {
    this.begin(req, SHAPES.alterPartition);
    const p = this.img.partition(req.topicId, req.partition);
    const fail = (e: ErrorName, m: string): ControllerResult<AlterPartitionResponse> => ({
      records: [],
      response: {
        ...apiError(e, m),
        topicId: req.topicId,
        partition: req.partition,
        leader: p?.leader ?? NO_LEADER,
        leaderEpoch: p?.leaderEpoch ?? -1,
        partitionEpoch: p?.partitionEpoch ?? -1,
        isr: p?.isr ?? [],
      },
    });
    if (req.brokerEpoch !== undefined) {
      const stale = this.staleBroker(req.brokerId, req.brokerEpoch);
      if (stale !== undefined) return fail(stale.error, stale.errorMessage ?? '');
    }
    const topic = this.img.topicById(req.topicId);
    if (topic === undefined) return fail('UNKNOWN_TOPIC_ID', `Topic id ${req.topicId} does not exist`);
    if (p === undefined) return fail('UNKNOWN_TOPIC_OR_PARTITION', `Partition ${topic.name}-${req.partition} does not exist`);
    if (req.leaderEpoch < p.leaderEpoch) {
      return fail('FENCED_LEADER_EPOCH', `Leader epoch ${req.leaderEpoch} is older than the current ${p.leaderEpoch}`);
    }
    if (req.leaderEpoch > p.leaderEpoch) {
      return fail('UNKNOWN_LEADER_EPOCH', `Leader epoch ${req.leaderEpoch} is newer than the current ${p.leaderEpoch}`);
    }
    if (req.brokerId !== p.leader) {
      return fail('NOT_LEADER_OR_FOLLOWER', `Broker ${req.brokerId} is not the leader of ${topic.name}-${req.partition} (leader: ${p.leader})`);
    }
    if (req.partitionEpoch !== p.partitionEpoch) {
      return fail('INVALID_UPDATE_VERSION', `Partition epoch ${req.partitionEpoch} is not the current ${p.partitionEpoch}`);
    }
    const newIsr = req.newIsr ?? [];
    if (!Array.isArray(newIsr) || new Set(newIsr).size !== newIsr.length) return fail('INVALID_REQUEST', 'The new ISR repeats a broker');
    const notReplica = newIsr.filter((b) => !p.replicas.includes(b));
    if (notReplica.length > 0) return fail('INVALID_REQUEST', `Brokers ${notReplica.join(', ')} are not replicas of ${topic.name}-${req.partition}`);
    if (!newIsr.includes(p.leader)) return fail('INVALID_REQUEST', `The new ISR must hold the leader ${p.leader}`);
    for (const b of newIsr) {
      if (p.isr.includes(b)) continue;
      const reg = this.img.broker(b);
      if (reg === undefined || reg.fenced) return fail('INELIGIBLE_REPLICA', `Broker ${b} is ${reg === undefined ? 'not registered' : 'fenced'} and may not join the ISR`);
      const seenEpoch = req.newIsrBrokerEpochs?.find((x) => x.brokerId === b)?.brokerEpoch;
      if (seenEpoch !== undefined && seenEpoch !== -1 && seenEpoch !== reg.brokerEpoch) {
        return fail('INELIGIBLE_REPLICA', `Broker ${b} fetched with epoch ${seenEpoch}, but its registration is at epoch ${reg.brokerEpoch}`);
      }
    }
    const cfg = this.img.topicConfig(topic.name);
    const plan = planPartitionChange({
      partition: p,
      usable: (b) => this.img.isUnfenced(b),
      minInsyncReplicas: cfg['min.insync.replicas'],
      uncleanLeaderElectionEnable: cfg['unclean.leader.election.enable'],
      targetIsr: newIsr,
    });
    const records = plan.record === null ? [] : [plan.record];
    this.append(records);
    const a = plan.after;
    return {
      records,
      response: { ...OK, topicId: req.topicId, partition: req.partition, leader: a.leader, leaderEpoch: a.leaderEpoch, partitionEpoch: a.partitionEpoch, isr: a.isr },
    };
  }

  /** Admin ElectLeaders: preferred (back to replicas[0]) or unclean (offline partitions only). */
  electLeaders(req: ElectLeadersRequest, nowMs: number): ControllerResult<ElectLeadersResponse> {
    this.begin(req, SHAPES.electLeaders);
    const targets: { topic: string; partition: number }[] =
      req.partitions?.slice(0, RESOURCES_PER_REQUEST_MAX).map((x) => ({ topic: x.topic, partition: x.partition })) ??
      [...this.img.topicsById.values()].flatMap((t) => t.partitions.map((p) => ({ topic: t.name, partition: p.partition })));
    // Every plan is made against the same image and appended once: a partition named
    // twice is elected once and reported each time.
    const records: MetadataRecord[] = [];
    const results: ElectLeadersResult[] = [];
    const planned = new Map<string, number>();
    for (const { topic, partition } of targets) {
      const t = this.img.topic(topic);
      const p = t?.partitions[partition];
      const result = (e: ErrorName, m: string | null, leader: number): void =>
        void results.push({ ...apiError(e, m), topic, partition, leader });
      if (t === undefined || p === undefined) {
        result('UNKNOWN_TOPIC_OR_PARTITION', `Partition ${topic}-${partition} does not exist`, NO_LEADER);
        continue;
      }
      const key = `${t.topicId}:${p.partition}`;
      const already = planned.get(key);
      if (already !== undefined) {
        result(already === NO_LEADER ? 'ELIGIBLE_LEADERS_NOT_AVAILABLE' : 'NONE', null, already);
        continue;
      }
      if (req.electionType === 'preferred') {
        const preferred = p.replicas[0]!;
        if (p.leader === preferred) {
          result('ELECTION_NOT_NEEDED', `Preferred replica ${preferred} already leads ${topic}-${partition}`, p.leader);
          continue;
        }
        if (!p.isr.includes(preferred) || !this.img.isUnfenced(preferred)) {
          result('PREFERRED_LEADER_NOT_AVAILABLE', `Preferred replica ${preferred} is not an unfenced ISR member`, p.leader);
          continue;
        }
      } else if (p.leader !== NO_LEADER) {
        // Kafka: an unclean election for a partition that has a leader is not needed.
        result('ELECTION_NOT_NEEDED', `${topic}-${partition} has a leader (${p.leader})`, p.leader);
        continue;
      }
      const plan = this.plan(
        t.name,
        p,
        req.electionType === 'preferred'
          ? { election: 'preferred' }
          : {
              election: 'unclean',
              starting: (b) => this.isStarting(b, nowMs),
            },
      );
      if (plan.record !== null) records.push(plan.record);
      planned.set(key, plan.after.leader);
      if (plan.awaitingLogEnds !== undefined) {
        const brokers = plan.awaitingLogEnds.join(', ');
        result('ELIGIBLE_LEADERS_NOT_AVAILABLE', `Waiting for broker(s) ${brokers} to report where their logs of ${topic}-${partition} end (every heartbeat does); try again`, NO_LEADER);
      } else if (plan.after.leader === NO_LEADER) result('ELIGIBLE_LEADERS_NOT_AVAILABLE', 'No unfenced replica can lead', NO_LEADER);
      else result('NONE', null, plan.after.leader);
    }
    this.append(records);
    return { records, response: { results } };
  }

  // ─── Configs ──────────────────────────────────────────────────────────────────────

  incrementalAlterConfigs(req: IncrementalAlterConfigsRequest, _nowMs: number): ControllerResult<IncrementalAlterConfigsResponse> {
    this.begin(req, SHAPES.incrementalAlterConfigs);
    const records: MetadataRecord[] = [];
    const results: AlterConfigsResourceResult[] = [];
    const base = this.img;
    for (const res of (req.resources ?? []).slice(0, RESOURCES_PER_REQUEST_MAX)) {
      const fail = (e: ErrorName, m: string): void =>
        void results.push({ ...apiError(e, m), resourceType: res.resourceType, resourceName: res.resourceName });
      if (res.resourceType === 'topic' && this.img.topic(res.resourceName) === undefined) {
        fail('UNKNOWN_TOPIC_OR_PARTITION', `Topic ${res.resourceName} does not exist`);
        continue;
      }
      if (res.resourceType === 'cluster' && res.resourceName !== '') {
        fail('INVALID_REQUEST', 'The cluster resource has the empty name');
        continue;
      }
      if (res.resourceType === 'broker' && !/^\d{1,10}$/.test(res.resourceName)) {
        fail('INVALID_REQUEST', `Broker resource name ${JSON.stringify(res.resourceName)} is not a broker id`);
        continue;
      }
      if (res.resourceType !== 'topic' && res.resourceType !== 'cluster' && res.resourceType !== 'broker') {
        fail('INVALID_REQUEST', `Unknown resource type ${JSON.stringify(res.resourceType)}`);
        continue;
      }
      const merged = Object.fromEntries(this.img.configsOf(res.resourceType, res.resourceName));
      const recs: MetadataRecord[] = [];
      let problem: string | undefined;
      for (const c of res.configs ?? []) {
        problem = configOpProblem(c);
        if (problem !== undefined) break;
        if (c.op === 'set') merged[c.name] = c.value as string;
        else delete merged[c.name];
        recs.push(
          record({ type: 'config', resourceType: res.resourceType, resourceName: res.resourceName, name: c.name, value: c.op === 'set' ? (c.value as string) : null }),
        );
      }
      problem ??= topicConfigProblem(merged);
      if (problem !== undefined) {
        fail('INVALID_CONFIG', problem);
        continue;
      }
      if (!req.validateOnly) {
        this.append(recs);
        records.push(...recs);
        // A lower min.insync.replicas clears ELRs; enabling unclean election may elect
        // leaders for offline partitions [KIP-966].
        const topics = res.resourceType === 'topic' ? [this.img.topic(res.resourceName)!] : res.resourceType === 'cluster' ? [...this.img.topicsById.values()] : [];
        const changes: MetadataRecord[] = [];
        for (const t of topics) {
          for (const p of t.partitions) {
            const plan = this.plan(t.name, p, {});
            if (plan.record !== null) changes.push(plan.record);
          }
        }
        this.append(changes);
        records.push(...changes);
      }
      results.push({ ...OK, resourceType: res.resourceType, resourceName: res.resourceName });
    }
    if (req.validateOnly) this.img = base;
    return { records, response: { resources: results } };
  }

  // ─── Producer ids [KIP-730] ───────────────────────────────────────────────────────

  allocateProducerIds(req: AllocateProducerIdsRequest, _nowMs: number): ControllerResult<AllocateProducerIdsResponse> {
    this.begin(req, SHAPES.allocateProducerIds);
    const stale = this.staleBroker(req.brokerId, req.brokerEpoch);
    if (stale !== undefined) return { records: [], response: { ...stale, producerIdStart: -1, producerIdLen: 0 } };
    const start = this.img.nextProducerId;
    if (start + PRODUCER_ID_BLOCK_SIZE > Number.MAX_SAFE_INTEGER) {
      return { records: [], response: { ...apiError('UNKNOWN_SERVER_ERROR', 'Producer ids are exhausted'), producerIdStart: -1, producerIdLen: 0 } };
    }
    const r = record({ type: 'producerIds', brokerId: req.brokerId, brokerEpoch: req.brokerEpoch, nextProducerId: start + PRODUCER_ID_BLOCK_SIZE });
    this.append([r]);
    return { records: [r], response: { ...OK, producerIdStart: start, producerIdLen: PRODUCER_ID_BLOCK_SIZE } };
  }

  // ─── Internals ────────────────────────────────────────────────────────────────────

  /** Every request handler starts here: only the active controller answers, and only well-formed requests. */
  private begin(req: unknown, shape: Shape): void {
    this.requireActive();
    checkShape(req, shape, 'request');
  }

  private requireActive(): void {
    if (!this.active) throw new RaftkaError('NOT_CONTROLLER', 'This node is not the active controller');
  }

  /** Replays records into the speculative image. */
  private append(records: readonly MetadataRecord[]): void {
    if (records.length > 0) this.img = replayAll(this.img, records);
  }

  private hasLiveSession(brokerId: number, brokerEpoch: number, nowMs: number): boolean {
    const s = this.sessions.get(brokerId);
    return s !== undefined && s.brokerEpoch === brokerEpoch && nowMs - s.lastContactMs <= this.config['broker.session.timeout.ms'];
  }

  /**
   * Registered and heartbeating but not unfenced yet, and not by its own wish: a broker
   * catching up after a start, whose replicas may hold the longest logs.
   */
  private isStarting(brokerId: number, nowMs: number): boolean {
    const reg = this.img.broker(brokerId);
    return reg !== undefined && reg.fenced && this.hasLiveSession(brokerId, reg.brokerEpoch, nowMs) && this.sessions.get(brokerId)?.wantFence !== true;
  }

  /**
   * The broker has left (shut down or disconnected): its registration no longer blocks a
   * new incarnation. Safe because the old incarnation is fenced and every request it
   * might still send carries its old broker epoch, which a re-registration makes stale.
   */
  private endSession(brokerId: number): void {
    const s = this.sessions.get(brokerId);
    if (s !== undefined) s.lastContactMs = -Infinity;
  }

  private staleBroker(brokerId: number, brokerEpoch: number): ReturnType<typeof apiError> | undefined {
    const b = this.img.broker(brokerId);
    if (b === undefined) return apiError('BROKER_ID_NOT_REGISTERED', `Broker ${brokerId} is not registered`);
    if (b.brokerEpoch !== brokerEpoch) {
      return apiError('STALE_BROKER_EPOCH', `Broker ${brokerId} epoch ${brokerEpoch} is stale (current ${b.brokerEpoch}); register again`);
    }
    return undefined;
  }

  /** Fences the broker (if unfenced) and moves its partitions away from it. */
  private fence(brokerId: number): MetadataRecord[] {
    const b = this.img.broker(brokerId)!;
    const first = b.fenced ? [] : [record({ type: 'fenceBroker', brokerId, brokerEpoch: b.brokerEpoch })];
    return this.brokerChange(first, brokerId, { removeFromIsr: true, uncleanRestart: false });
  }

  /**
   * Appends the broker records, then plans every partition that names the broker as a
   * replica against the resulting image: drop it from ISRs (when asked), elect leaders
   * where the current one is no longer usable or there is none. Returns all records, in
   * the order they were appended.
   */
  private brokerChange(brokerRecords: readonly MetadataRecord[], brokerId: number, change: BrokerChange): MetadataRecord[] {
    this.append(brokerRecords);
    const out = [...brokerRecords];
    for (const t of [...this.img.topicsById.values()]) {
      const cfg = this.img.topicConfig(t.name);
      const dropFromElr = change.uncleanRestart && !cfg['flush.before.ack'] ? new Set([brokerId]) : undefined;
      for (const p of t.partitions) {
        if (!p.replicas.includes(brokerId)) continue;
        const plan = this.plan(t.name, p, {
          ...(change.removeFromIsr ? { targetIsr: p.isr.filter((b) => b !== brokerId) } : {}),
          ...(dropFromElr !== undefined ? { dropFromElr } : {}),
        });
        if (plan.record !== null) out.push(plan.record);
      }
    }
    this.append(out.slice(brokerRecords.length));
    return out;
  }

  private plan(
    topicName: string,
    p: PartitionState,
    opts: { targetIsr?: readonly number[]; dropFromElr?: ReadonlySet<number>; election?: ElectionMode; starting?: (brokerId: number) => boolean },
  ): ReturnType<typeof planPartitionChange> {
    const cfg = this.img.topicConfig(topicName);
    return planPartitionChange({
      partition: p,
      usable: (b) => this.img.isUnfenced(b),
      minInsyncReplicas: cfg['min.insync.replicas'],
      uncleanLeaderElectionEnable: cfg['unclean.leader.election.enable'],
      replicaLogEnd: (b) => this.replicaLogEnds.get(b, this.img.broker(b)?.brokerEpoch, p.topicId, p.partition, p.leaderEpoch),
      ...opts,
    });
  }

  /** Plans `mode` for every partition; returns the records without appending them. */
  private electAll(mode: ElectionMode): MetadataRecord[] {
    const out: MetadataRecord[] = [];
    for (const t of this.img.topicsById.values()) {
      for (const p of t.partitions) {
        if (mode === 'preferred' && p.leader === p.replicas[0]) continue;
        const plan = this.plan(t.name, p, { election: mode });
        if (plan.record !== null) out.push(plan.record);
      }
    }
    return out;
  }

  private newPartition(topicId: string, partition: number, replicas: readonly number[]): PartitionRecord {
    // New partitions start with every usable replica in sync (they are all empty).
    const isr = replicas.filter((b) => this.img.isUnfenced(b));
    return record({
      type: 'partition',
      topicId,
      partition,
      replicas: [...replicas],
      isr,
      elr: [],
      lastKnownElr: [],
      leader: isr[0] ?? NO_LEADER,
      leaderEpoch: 0,
      partitionEpoch: 0,
    });
  }

  private place(topicName: string, numPartitions: number, rf: number, existing: readonly (readonly number[])[]): number[][] {
    return placeReplicas({
      brokers: this.img.unfencedBrokers().map((b) => ({ brokerId: b.brokerId, rack: b.rack })),
      numPartitions,
      replicationFactor: rf,
      load: this.clusterLoad(),
      existing,
      seed: hashString(topicName),
    });
  }

  private clusterLoad(): ClusterLoad {
    const replicas = new Map<number, number>();
    const leaders = new Map<number, number>();
    for (const p of this.img.allPartitions()) {
      for (const b of p.replicas) replicas.set(b, (replicas.get(b) ?? 0) + 1);
      if (p.replicas[0] !== undefined) leaders.set(p.replicas[0], (leaders.get(p.replicas[0]) ?? 0) + 1);
    }
    return { replicas, leaders };
  }

  /** Checks manual replica assignments; `rf` 0 means "any, but the same for all". */
  private assignmentProblem(
    assignments: readonly (readonly number[])[],
    rf: number,
    budget: number,
  ): { error: ErrorName; message: string } | undefined {
    const bad = (message: string) => ({ error: 'INVALID_REPLICA_ASSIGNMENT' as const, message });
    if (!Array.isArray(assignments) || assignments.length === 0) return bad('No partitions in the replica assignment');
    if (assignments.length > budget) {
      return {
        error: 'INVALID_PARTITIONS',
        message: `One request may create at most ${this.config['create.topic.partitions.max']} partitions in all; ${budget} are left`,
      };
    }
    const want = rf === 0 ? assignments[0]!.length : rf;
    for (const [i, a] of assignments.entries()) {
      if (!Array.isArray(a) || a.length === 0) return bad(`Partition ${i} has no replicas`);
      if (a.length !== want) return bad(`All partitions need the same number of replicas (${want}); partition ${i} has ${a.length}`);
      if (a.length > REPLICATION_FACTOR_MAX) return bad(`Partition ${i} has more than ${REPLICATION_FACTOR_MAX} replicas`);
      if (new Set(a).size !== a.length) return bad(`Partition ${i} names a broker twice: ${a.join(',')}`);
      for (const b of a) {
        if (!Number.isSafeInteger(b) || this.img.broker(b) === undefined) return bad(`Partition ${i} names broker ${b}, which is not registered`);
      }
      if (!a.some((b) => this.img.isUnfenced(b))) return bad(`All brokers of partition ${i} (${a.join(',')}) are fenced`);
    }
    return undefined;
  }

  private newTopicId(): string {
    for (;;) {
      const bytes = Buffer.alloc(16);
      for (let i = 0; i < 16; i++) bytes[i] = this.random.int(256);
      bytes[6] = (bytes[6]! & 0x0f) | 0x40;
      bytes[8] = (bytes[8]! & 0x3f) | 0x80;
      const id = uuidToBase64(bytes);
      // Kafka reserves the all-zero uuid and the metadata topic's id; version bits rule both out.
      if (isUuid(id) && this.img.topicById(id) === undefined) return id;
    }
  }
}

function topicFailure(name: string, error: ErrorName, message: string): CreatableTopicResult {
  return { ...apiError(error, message), name, topicId: '', numPartitions: -1, replicationFactor: -1 };
}

function configOpProblem(c: AlterableConfig): string | undefined {
  if (typeof c.name !== 'string' || !isTopicConfigKey(c.name)) return `Unknown configuration ${JSON.stringify(c.name)}`;
  if (c.op !== 'set' && c.op !== 'delete') return `Config ${c.name}: unknown operation ${JSON.stringify(c.op)}`;
  if (c.op === 'set' && typeof c.value !== 'string') return `Config ${c.name}: set needs a value`;
  if (c.op === 'set' && (c.value as string).length > CONFIG_VALUE_LENGTH_MAX) {
    return `Config ${c.name}: the value is longer than ${CONFIG_VALUE_LENGTH_MAX} characters`;
  }
  return undefined;
}

function topicConfigProblem(configs: Readonly<Record<string, unknown>>): string | undefined {
  if (typeof configs !== 'object' || configs === null) return 'Configs must be a map of strings';
  for (const [k, v] of Object.entries(configs)) {
    if (!isTopicConfigKey(k)) return `Unknown topic configuration ${JSON.stringify(k)}`;
    if (typeof v !== 'string') return `Configuration ${k} must be given as a string`;
    if (v.length > CONFIG_VALUE_LENGTH_MAX) return `Configuration ${k}: the value is longer than ${CONFIG_VALUE_LENGTH_MAX} characters`;
  }
  try {
    parseTopicConfig(configs as Record<string, string>);
    return undefined;
  } catch (e) {
    if (isRaftkaError(e)) return e.message;
    throw e;
  }
}

function registrationProblem(req: RegisterBrokerRequest): string | undefined {
  if (!Number.isSafeInteger(req.brokerId) || req.brokerId < 0 || req.brokerId > 2 ** 31 - 1) return `Broker id ${req.brokerId} is not in [0, 2^31)`;
  if (typeof req.incarnationId !== 'string' || !isUuid(req.incarnationId)) return `Incarnation id ${JSON.stringify(req.incarnationId)} is not a uuid`;
  if (!Array.isArray(req.endpoints) || req.endpoints.length === 0 || req.endpoints.length > ENDPOINTS_MAX) {
    return `A broker registers between 1 and ${ENDPOINTS_MAX} endpoints`;
  }
  const names = new Set<string>();
  for (const e of req.endpoints as readonly unknown[] as readonly Record<string, unknown>[]) {
    if (typeof e !== 'object' || e === null) return 'Endpoint must be an object';
    if (typeof e.name !== 'string' || e.name === '' || e.name.length > STRING_LENGTH_MAX) return 'Endpoint name must be a non-empty string';
    if (names.has(e.name)) return `Endpoint ${e.name} is listed twice`;
    names.add(e.name);
    if (typeof e.host !== 'string' || e.host === '' || e.host.length > STRING_LENGTH_MAX) return `Endpoint ${e.name} has no host`;
    if (typeof e.port !== 'number' || !Number.isInteger(e.port) || e.port < 1 || e.port > 65535) {
      return `Endpoint ${e.name} port ${String(e.port)} is not in [1, 65535]`;
    }
  }
  if (req.rack !== undefined && req.rack !== null && (typeof req.rack !== 'string' || req.rack === '' || req.rack.length > STRING_LENGTH_MAX)) {
    return 'Rack must be a non-empty string or null';
  }
  if (req.previousBrokerEpoch !== undefined && !Number.isSafeInteger(req.previousBrokerEpoch)) return 'previousBrokerEpoch must be an integer';
  return undefined;
}
