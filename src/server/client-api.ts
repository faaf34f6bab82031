// The public client API (proto/raftka.proto): request validation, routing checks and the
// mapping of replica manager / admin results to responses.
//
// Rules every handler keeps:
//  - Validate before touching state: names, ids, ranges and sizes are checked first, and
//    an invalid item gets its error code without reaching the replica manager or the
//    controller. Other items of the same request go on.
//  - Errors are codes inside responses (src/common/errors.ts). A RaftkaError keeps its
//    code; anything else is a bug or an I/O surprise: it is logged and answered as
//    UNKNOWN_SERVER_ERROR. No handler throws past `unaryHandler`, so a call never hangs
//    and the process never crashes on a request.
//  - A partition this broker does not lead is answered NOT_LEADER_OR_FOLLOWER with the
//    leader the metadata image names [KIP-951], so clients re-route without a Metadata
//    round trip.
//  - Every wait is bounded: produce timeouts and fetch max waits have a ceiling.
import * as grpc from '@grpc/grpc-js';
import { ERRORS, isRaftkaError, type ErrorName } from '../common/errors.ts';
import { isUuid } from '../common/ids.ts';
import { componentLogger, type Logger } from '../common/logger.ts';
import { bindServer, DATA_FLOW_CONTROL_WINDOW_BYTES, isServiceError, serviceDefinition, shutdownServer, SERVER_OPTIONS, unaryHandler, MESSAGE_BYTES_MAX } from '../proto/rpc.ts';
import {
  CONFIG_OP_DELETE,
  CONFIG_OP_SET,
  CONFIG_RESOURCE_BROKER,
  CONFIG_RESOURCE_TOPIC,
  ELECTION_PREFERRED,
  ELECTION_UNCLEAN,
  RaftkaRpc,
  type AlterConfigsResource,
  type AlterConfigsResourceResponse,
  type ElectLeadersRequest,
  type ElectLeadersResponse,
  type ElectLeadersTopic,
  type IncrementalAlterConfigsRequest,
  type IncrementalAlterConfigsResponse,
  type PartitionElectionResult,
  type Broker,
  type ConfigEntry,
  type CreatePartitionsRequest,
  type CreatePartitionsResponse,
  type CreatePartitionsTopicResult,
  type CreateTopicsRequest,
  type CreateTopicsResponse,
  type CreatableTopic,
  type CreatableTopicResult,
  type DeleteTopicsRequest,
  type DeleteTopicsResponse,
  type DeletableTopicResult,
  type DescribeClusterResponse,
  type DescribeTopicsRequest,
  type DescribeTopicsResponse,
  type FetchPartitionData,
  type FetchRequest,
  type FetchResponse,
  type InitProducerIdRequest,
  type InitProducerIdResponse,
  type LeaderHint,
  type ListOffsetsPartitionResponse,
  type ListOffsetsRequest,
  type ListOffsetsResponse,
  type MetadataRequest,
  type MetadataResponse,
  type PartitionMetadata,
  type PartitionProduceResponse,
  type ProduceRequest,
  type ProduceResponse,
  type TopicDescription,
  type TopicMetadata,
} from '../proto/raftka.ts';
import { addStandardServices } from './standard-services.ts';
import type { AdminClient, MetadataView, PartitionView, ProducerIdSource, ReplicaManagerApi, TopicView } from './types.ts';
import type { FetchPartitionRequest, ProduceResult } from '../broker/replica-manager.ts';
import { readBuffers } from '../log/read-buffers.ts';

export interface ClientApiLimits {
  /** acks=-1 wait when the request says 0. */
  produceTimeoutMsDefault: number;
  produceTimeoutMsMax: number;
  fetchMaxWaitMsMax: number;
  /** Whole-response bound when the request says 0 (Kafka's fetch.max.bytes). */
  fetchBytesDefault: number;
  /** Larger requested bounds are clamped to this (as Kafka clamps to fetch.max.bytes). */
  fetchBytesMax: number;
  partitionFetchBytesDefault: number;
  /** Records for one partition in one produce request (RECORD_LIST_TOO_LARGE past it). */
  partitionProduceBytesMax: number;
  /** Partitions in one produce, fetch or list-offsets request. */
  requestPartitionsMax: number;
  /** Topics in one admin or metadata request. */
  requestTopicsMax: number;
  partitionsPerTopicMax: number;
  replicationFactorMax: number;
  adminTimeoutMsDefault: number;
  adminTimeoutMsMax: number;
  /** In-flight requests per ProduceStream or FetchStream before the server stops reading from it. */
  streamInFlightMax: number;
}

export const DEFAULT_CLIENT_API_LIMITS: ClientApiLimits = {
  produceTimeoutMsDefault: 30_000,
  produceTimeoutMsMax: 300_000,
  fetchMaxWaitMsMax: 300_000,
  fetchBytesDefault: 50 * 1024 * 1024,
  // Kafka's fetch.max.bytes default (55 MiB), leaving room under MESSAGE_BYTES_MAX for
  // per-partition headers and a first batch that may exceed the bound.
  fetchBytesMax: 55 * 1024 * 1024,
  partitionFetchBytesDefault: 1024 * 1024,
  partitionProduceBytesMax: 32 * 1024 * 1024,
  requestPartitionsMax: 10_000,
  requestTopicsMax: 10_000,
  partitionsPerTopicMax: 10_000,
  replicationFactorMax: 16,
  adminTimeoutMsDefault: 30_000,
  adminTimeoutMsMax: 300_000,
  streamInFlightMax: 64,
};

export interface ClientApiOptions {
  brokerId: number;
  /** The current metadata, taken once per request. */
  metadata: () => MetadataView;
  admin: AdminClient;
  replicaManager: ReplicaManagerApi;
  /** InitProducerId's id source; without it InitProducerId answers UNSUPPORTED_VERSION. */
  producerIds?: ProducerIdSource;
  logger: Logger;
  limits?: Partial<ClientApiLimits>;
}

/** Config changes for one resource in one IncrementalAlterConfigs request. */
const CONFIGS_PER_RESOURCE_MAX = 1000;

// Kafka's legal topic names: [a-zA-Z0-9._-], 1..249 characters, not "." or "..".
const TOPIC_NAME = /^[a-zA-Z0-9._-]{1,249}$/;

export function topicNameError(name: string): string | undefined {
  if (name === '') return 'topic name is empty';
  if (name === '.' || name === '..') return `topic name ${JSON.stringify(name)} is not allowed`;
  if (name.length > 249) return `topic name is ${name.length} characters; the limit is 249`;
  if (!TOPIC_NAME.test(name)) return `topic name ${JSON.stringify(name)} may hold only ASCII letters, digits, '.', '_' and '-'`;
  return undefined;
}

interface ItemError {
  errorCode: number;
  errorMessage: string;
}

function itemError(name: ErrorName, message: string): ItemError {
  return { errorCode: ERRORS[name].code, errorMessage: message };
}

const NO_ERROR: ItemError = { errorCode: 0, errorMessage: '' };

type Resolved = { topic: TopicView; error?: undefined } | { topic?: undefined; error: ItemError };

/** Finds the topic a data request names, by id or name (both must agree when both are set). */
function resolveTopic(view: MetadataView, name: string | undefined, topicId: string | undefined): Resolved {
  const n = name ?? '';
  const id = topicId ?? '';
  if (id !== '') {
    if (!isUuid(id)) return { error: itemError('UNKNOWN_TOPIC_ID', `${JSON.stringify(id)} is not a topic id`) };
    const topic = view.topicById(id);
    if (!topic) return { error: itemError('UNKNOWN_TOPIC_ID', `no topic has id ${id}`) };
    if (n !== '' && topic.name !== n) return { error: itemError('INVALID_REQUEST', `topic id ${id} is topic ${topic.name}, not ${n}`) };
    return { topic };
  }
  if (n === '') return { error: itemError('INVALID_TOPIC_EXCEPTION', 'neither a topic name nor a topic id was given') };
  const bad = topicNameError(n);
  if (bad) return { error: itemError('INVALID_TOPIC_EXCEPTION', bad) };
  const topic = view.topicByName(n);
  if (!topic) return { error: itemError('UNKNOWN_TOPIC_OR_PARTITION', `topic ${n} does not exist`) };
  return { topic };
}

type Routed = { partition: PartitionView; error?: undefined; hint?: undefined } | { partition?: undefined; error: ItemError; hint: LeaderHint | null };

/** Checks that `partition` exists and that this broker leads it. */
function routePartition(topic: TopicView, partition: number, brokerId: number): Routed {
  const p = Number.isInteger(partition) && partition >= 0 ? topic.partitions[partition] : undefined;
  if (!p) return { error: itemError('UNKNOWN_TOPIC_OR_PARTITION', `topic ${topic.name} has no partition ${partition}`), hint: null };
  if (p.leader < 0) return { error: itemError('LEADER_NOT_AVAILABLE', `${topic.name}-${partition} has no leader right now`), hint: { leaderId: -1, leaderEpoch: p.leaderEpoch } };
  if (p.leader !== brokerId) {
    return {
      error: itemError('NOT_LEADER_OR_FOLLOWER', `broker ${brokerId} does not lead ${topic.name}-${partition}; broker ${p.leader} does`),
      hint: { leaderId: p.leader, leaderEpoch: p.leaderEpoch },
    };
  }
  return { partition: p };
}

function hintFor(view: MetadataView, topicId: string, partition: number): LeaderHint | null {
  const p = view.topicById(topicId)?.partitions[partition];
  return p ? { leaderId: p.leader, leaderEpoch: p.leaderEpoch } : null;
}

function toBroker(b: { id: number; host: string; port: number; rack: string | null; fenced: boolean }): Broker {
  return { id: b.id, host: b.host, port: b.port, rack: b.rack ?? '', fenced: b.fenced };
}

function partitionMetadata(view: MetadataView, p: PartitionView): PartitionMetadata {
  const offline = p.replicas.filter((r) => {
    const b = view.broker(r);
    return b === undefined || b.fenced;
  });
  const noLeader = p.leader < 0;
  return {
    errorCode: noLeader ? ERRORS.LEADER_NOT_AVAILABLE.code : 0,
    errorMessage: noLeader ? 'the partition has no leader right now' : '',
    partition: p.partition,
    leaderId: p.leader,
    leaderEpoch: p.leaderEpoch,
    replicas: [...p.replicas],
    isr: [...p.isr],
    offlineReplicas: offline,
    eligibleLeaderReplicas: [...p.elr],
    lastKnownElr: [...p.lastKnownElr],
  };
}

function isSafeInt(v: number): boolean {
  return Number.isSafeInteger(v);
}

/** The request handlers, independent of gRPC (the server below wires them). */
export class ClientApiHandlers {
  readonly limits: ClientApiLimits;
  private readonly log: Logger;

  constructor(private readonly opts: ClientApiOptions) {
    this.limits = { ...DEFAULT_CLIENT_API_LIMITS, ...opts.limits };
    this.log = componentLogger(opts.logger, 'client-api', { brokerId: opts.brokerId });
  }

  /** A thrown error as an item error: RaftkaErrors keep their code, anything else is logged. */
  private errorOf(e: unknown, what: string, fields: Record<string, unknown> = {}): ItemError {
    if (isRaftkaError(e)) return { errorCode: e.code, errorMessage: e.message };
    this.log.error({ err: e, ...fields }, `${what} failed unexpectedly`);
    return itemError('UNKNOWN_SERVER_ERROR', `unexpected server error in ${what}: ${(e as Error)?.message ?? String(e)}`);
  }

  /** The response for a request whose handler threw: every request type has these two fields. */
  topLevelError(e: unknown, what: string): ItemError {
    return this.errorOf(e, what);
  }

  // ─── Metadata / DescribeTopics / DescribeCluster ───

  /** Topics a metadata-style request names: all when it names none. */
  private selectTopics(view: MetadataView, names: readonly string[], ids: readonly string[]): Array<{ topic: TopicView } | { name: string; topicId: string; error: ItemError }> {
    if (names.length === 0 && ids.length === 0) return [...view.topics()].map((topic) => ({ topic }));
    const out: Array<{ topic: TopicView } | { name: string; topicId: string; error: ItemError }> = [];
    for (const name of names) {
      const bad = topicNameError(name);
      const topic = bad ? undefined : view.topicByName(name);
      if (topic) out.push({ topic });
      else out.push({ name, topicId: '', error: bad ? itemError('INVALID_TOPIC_EXCEPTION', bad) : itemError('UNKNOWN_TOPIC_OR_PARTITION', `topic ${name} does not exist`) });
    }
    for (const id of ids) {
      const topic = isUuid(id) ? view.topicById(id) : undefined;
      if (topic) out.push({ topic });
      else out.push({ name: '', topicId: id, error: itemError('UNKNOWN_TOPIC_ID', `no topic has id ${id}`) });
    }
    return out;
  }

  private checkTopicCount(n: number): ItemError | undefined {
    return n > this.limits.requestTopicsMax ? itemError('INVALID_REQUEST', `${n} topics in one request; the limit is ${this.limits.requestTopicsMax}`) : undefined;
  }

  metadata(req: MetadataRequest): MetadataResponse {
    const view = this.opts.metadata();
    const names = req.topics ?? [];
    const ids = req.topicIds ?? [];
    const base = { clusterId: view.clusterId, controllerId: view.controllerId, brokers: view.brokers().map(toBroker) };
    const tooMany = this.checkTopicCount(names.length + ids.length);
    if (tooMany) return { ...tooMany, ...base, topics: [] };
    const topics: TopicMetadata[] = req.noTopics
      ? []
      : this.selectTopics(view, names, ids).map((s) =>
          'topic' in s
            ? { ...NO_ERROR, name: s.topic.name, topicId: s.topic.topicId, partitions: s.topic.partitions.map((p) => partitionMetadata(view, p)) }
            : { ...s.error, name: s.name, topicId: s.topicId, partitions: [] },
        );
    return { ...NO_ERROR, ...base, topics };
  }

  describeTopics(req: DescribeTopicsRequest): DescribeTopicsResponse {
    const view = this.opts.metadata();
    const names = req.names ?? [];
    const ids = req.topicIds ?? [];
    const tooMany = this.checkTopicCount(names.length + ids.length);
    if (tooMany) return { ...tooMany, topics: [] };
    const topics: TopicDescription[] = this.selectTopics(view, names, ids).map((s) => {
      if (!('topic' in s)) return { ...s.error, name: s.name, topicId: s.topicId, partitions: [], configs: [] };
      const configs: ConfigEntry[] = (view.topicConfigs(s.topic.topicId) ?? []).map((c) => ({ name: c.name, value: c.value, source: c.source }));
      return { ...NO_ERROR, name: s.topic.name, topicId: s.topic.topicId, partitions: s.topic.partitions.map((p) => partitionMetadata(view, p)), configs };
    });
    return { ...NO_ERROR, topics };
  }

  describeCluster(): DescribeClusterResponse {
    const view = this.opts.metadata();
    return {
      ...NO_ERROR,
      clusterId: view.clusterId,
      controllerId: view.controllerId,
      brokers: view.brokers().map(toBroker),
      voters: view.voters().map((v) => ({ id: v.id, lag: v.lag, isLeader: v.isLeader })),
    };
  }

  // ─── admin (forwarded to the controller) ───

  private adminTimeout(timeoutMs: number | undefined): { timeoutMs: number; error?: undefined } | { error: ItemError } {
    const t = timeoutMs ?? 0;
    if (!Number.isInteger(t) || t < 0 || t > this.limits.adminTimeoutMsMax) {
      return { error: itemError('INVALID_REQUEST', `timeout_ms ${t} is outside [0, ${this.limits.adminTimeoutMsMax}]`) };
    }
    return { timeoutMs: t === 0 ? this.limits.adminTimeoutMsDefault : t };
  }

  /** Forwards `valid` items to the controller, then merges its answers into request order. */
  private async forward<R extends { name: string }>(
    what: string,
    prechecked: Array<{ name: string; error?: ItemError }>,
    call: () => Promise<{ errorCode: number; errorMessage: string; topics: R[] }>,
    blank: (name: string, err: ItemError) => R,
    key: (r: R) => string = (r) => r.name,
  ): Promise<R[]> {
    const anyValid = prechecked.some((p) => !p.error);
    let answered = new Map<string, R>();
    let whole: ItemError | undefined;
    if (anyValid) {
      try {
        const resp = await call();
        answered = new Map(resp.topics.map((r) => [key(r), r]));
        if (resp.errorCode !== 0) whole = { errorCode: resp.errorCode, errorMessage: resp.errorMessage };
      } catch (e) {
        // A gRPC failure reaching the controller is retriable: the client tries again.
        whole = isServiceError(e) ? itemError('NOT_CONTROLLER', `the active controller could not be reached: ${e.details || e.message}`) : this.errorOf(e, what);
      }
    }
    return prechecked.map((p) => {
      if (p.error) return blank(p.name, p.error);
      const r = answered.get(p.name);
      if (r) return r;
      return blank(p.name, whole ?? itemError('UNKNOWN_SERVER_ERROR', `the controller gave no answer for ${p.name}`));
    });
  }

  async createTopics(req: CreateTopicsRequest): Promise<CreateTopicsResponse> {
    const blank = (name: string, err: ItemError): CreatableTopicResult => ({ name, topicId: '', ...err, numPartitions: -1, replicationFactor: -1, configs: [] });
    const tooMany = this.checkTopicCount(req.topics.length);
    const timeout = this.adminTimeout(req.timeoutMs);
    const whole = tooMany ?? timeout.error;
    if (whole) return { ...NO_ERROR, topics: req.topics.map((t) => blank(t.name, whole)) };
    const seen = new Map<string, number>();
    for (const t of req.topics) seen.set(t.name, (seen.get(t.name) ?? 0) + 1);
    const valid: CreatableTopic[] = [];
    const prechecked = req.topics.map((t) => {
      const error = this.checkCreatable(t, seen.get(t.name)! > 1);
      if (!error) {
        const assignments = t.assignments ?? [];
        valid.push({
          name: t.name,
          numPartitions: assignments.length > 0 ? assignments.length : (t.numPartitions ?? 0) > 0 ? t.numPartitions! : -1,
          replicationFactor: assignments.length > 0 ? assignments[0]!.brokerIds.length : (t.replicationFactor ?? 0) > 0 ? t.replicationFactor! : -1,
          assignments,
          configs: { ...t.configs },
        });
      }
      return { name: t.name, ...(error ? { error } : {}) };
    });
    const topics = await this.forward(
      'CreateTopics',
      prechecked,
      () => this.opts.admin.createTopics({ topics: valid, timeoutMs: (timeout as { timeoutMs: number }).timeoutMs, validateOnly: req.validateOnly ?? false }),
      blank,
    );
    return { ...NO_ERROR, topics };
  }

  private checkCreatable(t: CreatableTopic, duplicate: boolean): ItemError | undefined {
    const bad = topicNameError(t.name);
    if (bad) return itemError('INVALID_TOPIC_EXCEPTION', bad);
    if (duplicate) return itemError('INVALID_REQUEST', `topic ${t.name} appears more than once in the request`);
    const L = this.limits;
    const assignments = t.assignments ?? [];
    if (assignments.length > 0) {
      if ((t.numPartitions ?? 0) > 0 && t.numPartitions !== assignments.length) {
        return itemError('INVALID_REQUEST', 'give either num_partitions and replication_factor or assignments, not both');
      }
      if (assignments.length > L.partitionsPerTopicMax) return itemError('INVALID_PARTITIONS', `${assignments.length} partitions; the limit is ${L.partitionsPerTopicMax}`);
      const rf = assignments[0]!.brokerIds.length;
      for (const [i, a] of assignments.entries()) {
        if (a.partition !== i) return itemError('INVALID_REPLICA_ASSIGNMENT', `assignments must list partitions 0..${assignments.length - 1} in order`);
        if (a.brokerIds.length === 0 || a.brokerIds.length !== rf) return itemError('INVALID_REPLICA_ASSIGNMENT', 'every partition needs the same, non-zero number of replicas');
        if (new Set(a.brokerIds).size !== a.brokerIds.length) return itemError('INVALID_REPLICA_ASSIGNMENT', `partition ${i} names a broker twice`);
      }
      if (rf > L.replicationFactorMax) return itemError('INVALID_REPLICATION_FACTOR', `replication factor ${rf}; the limit is ${L.replicationFactorMax}`);
    } else {
      const n = t.numPartitions ?? 0;
      const rf = t.replicationFactor ?? 0;
      if (!Number.isInteger(n) || n > L.partitionsPerTopicMax) return itemError('INVALID_PARTITIONS', `${n} partitions; the limit is ${L.partitionsPerTopicMax}`);
      if (!Number.isInteger(rf) || rf > L.replicationFactorMax) return itemError('INVALID_REPLICATION_FACTOR', `replication factor ${rf}; the limit is ${L.replicationFactorMax}`);
    }
    for (const [k, v] of Object.entries(t.configs ?? {})) {
      if (k === '' || k.length > 255 || v.length > 4096) return itemError('INVALID_CONFIG', `config ${JSON.stringify(k.slice(0, 64))} has an empty or oversized key or value`);
    }
    return undefined;
  }

  async deleteTopics(req: DeleteTopicsRequest): Promise<DeleteTopicsResponse> {
    const names = req.names ?? [];
    const ids = req.topicIds ?? [];
    const blank = (name: string, err: ItemError): DeletableTopicResult => ({ name, topicId: '', ...err });
    const tooMany = this.checkTopicCount(names.length + ids.length);
    const timeout = this.adminTimeout(req.timeoutMs);
    const whole = tooMany ?? timeout.error;
    if (whole) return { ...NO_ERROR, topics: [...names, ...ids].map((n) => blank(n, whole)) };
    // Ids and names share one result list; an id's result is keyed by the id.
    const validNames: string[] = [];
    const validIds: string[] = [];
    const prechecked = [
      ...names.map((name) => {
        const bad = topicNameError(name);
        if (!bad) validNames.push(name);
        return { name, ...(bad ? { error: itemError('INVALID_TOPIC_EXCEPTION', bad) } : {}) };
      }),
      ...ids.map((id) => {
        const ok = isUuid(id);
        if (ok) validIds.push(id);
        return { name: id, ...(ok ? {} : { error: itemError('UNKNOWN_TOPIC_ID', `${JSON.stringify(id)} is not a topic id`) }) };
      }),
    ];
    const byName = new Set(names);
    const topics = await this.forward(
      'DeleteTopics',
      prechecked,
      () => this.opts.admin.deleteTopics({ names: validNames, topicIds: validIds, timeoutMs: (timeout as { timeoutMs: number }).timeoutMs }),
      (name, err) => (byName.has(name) ? blank(name, err) : { name: '', topicId: name, ...err }),
      (r) => (r.name !== '' && byName.has(r.name) ? r.name : r.topicId),
    );
    return { ...NO_ERROR, topics };
  }

  async createPartitions(req: CreatePartitionsRequest): Promise<CreatePartitionsResponse> {
    const blank = (name: string, err: ItemError): CreatePartitionsTopicResult => ({ name, ...err });
    const tooMany = this.checkTopicCount(req.topics.length);
    const timeout = this.adminTimeout(req.timeoutMs);
    const whole = tooMany ?? timeout.error;
    if (whole) return { ...NO_ERROR, topics: req.topics.map((t) => blank(t.name, whole)) };
    const seen = new Map<string, number>();
    for (const t of req.topics) seen.set(t.name, (seen.get(t.name) ?? 0) + 1);
    const valid: CreatePartitionsRequest['topics'] = [];
    const prechecked = req.topics.map((t) => {
      let error: ItemError | undefined;
      const bad = topicNameError(t.name);
      if (bad) error = itemError('INVALID_TOPIC_EXCEPTION', bad);
      else if (seen.get(t.name)! > 1) error = itemError('INVALID_REQUEST', `topic ${t.name} appears more than once in the request`);
      else if (!Number.isInteger(t.count) || t.count <= 0 || t.count > this.limits.partitionsPerTopicMax) {
        error = itemError('INVALID_PARTITIONS', `partition count ${t.count} is outside [1, ${this.limits.partitionsPerTopicMax}]`);
      }
      if (!error) valid.push({ name: t.name, count: t.count, assignments: t.assignments ?? [] });
      return { name: t.name, ...(error ? { error } : {}) };
    });
    const topics = await this.forward(
      'CreatePartitions',
      prechecked,
      () => this.opts.admin.createPartitions({ topics: valid, timeoutMs: (timeout as { timeoutMs: number }).timeoutMs, validateOnly: req.validateOnly ?? false }),
      blank,
    );
    return { ...NO_ERROR, topics };
  }

  /** Calls the controller; a failure to reach it (or a thrown error) becomes one error for every item. */
  private async callController<T extends { errorCode: number; errorMessage: string }>(what: string, call: () => Promise<T>): Promise<{ res?: T; whole?: ItemError }> {
    try {
      const res = await call();
      return res.errorCode !== 0 ? { res, whole: { errorCode: res.errorCode, errorMessage: res.errorMessage } } : { res };
    } catch (e) {
      return { whole: isServiceError(e) ? itemError('NOT_CONTROLLER', `the active controller could not be reached: ${e.details || e.message}`) : this.errorOf(e, what) };
    }
  }

  async incrementalAlterConfigs(req: IncrementalAlterConfigsRequest): Promise<IncrementalAlterConfigsResponse> {
    const result = (r: AlterConfigsResource, err: ItemError): AlterConfigsResourceResponse => ({ resourceType: r.resourceType, resourceName: r.resourceName, ...err });
    const tooMany = this.checkTopicCount(req.resources.length);
    const timeout = this.adminTimeout(req.timeoutMs);
    const whole = tooMany ?? timeout.error;
    if (whole) return { ...NO_ERROR, resources: req.resources.map((r) => result(r, whole)) };
    const key = (r: { resourceType: number; resourceName: string }) => `${r.resourceType}:${r.resourceName}`;
    const counts = new Map<string, number>();
    for (const r of req.resources) counts.set(key(r), (counts.get(key(r)) ?? 0) + 1);
    const valid: AlterConfigsResource[] = [];
    const prechecked = req.resources.map((r) => {
      const error = this.alterableProblem(r, counts.get(key(r))! > 1);
      if (!error) valid.push({ resourceType: r.resourceType, resourceName: r.resourceName, configs: r.configs.map((c) => ({ name: c.name, operation: c.operation ?? CONFIG_OP_SET, value: c.value ?? '' })) });
      return { r, error };
    });
    const answer =
      valid.length === 0
        ? {}
        : await this.callController('IncrementalAlterConfigs', () =>
            this.opts.admin.incrementalAlterConfigs({ resources: valid, validateOnly: req.validateOnly ?? false, timeoutMs: (timeout as { timeoutMs: number }).timeoutMs }),
          );
    const answered = new Map((answer.res?.resources ?? []).map((x) => [key(x), x]));
    return {
      ...NO_ERROR,
      resources: prechecked.map(({ r, error }) => {
        if (error) return result(r, error);
        const x = answered.get(key(r));
        if (x && !answer.whole) return result(r, { errorCode: x.errorCode, errorMessage: x.errorMessage });
        return result(r, answer.whole ?? itemError('UNKNOWN_SERVER_ERROR', `the controller gave no answer for ${key(r)}`));
      }),
    };
  }

  /** What is wrong with one resource of IncrementalAlterConfigs before the controller sees it. */
  private alterableProblem(r: AlterConfigsResource, duplicate: boolean): ItemError | undefined {
    if (r.resourceType === CONFIG_RESOURCE_TOPIC) {
      const bad = topicNameError(r.resourceName);
      if (bad) return itemError('INVALID_TOPIC_EXCEPTION', bad);
    } else if (r.resourceType === CONFIG_RESOURCE_BROKER) {
      if (r.resourceName !== '') return itemError('INVALID_REQUEST', `per-broker configs are not supported; name the broker resource "" to change the cluster-wide default`);
    } else {
      return itemError('INVALID_REQUEST', `resource type ${r.resourceType} is neither 2 (topic) nor 4 (broker)`);
    }
    if (duplicate) return itemError('INVALID_REQUEST', `resource ${r.resourceType}:${JSON.stringify(r.resourceName)} appears more than once in the request`);
    if (r.configs.length === 0) return itemError('INVALID_REQUEST', 'no config changes given');
    if (r.configs.length > CONFIGS_PER_RESOURCE_MAX) return itemError('INVALID_REQUEST', `${r.configs.length} config changes for one resource; the limit is ${CONFIGS_PER_RESOURCE_MAX}`);
    const names = new Set<string>();
    for (const c of r.configs) {
      const op = c.operation ?? CONFIG_OP_SET;
      if (c.name === '' || c.name.length > 255) return itemError('INVALID_CONFIG', `config name ${JSON.stringify(c.name.slice(0, 64))} is empty or longer than 255 characters`);
      if (op !== CONFIG_OP_SET && op !== CONFIG_OP_DELETE) return itemError('INVALID_REQUEST', `config ${c.name}: operation ${op} is not supported (0 SET, 1 DELETE)`);
      if (names.has(c.name)) return itemError('INVALID_REQUEST', `config ${c.name} appears more than once for ${JSON.stringify(r.resourceName)}`);
      names.add(c.name);
      if (op === CONFIG_OP_SET && (c.value ?? '').length > 4096) return itemError('INVALID_CONFIG', `config ${c.name}: the value is longer than 4096 characters`);
    }
    return undefined;
  }

  async electLeaders(req: ElectLeadersRequest): Promise<ElectLeadersResponse> {
    const view = this.opts.metadata();
    const named = req.topics ?? [];
    const type = req.electionType ?? ELECTION_PREFERRED;
    const count = named.reduce((n, t) => n + Math.max(1, t.partitions.length), 0);
    const timeout = this.adminTimeout(req.timeoutMs);
    let whole: ItemError | undefined = timeout.error;
    if (type !== ELECTION_PREFERRED && type !== ELECTION_UNCLEAN) whole = itemError('INVALID_REQUEST', `election type ${type} is neither 0 (preferred) nor 1 (unclean)`);
    else if (count > this.limits.requestPartitionsMax) whole = itemError('INVALID_REQUEST', `${count} partitions in one request; the limit is ${this.limits.requestPartitionsMax}`);
    const timeoutMs = (timeout as { timeoutMs?: number }).timeoutMs ?? this.limits.adminTimeoutMsDefault;
    const partitionResult = (partition: number, err: ItemError): PartitionElectionResult => ({ partition, ...err, leaderId: -1 });

    if (named.length === 0) {
      if (whole) return { ...whole, topics: [] };
      const answer = await this.callController('ElectLeaders', () => this.opts.admin.electLeaders({ electionType: type, topics: [], timeoutMs }));
      if (answer.whole) return { ...answer.whole, topics: [] };
      return { ...NO_ERROR, topics: answer.res!.topics };
    }

    // Expand each named topic to its partitions (a topic named without partitions means
    // all of them, as this broker's image knows it), checking names and duplicates.
    const seenTopics = new Map<string, number>();
    for (const t of named) seenTopics.set(t.name, (seenTopics.get(t.name) ?? 0) + 1);
    const toElect: ElectLeadersTopic[] = [];
    const prechecked = named.map((t) => {
      let topicError: ItemError | undefined = whole;
      const bad = topicNameError(t.name);
      if (!topicError && bad) topicError = itemError('INVALID_TOPIC_EXCEPTION', bad);
      if (!topicError && seenTopics.get(t.name)! > 1) topicError = itemError('INVALID_REQUEST', `topic ${t.name} appears more than once in the request`);
      let partitions = t.partitions;
      if (partitions.length === 0) {
        const known = view.topicByName(t.name);
        if (!topicError && !known) topicError = itemError('UNKNOWN_TOPIC_OR_PARTITION', `topic ${t.name} does not exist`);
        partitions = known ? known.partitions.map((p) => p.partition) : [];
        if (topicError) return { name: t.name, partitions: [] as Array<{ partition: number; error?: ItemError }>, topicError };
      }
      const seen = new Set<number>();
      const checked = partitions.map((partition) => {
        let error = topicError;
        if (!error && seen.has(partition)) error = itemError('INVALID_REQUEST', `partition ${t.name}-${partition} appears more than once in the request`);
        seen.add(partition);
        return { partition, ...(error ? { error } : {}) };
      });
      const ok = checked.filter((c) => !c.error).map((c) => c.partition);
      if (ok.length > 0) toElect.push({ name: t.name, partitions: ok });
      return { name: t.name, partitions: checked, topicError };
    });
    const answer = toElect.length === 0 ? {} : await this.callController('ElectLeaders', () => this.opts.admin.electLeaders({ electionType: type, topics: toElect, timeoutMs }));
    const answered = new Map<string, PartitionElectionResult>();
    for (const t of answer.res?.topics ?? []) for (const p of t.partitions) answered.set(`${t.name}:${p.partition}`, p);
    return {
      ...NO_ERROR,
      topics: prechecked.map((t) => ({
        name: t.name,
        partitions:
          t.partitions.length === 0 && t.topicError
            ? [partitionResult(-1, t.topicError)]
            : t.partitions.map((p) => {
                if (p.error) return partitionResult(p.partition, p.error);
                const x = answered.get(`${t.name}:${p.partition}`);
                if (x && !answer.whole) return x;
                return partitionResult(p.partition, answer.whole ?? itemError('UNKNOWN_SERVER_ERROR', `the controller gave no answer for ${t.name}-${p.partition}`));
              }),
      })),
    };
  }

  // ─── Produce ───

  async produce(req: ProduceRequest): Promise<ProduceResponse> {
    const view = this.opts.metadata();
    const L = this.limits;
    const acks = req.acks ?? -1;
    const timeoutMs = req.timeoutMs ?? 0;
    let whole: ItemError | undefined;
    const count = req.topicData.reduce((n, t) => n + t.partitions.length, 0);
    if (acks !== -1 && acks !== 0 && acks !== 1) whole = itemError('INVALID_REQUIRED_ACKS', `acks must be -1 (all), 0 or 1, got ${acks}`);
    else if (!Number.isInteger(timeoutMs) || timeoutMs < 0 || timeoutMs > L.produceTimeoutMsMax) whole = itemError('INVALID_REQUEST', `timeout_ms ${timeoutMs} is outside [0, ${L.produceTimeoutMsMax}]`);
    else if (count > L.requestPartitionsMax) whole = itemError('INVALID_REQUEST', `${count} partitions in one request; the limit is ${L.requestPartitionsMax}`);
    const timeout = timeoutMs === 0 ? L.produceTimeoutMsDefault : timeoutMs;
    const seen = new Set<string>();
    const pending: Array<Promise<void>> = [];
    const responses = req.topicData.map((td) => {
      const resolved = whole ? undefined : resolveTopic(view, td.name, td.topicId);
      const topic = resolved?.topic;
      const partitions = td.partitions.map((pd): PartitionProduceResponse => {
        const out: PartitionProduceResponse = { partition: pd.partition, ...NO_ERROR, baseOffset: -1, logAppendTimeMs: -1, logStartOffset: -1, currentLeader: null };
        const fail = (e: ItemError, hint: LeaderHint | null = null) => Object.assign(out, e, { currentLeader: hint });
        if (whole) return fail(whole);
        if (!topic) return fail(resolved!.error!);
        const key = `${topic.topicId}:${pd.partition}`;
        if (seen.has(key)) return fail(itemError('INVALID_REQUEST', `partition ${topic.name}-${pd.partition} appears more than once in the request`));
        seen.add(key);
        const routed = routePartition(topic, pd.partition, this.opts.brokerId);
        if (routed.error) return fail(routed.error, routed.hint);
        if (pd.records.length === 0) return fail(itemError('CORRUPT_MESSAGE', 'records is empty: a produce needs at least one record batch'));
        if (pd.records.length > L.partitionProduceBytesMax) {
          return fail(itemError('RECORD_LIST_TOO_LARGE', `${pd.records.length} bytes for ${topic.name}-${pd.partition}; the limit is ${L.partitionProduceBytesMax}`));
        }
        // The executor runs now, so the append is queued in request order; a synchronous
        // throw (a bug) becomes this partition's error rather than the whole request's.
        const started = new Promise<ProduceResult>((resolve) => resolve(this.opts.replicaManager.produce(topic.topicId, pd.partition, pd.records, acks, timeout))).then(
          (r) => {
            out.baseOffset = acks === 0 ? -1 : r.baseOffset;
            out.logAppendTimeMs = acks === 0 ? -1 : r.logAppendTimeMs;
            out.logStartOffset = acks === 0 ? -1 : r.logStartOffset;
          },
          (e: unknown) => {
            const err = this.errorOf(e, 'Produce', { topic: topic.name, partition: pd.partition });
            const hint = err.errorCode === ERRORS.NOT_LEADER_OR_FOLLOWER.code ? hintFor(this.opts.metadata(), topic.topicId, pd.partition) : null;
            if (acks === 0) this.log.debug({ topic: topic.name, partition: pd.partition, ...err }, 'acks=0 produce failed');
            else fail(err, hint);
          },
        );
        // acks=0 answers before the append; the append was queued above (the log takes
        // appends in call order), so a client's acks=0 writes still land in order.
        if (acks !== 0) pending.push(started);
        return out;
      });
      return { name: topic?.name ?? td.name ?? '', topicId: topic?.topicId ?? td.topicId ?? '', partitions };
    });
    await Promise.all(pending);
    return { correlationId: req.correlationId ?? 0, ...NO_ERROR, responses };
  }

  // ─── InitProducerId ───

  async initProducerId(req: InitProducerIdRequest): Promise<InitProducerIdResponse> {
    const failed = (e: ItemError): InitProducerIdResponse => ({ ...e, producerId: -1, producerEpoch: -1 });
    if ((req.transactionalId ?? '') !== '') return failed(itemError('INVALID_REQUEST', 'transactional ids are not supported yet; send an empty transactional_id for an idempotent producer'));
    const source = this.opts.producerIds;
    if (!source) return failed(itemError('UNSUPPORTED_VERSION', 'this server does not hand out producer ids'));
    try {
      // A fresh id always starts at epoch 0 [KIP-98]. A producer that must reset its
      // sequences (after UNKNOWN_PRODUCER_ID or OUT_OF_ORDER_SEQUENCE_NUMBER) asks for a
      // new id rather than an epoch bump (KIP-360's bump needs transaction state).
      return { ...NO_ERROR, producerId: await source.nextProducerId(), producerEpoch: 0 };
    } catch (e) {
      return failed(this.errorOf(e, 'InitProducerId'));
    }
  }

  // ─── Fetch ───

  async fetch(req: FetchRequest): Promise<FetchResponse> {
    const view = this.opts.metadata();
    const L = this.limits;
    const maxWaitMs = req.maxWaitMs ?? 0;
    const minBytes = req.minBytes ?? 0;
    const maxBytesAsked = req.maxBytes ?? 0;
    const count = req.topics.reduce((n, t) => n + t.partitions.length, 0);
    let whole: ItemError | undefined;
    if (!Number.isInteger(maxWaitMs) || maxWaitMs < 0 || maxWaitMs > L.fetchMaxWaitMsMax) whole = itemError('INVALID_REQUEST', `max_wait_ms ${maxWaitMs} is outside [0, ${L.fetchMaxWaitMsMax}]`);
    else if (!Number.isInteger(minBytes) || minBytes < 0) whole = itemError('INVALID_REQUEST', `min_bytes ${minBytes} is negative`);
    else if (!Number.isInteger(maxBytesAsked) || maxBytesAsked < 0) whole = itemError('INVALID_FETCH_SIZE', `max_bytes ${maxBytesAsked} is negative`);
    else if (count > L.requestPartitionsMax) whole = itemError('INVALID_REQUEST', `${count} partitions in one request; the limit is ${L.requestPartitionsMax}`);
    const maxBytes = Math.min(maxBytesAsked === 0 ? L.fetchBytesDefault : maxBytesAsked, L.fetchBytesMax);

    const seen = new Set<string>();
    const toRead: Array<{ req: FetchPartitionRequest; out: FetchPartitionData }> = [];
    let anyError = false;
    const responses = req.topics.map((ft) => {
      const resolved = whole ? undefined : resolveTopic(view, ft.name, ft.topicId);
      const topic = resolved?.topic;
      const partitions = ft.partitions.map((fp): FetchPartitionData => {
        const out: FetchPartitionData = { partition: fp.partition, ...NO_ERROR, highWatermark: -1, lastStableOffset: -1, logStartOffset: -1, records: Buffer.alloc(0), currentLeader: null };
        const fail = (e: ItemError, hint: LeaderHint | null = null) => {
          anyError = true;
          return Object.assign(out, e, { currentLeader: hint });
        };
        if (whole) return fail(whole);
        if (!topic) return fail(resolved!.error!);
        const key = `${topic.topicId}:${fp.partition}`;
        if (seen.has(key)) return fail(itemError('INVALID_REQUEST', `partition ${topic.name}-${fp.partition} appears more than once in the request`));
        seen.add(key);
        const routed = routePartition(topic, fp.partition, this.opts.brokerId);
        if (routed.error) return fail(routed.error, routed.hint);
        if (!isSafeInt(fp.fetchOffset) || fp.fetchOffset < 0) return fail(itemError('OFFSET_OUT_OF_RANGE', `fetch offset ${fp.fetchOffset} is negative or not an integer`));
        const pmb = fp.partitionMaxBytes ?? 0;
        if (!Number.isInteger(pmb) || pmb < 0) return fail(itemError('INVALID_FETCH_SIZE', `partition_max_bytes ${pmb} is negative`));
        toRead.push({ req: { topicId: topic.topicId, partition: fp.partition, fetchOffset: fp.fetchOffset, maxBytes: Math.min(pmb === 0 ? L.partitionFetchBytesDefault : pmb, maxBytes) }, out });
        return out;
      });
      return { name: topic?.name ?? ft.name ?? '', topicId: topic?.topicId ?? ft.topicId ?? '', partitions };
    });

    if (toRead.length > 0) {
      try {
        // An error anywhere answers at once, as Kafka does: the client must act on it.
        const results = await this.opts.replicaManager.fetch(toRead.map((r) => r.req), anyError ? 0 : maxWaitMs, minBytes);
        let total = 0;
        results.forEach((r, i) => {
          const out = toRead[i]!.out;
          out.errorCode = r.errorCode;
          out.errorMessage = r.errorMessage ?? '';
          out.highWatermark = r.highWatermark;
          out.lastStableOffset = r.lastStableOffset;
          out.logStartOffset = r.logStartOffset;
          if (r.errorCode === ERRORS.NOT_LEADER_OR_FOLLOWER.code) out.currentLeader = hintFor(this.opts.metadata(), r.topicId, r.partition);
          // The response bound: later partitions give way once it is reached, but the
          // first non-empty one is always whole so a large batch cannot stall a consumer.
          if (r.records.length > 0 && (total === 0 || total + r.records.length <= maxBytes)) {
            out.records = r.records;
            total += r.records.length;
          } else {
            // Left out: no encoder will see it, so its lent read buffer goes back here.
            readBuffers.release(r.records);
          }
        });
      } catch (e) {
        const err = this.errorOf(e, 'Fetch');
        for (const r of toRead) Object.assign(r.out, err);
      }
    }
    return { ...NO_ERROR, correlationId: req.correlationId ?? 0, responses };
  }

  // ─── ListOffsets ───

  async listOffsets(req: ListOffsetsRequest): Promise<ListOffsetsResponse> {
    const view = this.opts.metadata();
    const count = req.topics.reduce((n, t) => n + t.partitions.length, 0);
    const whole = count > this.limits.requestPartitionsMax ? itemError('INVALID_REQUEST', `${count} partitions in one request; the limit is ${this.limits.requestPartitionsMax}`) : undefined;
    const pending: Array<Promise<void>> = [];
    const topics = req.topics.map((lt) => {
      const resolved = whole ? undefined : resolveTopic(view, lt.name, lt.topicId);
      const topic = resolved?.topic;
      const partitions = lt.partitions.map((lp): ListOffsetsPartitionResponse => {
        const out: ListOffsetsPartitionResponse = { partition: lp.partition, ...NO_ERROR, offset: -1, timestamp: -1, currentLeader: null };
        const fail = (e: ItemError, hint: LeaderHint | null = null) => Object.assign(out, e, { currentLeader: hint });
        if (whole) return fail(whole);
        if (!topic) return fail(resolved!.error!);
        const routed = routePartition(topic, lp.partition, this.opts.brokerId);
        if (routed.error) return fail(routed.error, routed.hint);
        if (!isSafeInt(lp.timestamp) || lp.timestamp < -2) return fail(itemError('INVALID_REQUEST', `timestamp ${lp.timestamp} is neither -1 (latest), -2 (earliest) nor a time`));
        pending.push(
          new Promise<{ offset: number; timestamp: number }>((resolve) => resolve(this.opts.replicaManager.listOffset(topic.topicId, lp.partition, lp.timestamp))).then(
            (r) => {
              out.offset = r.offset;
              out.timestamp = r.timestamp;
            },
            (e: unknown) => {
              const err = this.errorOf(e, 'ListOffsets', { topic: topic.name, partition: lp.partition });
              fail(err, err.errorCode === ERRORS.NOT_LEADER_OR_FOLLOWER.code ? hintFor(this.opts.metadata(), topic.topicId, lp.partition) : null);
            },
          ),
        );
        return out;
      });
      return { name: topic?.name ?? lt.name ?? '', topicId: topic?.topicId ?? lt.topicId ?? '', partitions };
    });
    await Promise.all(pending);
    return { ...NO_ERROR, topics };
  }
}

// ─── the gRPC server ───

export interface ClientApiServerOptions extends ClientApiOptions {
  /** host:port; port 0 picks a free port. */
  listen: string;
  /** HTTP/2 receive window for produced bytes; 0 keeps grpc's 64 KiB (see bindServer). */
  receiveWindowBytes?: number;
  /** Adds more services to the same server (node.ts: the consumer-group API). */
  extraServices?: (server: grpc.Server) => void;
}

export interface ClientApiServer {
  readonly port: number;
  readonly handlers: ClientApiHandlers;
  close(): Promise<void>;
}

/** Registers the Raftka service on `server` (node.ts may share one server for several services). */
export function addClientApiService(server: grpc.Server, handlers: ClientApiHandlers, logger: Logger): void {
  const log = componentLogger(logger, 'client-api-stream');
  const h = handlers;
  const onError =
    (what: string) =>
    <T>(e: unknown): T =>
      ({ ...h.topLevelError(e, what), ...EMPTY[what] }) as T;
  // Answers on a stream are matched by correlation id, so an error answer carries it too.
  const produceError = (e: unknown, req: ProduceRequest): ProduceResponse => ({ ...onError('Produce')<ProduceResponse>(e), correlationId: req.correlationId ?? 0 });
  const fetchError = (e: unknown, req: FetchRequest): FetchResponse => ({ ...onError('Fetch')<FetchResponse>(e), correlationId: req.correlationId ?? 0 });
  const impl: grpc.UntypedServiceImplementation = {
    Metadata: unaryHandler(async (req: MetadataRequest) => h.metadata(req), onError('Metadata')),
    DescribeCluster: unaryHandler(async () => h.describeCluster(), onError('DescribeCluster')),
    DescribeTopics: unaryHandler(async (req: DescribeTopicsRequest) => h.describeTopics(req), onError('DescribeTopics')),
    CreateTopics: unaryHandler((req: CreateTopicsRequest) => h.createTopics(req), onError('CreateTopics')),
    DeleteTopics: unaryHandler((req: DeleteTopicsRequest) => h.deleteTopics(req), onError('DeleteTopics')),
    CreatePartitions: unaryHandler((req: CreatePartitionsRequest) => h.createPartitions(req), onError('CreatePartitions')),
    IncrementalAlterConfigs: unaryHandler((req: IncrementalAlterConfigsRequest) => h.incrementalAlterConfigs(req), onError('IncrementalAlterConfigs')),
    ElectLeaders: unaryHandler((req: ElectLeadersRequest) => h.electLeaders(req), onError('ElectLeaders')),
    Produce: unaryHandler((req: ProduceRequest) => h.produce(req), produceError),
    Fetch: unaryHandler((req: FetchRequest) => h.fetch(req), fetchError),
    ListOffsets: unaryHandler((req: ListOffsetsRequest) => h.listOffsets(req), onError('ListOffsets')),
    InitProducerId: unaryHandler((req: InitProducerIdRequest) => h.initProducerId(req), onError('InitProducerId')),
    ProduceStream: (call: grpc.ServerDuplexStream<ProduceRequest, ProduceResponse>) => correlatedStream(call, (req) => h.produce(req), produceError, h.limits.streamInFlightMax, log),
    FetchStream: (call: grpc.ServerDuplexStream<FetchRequest, FetchResponse>) => correlatedStream(call, (req) => h.fetch(req), fetchError, h.limits.streamInFlightMax, log),
  };
  server.addService(serviceDefinition(RaftkaRpc, { Fetch: releaseFetchBuffers, FetchStream: releaseFetchBuffers }), impl);
}

/** A Fetch response was encoded: the segment read buffers under its records go back to the pool. */
function releaseFetchBuffers(res: FetchResponse): void {
  for (const t of res.responses) for (const p of t.partitions) readBuffers.release(p.records);
}

/** Empty lists for each response type, so a top-level error response still decodes to the full shape. */
const EMPTY: Record<string, Record<string, unknown>> = {
  Metadata: { clusterId: '', controllerId: -1, brokers: [], topics: [] },
  DescribeCluster: { clusterId: '', controllerId: -1, brokers: [], voters: [] },
  DescribeTopics: { topics: [] },
  CreateTopics: { topics: [] },
  DeleteTopics: { topics: [] },
  CreatePartitions: { topics: [] },
  IncrementalAlterConfigs: { resources: [] },
  ElectLeaders: { topics: [] },
  Produce: { correlationId: 0, responses: [] },
  Fetch: { correlationId: 0, responses: [] },
  ListOffsets: { topics: [] },
  InitProducerId: { producerId: -1, producerEpoch: -1 },
};

/**
 * ProduceStream and FetchStream: requests are handled concurrently and answered as they
 * complete (each answer carries its request's correlation id). At most `maxInFlight` are
 * in flight; past that the server stops reading the stream, and HTTP/2 flow control
 * pushes back on the client.
 */
function correlatedStream<Req extends { correlationId?: number }, Res>(
  call: grpc.ServerDuplexStream<Req, Res>,
  handle: (req: Req) => Promise<Res>,
  onError: (e: unknown, req: Req) => Res,
  maxInFlight: number,
  log: Logger,
): void {
  let inFlight = 0;
  let ended = false;
  let closed = false;
  const maybeEnd = () => {
    if (ended && inFlight === 0 && !closed) {
      closed = true;
      call.end();
    }
  };
  call.on('data', (req: Req) => {
    inFlight++;
    if (inFlight >= maxInFlight) call.pause();
    handle(req)
      .catch((e: unknown) => onError(e, req))
      .then((res) => {
        if (!closed && !call.cancelled) call.write(res);
      })
      .catch((e: unknown) => log.warn({ err: (e as Error).message, path: call.getPath() }, 'writing a stream response failed'))
      .finally(() => {
        inFlight--;
        if (inFlight < maxInFlight) call.resume();
        maybeEnd();
      });
  });
  call.on('end', () => {
    ended = true;
    maybeEnd();
  });
  call.on('error', (e: Error) => {
    closed = true;
    log.debug({ err: e.message, path: call.getPath() }, 'stream ended by the client');
  });
  call.on('cancelled', () => {
    closed = true;
  });
}

/** Starts the public API on `listen`. */
export async function startClientApiServer(opts: ClientApiServerOptions): Promise<ClientApiServer> {
  const handlers = new ClientApiHandlers(opts);
  const server = new grpc.Server({ ...SERVER_OPTIONS, 'grpc.max_receive_message_length': MESSAGE_BYTES_MAX });
  addClientApiService(server, handlers, opts.logger);
  opts.extraServices?.(server);
  // gRPC server reflection and the standard health service, for generic gRPC tools.
  const standard = addStandardServices(server);
  const port = await bindServer(server, opts.listen, opts.receiveWindowBytes ?? DATA_FLOW_CONTROL_WINDOW_BYTES);
  componentLogger(opts.logger, 'client-api', { brokerId: opts.brokerId }).info({ listen: opts.listen, port }, 'client API listening');
  let closing: Promise<void> | undefined;
  return {
    port,
    handlers,
    close: () => {
      if (!closing) {
        standard.notServing();
        closing = shutdownServer(server);
      }
      return closing;
    },
  };
}

