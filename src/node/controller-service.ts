// The controller's I/O shell: follows Raft leadership, activates the pure QuorumController
// on the committed image when this node leads, proposes the records each request yields
// as one Raft entry, and answers only once that entry commits (KIP-631's rule). It also
// ticks the controller (session expiry, preferred leaders). See src/controller/controller.ts
// "How an I/O shell drives it" for the protocol this follows step by step.
import { RaftkaError, ERRORS, isRaftkaError, type ErrorName } from '../common/errors.ts';
import { componentLogger, type Logger } from '../common/logger.ts';
import type { Clock } from '../common/clock.ts';
import type { Random } from '../common/random.ts';
import { QuorumController, type AlterableConfig, type ControllerConfig, type ControllerResult } from '../controller/index.ts';
import { effectiveTopicConfigEntries, encodeRecords, type MetadataRecord } from '../metadata/index.ts';
import type { ConfigResourceType } from '../metadata/records.ts';
import type { MetadataStateMachine } from '../metadata/state-machine.ts';
import type { RaftDriver, LeaderChange } from '../raft/driver.ts';
import type {
  AllocateProducerIdsRequest,
  AllocateProducerIdsResponse,
  AlterPartitionRpcRequest,
  AlterPartitionRpcResponse,
  BrokerHeartbeatRequest,
  BrokerHeartbeatResponse,
  BrokerRegistrationRequest,
  BrokerRegistrationResponse,
  ControlledShutdownRequest,
  ControlledShutdownResponse,
  ControllerRpcHandler,
  CreatePartitionsRequest,
  CreatePartitionsResponse,
  CreateTopicsRequest,
  CreateTopicsResponse,
  DeleteTopicsRequest,
  DeleteTopicsResponse,
  ElectLeadersRequest,
  ElectLeadersResponse,
  IncrementalAlterConfigsRequest,
  IncrementalAlterConfigsResponse,
} from '../server/types.ts';
import { CONFIG_OP_DELETE, CONFIG_OP_SET, CONFIG_RESOURCE_BROKER, CONFIG_RESOURCE_TOPIC, ELECTION_PREFERRED, ELECTION_UNCLEAN } from '../proto/raftka.ts';

export interface ControllerServiceOptions {
  nodeId: number;
  driver: RaftDriver;
  stateMachine: MetadataStateMachine;
  config: ControllerConfig;
  clock: Clock;
  random: Random;
  logger: Logger;
  /** Cluster-level topic defaults written once by the first controller (e.g. min.insync.replicas). */
  clusterConfigDefaults?: Record<string, string>;
  /** A new controller gives brokers this long to find it before fencing silent ones. */
  initialSessionMs?: number;
  tickIntervalMs?: number;
  /**
   * Whether a node currently has a connection to us. A new controller fences at once
   * the brokers that have none (the old controller's node, dead with its broker),
   * instead of waiting for their sessions to lapse.
   */
  isPeerConnected?: (nodeId: number) => boolean;
}

const notController = (msg = 'this node is not the active controller') => new RaftkaError('NOT_CONTROLLER', msg);

export class ControllerService implements ControllerRpcHandler {
  private readonly controller: QuorumController;
  private readonly log: Logger;
  /** The term this node activated at; -1 while inactive. */
  private activeTerm = -1;
  /** Resolves when the last proposed entry commits: responses without records wait for it. */
  private lastProposal: Promise<unknown> = Promise.resolve();
  private timer: NodeJS.Timeout | undefined;
  private unsubscribe: (() => void) | undefined;
  private readonly onLeaderChange = (c: LeaderChange) => this.leadershipChanged(c);

  constructor(private readonly opts: ControllerServiceOptions) {
    this.controller = new QuorumController(opts.random, opts.config);
    this.log = componentLogger(opts.logger, 'controller', { nodeId: opts.nodeId });
  }

  start(): void {
    this.opts.driver.on('leaderChange', this.onLeaderChange);
    // A new leader can activate only once its own no-op (term T) is applied: then the
    // image holds every entry of earlier terms.
    this.unsubscribe = this.opts.stateMachine.subscribe(() => this.maybeActivate());
    this.timer = setInterval(() => this.tick(), this.opts.tickIntervalMs ?? 100);
    this.timer.unref();
    this.maybeActivate();
  }

  stop(): void {
    this.opts.driver.off('leaderChange', this.onLeaderChange);
    this.unsubscribe?.();
    if (this.timer) clearInterval(this.timer);
    this.deactivate('stopping');
  }

  get isActive(): boolean {
    return this.activeTerm >= 0;
  }

  private leadershipChanged(c: LeaderChange): void {
    if (this.activeTerm >= 0 && (c.role !== 'leader' || c.term !== this.activeTerm)) this.deactivate(`leadership moved (term ${c.term}, leader ${c.leaderId})`);
    this.maybeActivate();
  }

  private maybeActivate(): void {
    const d = this.opts.driver;
    if (this.activeTerm >= 0 || !d.isLeader) return;
    const image = this.opts.stateMachine.image;
    if (image.controllerEpoch !== d.term) return;
    const now = this.opts.clock.monotonicMs();
    const result = this.controller.activate(image, d.term, now, {
      ...(this.opts.initialSessionMs !== undefined ? { initialSessionMs: this.opts.initialSessionMs } : {}),
      ...(this.opts.clusterConfigDefaults ? { clusterConfigDefaults: this.opts.clusterConfigDefaults } : {}),
    });
    this.activeTerm = d.term;
    this.log.info({ term: d.term, offset: image.offset }, 'became the active controller');
    if (result.records.length > 0) void this.propose(result.records).catch(() => undefined);
    const connected = this.opts.isPeerConnected;
    if (connected) {
      for (const b of image.brokers.values()) {
        if (b.brokerId !== this.opts.nodeId && !b.fenced && !connected(b.brokerId)) this.brokerDisconnected(b.brokerId);
      }
    }
  }

  private deactivate(why: string): void {
    if (this.activeTerm < 0) return;
    this.log.info({ term: this.activeTerm, why }, 'no longer the active controller');
    this.activeTerm = -1;
    this.controller.deactivate();
    this.lastProposal = Promise.resolve();
  }

  /** Proposes one atomic batch; a failed proposal ends this activation (step 4). */
  private propose(records: readonly MetadataRecord[]): Promise<void> {
    const term = this.activeTerm;
    const p = this.opts.driver.propose(encodeRecords(records)).then(
      () => undefined,
      (e: unknown) => {
        if (this.activeTerm === term) this.deactivate(`proposal failed: ${(e as Error).message}`);
        throw isRaftkaError(e) ? notController(`metadata write failed: ${e.message}`) : e;
      },
    );
    this.lastProposal = p.catch(() => undefined);
    return p;
  }

  /** Runs one controller call and answers once its records (or everything before) commit. */
  private async run<R>(fn: (now: number) => ControllerResult<R>): Promise<R> {
    if (this.activeTerm < 0) throw notController();
    const result = fn(this.opts.clock.monotonicMs());
    if (result.records.length > 0) await this.propose(result.records);
    else await this.lastProposal;
    if (this.activeTerm < 0) throw notController('leadership moved before the answer was committed');
    return result.response;
  }

  /**
   * The broker's process is gone (its connections dropped): fence it now rather than
   * after broker.session.timeout.ms, so its leaderships move at once [KIP-631 fast path].
   */
  brokerDisconnected(brokerId: number): void {
    if (this.activeTerm < 0) return;
    const b = this.controller.image.broker(brokerId);
    if (!b || b.fenced) return;
    try {
      const r = this.controller.brokerDisconnected(brokerId, b.brokerEpoch, this.opts.clock.monotonicMs());
      if (r.records.length > 0) {
        this.log.info({ brokerId, brokerEpoch: b.brokerEpoch }, 'fencing a disconnected broker');
        void this.propose(r.records).catch(() => undefined);
      }
    } catch (e) {
      this.log.error({ err: e, brokerId }, 'brokerDisconnected failed');
    }
  }

  private tick(): void {
    if (this.activeTerm < 0) return;
    try {
      const r = this.controller.tick(this.opts.clock.monotonicMs());
      if (r.response.fencedBrokers.length > 0) this.log.info({ fenced: r.response.fencedBrokers }, 'fenced brokers that missed heartbeats');
      if (r.records.length > 0) void this.propose(r.records).catch(() => undefined);
    } catch (e) {
      this.log.error({ err: e }, 'controller tick failed');
    }
  }

  // ---- RPC handlers (wire types ↔ controller types) ----

  private static wireError(e: unknown): { errorCode: number; errorMessage: string } {
    const name: ErrorName = isRaftkaError(e) ? e.errorName : 'UNKNOWN_SERVER_ERROR';
    return { errorCode: ERRORS[name].code, errorMessage: (e as Error).message };
  }

  async brokerRegistration(req: BrokerRegistrationRequest): Promise<BrokerRegistrationResponse> {
    try {
      const r = await this.run((now) =>
        this.controller.registerBroker(
          { brokerId: req.brokerId, incarnationId: req.incarnationId, endpoints: req.listeners, rack: req.rack === '' ? null : req.rack, previousBrokerEpoch: req.previousBrokerEpoch },
          now,
        ),
      );
      if (r.errorCode === 0) this.ensureRaftMember(req.brokerId);
      return { errorCode: r.errorCode, errorMessage: r.errorMessage ?? '', brokerEpoch: r.brokerEpoch };
    } catch (e) {
      return { ...ControllerService.wireError(e), brokerEpoch: -1 };
    }
  }

  /**
   * A registered broker that is not a voter joins the quorum as an observer, so the
   * metadata log reaches it (broker-only nodes, KRaft's observers). One config change
   * at a time: if another is in flight, the broker's next registration or heartbeat
   * retries.
   */
  private ensureRaftMember(brokerId: number): void {
    const cfg = this.opts.driver.clusterConfig();
    if (cfg.voters.some((v) => v.nodeId === brokerId) || cfg.observers.includes(brokerId)) return;
    this.opts.driver.proposeConfigChange({ type: 'addObserver', nodeId: brokerId }).then(
      () => this.log.info({ brokerId }, 'added broker-only node as a Raft observer'),
      (e: unknown) => this.log.debug({ brokerId, err: (e as Error).message }, 'adding observer deferred'),
    );
  }

  async brokerHeartbeat(req: BrokerHeartbeatRequest): Promise<BrokerHeartbeatResponse> {
    try {
      // Protocol convention: a broker reports currentMetadataOffset -1 until it has
      // replayed its own registration and recovered its logs (KIP-631 "caught up").
      const r = await this.run((now) =>
        this.controller.brokerHeartbeat(
          {
            brokerId: req.brokerId,
            brokerEpoch: req.brokerEpoch,
            currentMetadataOffset: req.currentMetadataOffset,
            caughtUp: req.currentMetadataOffset >= 0,
            wantFence: req.wantFence,
            wantShutDown: req.wantShutDown,
            leaderlessReplicas: req.leaderlessReplicas ?? [],
          },
          now,
        ),
      );
      if (r.errorCode === 0) this.ensureRaftMember(req.brokerId);
      return { errorCode: r.errorCode, errorMessage: r.errorMessage ?? '', isCaughtUp: r.isCaughtUp, isFenced: r.isFenced, shouldShutDown: r.shouldShutDown };
    } catch (e) {
      return { ...ControllerService.wireError(e), isCaughtUp: false, isFenced: true, shouldShutDown: false };
    }
  }

  async alterPartition(req: AlterPartitionRpcRequest): Promise<AlterPartitionRpcResponse> {
    try {
      const r = await this.run((now) => this.controller.alterPartition(req, now));
      return { errorCode: r.errorCode, errorMessage: r.errorMessage ?? '', isr: r.isr, leaderEpoch: r.leaderEpoch, partitionEpoch: r.partitionEpoch };
    } catch (e) {
      return ControllerService.wireError(e);
    }
  }

  async controlledShutdown(req: ControlledShutdownRequest): Promise<ControlledShutdownResponse> {
    try {
      const r = await this.run((now) => this.controller.controlledShutdown(req, now));
      return { errorCode: r.errorCode, errorMessage: r.errorMessage ?? '', remainingPartitions: [] };
    } catch (e) {
      return { ...ControllerService.wireError(e), remainingPartitions: [] };
    }
  }

  async allocateProducerIds(req: AllocateProducerIdsRequest): Promise<AllocateProducerIdsResponse> {
    try {
      // Answered after the ProducerIds record commits: a block handed out is then in the
      // metadata log, and the next controller's nextProducerId is past it [KIP-730].
      const r = await this.run((now) => this.controller.allocateProducerIds({ brokerId: req.brokerId, brokerEpoch: req.brokerEpoch }, now));
      return { errorCode: r.errorCode, errorMessage: r.errorMessage ?? '', producerIdStart: r.producerIdStart, producerIdLen: r.producerIdLen };
    } catch (e) {
      return { ...ControllerService.wireError(e), producerIdStart: -1, producerIdLen: 0 };
    }
  }

  async createTopics(req: CreateTopicsRequest): Promise<CreateTopicsResponse> {
    try {
      const r = await this.run((now) =>
        this.controller.createTopics(
          {
            validateOnly: req.validateOnly ?? false,
            topics: req.topics.map((t) => {
              const manual = t.assignments !== undefined && t.assignments.length > 0;
              return {
                name: t.name,
                // With a manual placement the counts follow from it; proto3 has no
                // "unset", so 0 and -1 both mean "use the default".
                ...(!manual && t.numPartitions !== undefined && t.numPartitions > 0 ? { numPartitions: t.numPartitions } : {}),
                ...(!manual && t.replicationFactor !== undefined && t.replicationFactor > 0 ? { replicationFactor: t.replicationFactor } : {}),
                ...(manual ? { assignments: [...t.assignments!].sort((a, b) => a.partition - b.partition).map((a) => a.brokerIds) } : {}),
                ...(t.configs ? { configs: t.configs } : {}),
              };
            }),
          },
          now,
        ),
      );
      // Kafka answers CreateTopics with the effective configs: the request's overrides
      // over the cluster defaults this controller's image holds now.
      const clusterConfigs = this.controller.image.configsOf('cluster', '');
      const overridesOf = new Map(req.topics.map((t) => [t.name, t.configs ?? {}]));
      return {
        errorCode: 0,
        errorMessage: '',
        topics: r.topics.map((t) => ({
          name: t.name,
          topicId: t.topicId,
          errorCode: t.errorCode,
          errorMessage: t.errorMessage ?? '',
          numPartitions: t.numPartitions,
          replicationFactor: t.replicationFactor,
          configs: t.errorCode === 0 ? effectiveTopicConfigEntries(clusterConfigs, overridesOf.get(t.name) ?? {}) : [],
        })),
      };
    } catch (e) {
      return { ...ControllerService.wireError(e), topics: [] };
    }
  }

  async incrementalAlterConfigs(req: IncrementalAlterConfigsRequest): Promise<IncrementalAlterConfigsResponse> {
    try {
      // The client API has checked resource types and operations; anything else that
      // arrives here (a forwarded request from another version) is refused per resource.
      const mapped = req.resources.map((res) => {
        const type: ConfigResourceType | undefined =
          res.resourceType === CONFIG_RESOURCE_TOPIC ? 'topic' : res.resourceType === CONFIG_RESOURCE_BROKER && res.resourceName === '' ? 'cluster' : undefined;
        const badOp = res.configs.find((c) => (c.operation ?? CONFIG_OP_SET) !== CONFIG_OP_SET && c.operation !== CONFIG_OP_DELETE);
        return { res, type, badOp };
      });
      const valid = mapped.filter((m) => m.type !== undefined && m.badOp === undefined);
      const r = await this.run((now) =>
        this.controller.incrementalAlterConfigs(
          {
            validateOnly: req.validateOnly ?? false,
            resources: valid.map(({ res, type }) => ({
              resourceType: type!,
              resourceName: res.resourceName,
              configs: res.configs.map((c): AlterableConfig => ((c.operation ?? CONFIG_OP_SET) === CONFIG_OP_DELETE ? { name: c.name, op: 'delete', value: null } : { name: c.name, op: 'set', value: c.value ?? '' })),
            })),
          },
          now,
        ),
      );
      let next = 0;
      return {
        errorCode: 0,
        errorMessage: '',
        resources: mapped.map(({ res, type, badOp }) => {
          const base = { resourceType: res.resourceType, resourceName: res.resourceName };
          if (type === undefined) return { ...base, errorCode: ERRORS.INVALID_REQUEST.code, errorMessage: `resource type ${res.resourceType} with name ${JSON.stringify(res.resourceName)} cannot be altered` };
          if (badOp) return { ...base, errorCode: ERRORS.INVALID_REQUEST.code, errorMessage: `config ${badOp.name}: operation ${badOp.operation} is not supported (0 SET, 1 DELETE)` };
          const x = r.resources[next++];
          if (!x) return { ...base, errorCode: ERRORS.INVALID_REQUEST.code, errorMessage: 'too many resources in one request' };
          return { ...base, errorCode: x.errorCode, errorMessage: x.errorMessage ?? '' };
        }),
      };
    } catch (e) {
      return { ...ControllerService.wireError(e), resources: [] };
    }
  }

  async electLeaders(req: ElectLeadersRequest): Promise<ElectLeadersResponse> {
    const type = req.electionType ?? ELECTION_PREFERRED;
    if (type !== ELECTION_PREFERRED && type !== ELECTION_UNCLEAN) {
      return { errorCode: ERRORS.INVALID_REQUEST.code, errorMessage: `election type ${type} is neither 0 (preferred) nor 1 (unclean)`, topics: [] };
    }
    try {
      const named = req.topics ?? [];
      const r = await this.run((now) =>
        this.controller.electLeaders(
          {
            electionType: type === ELECTION_UNCLEAN ? 'unclean' : 'preferred',
            ...(named.length > 0 ? { partitions: named.flatMap((t) => t.partitions.map((partition) => ({ topic: t.name, partition }))) } : {}),
          },
          now,
        ),
      );
      // The controller answers one flat list in request order; group it by topic.
      const byTopic = new Map<string, ElectLeadersResponse['topics'][number]>();
      for (const x of r.results) {
        let t = byTopic.get(x.topic);
        if (!t) byTopic.set(x.topic, (t = { name: x.topic, partitions: [] }));
        t.partitions.push({ partition: x.partition, errorCode: x.errorCode, errorMessage: x.errorMessage ?? '', leaderId: x.leader });
      }
      return { errorCode: 0, errorMessage: '', topics: [...byTopic.values()] };
    } catch (e) {
      return { ...ControllerService.wireError(e), topics: [] };
    }
  }

  async deleteTopics(req: DeleteTopicsRequest): Promise<DeleteTopicsResponse> {
    try {
      const r = await this.run((now) => this.controller.deleteTopics({ ...(req.names ? { topicNames: req.names } : {}), ...(req.topicIds ? { topicIds: req.topicIds } : {}) }, now));
      return { errorCode: 0, errorMessage: '', topics: r.topics.map((t) => ({ name: t.name, topicId: t.topicId, errorCode: t.errorCode, errorMessage: t.errorMessage ?? '' })) };
    } catch (e) {
      return { ...ControllerService.wireError(e), topics: [] };
    }
  }

  async createPartitions(req: CreatePartitionsRequest): Promise<CreatePartitionsResponse> {
    try {
      const r = await this.run((now) =>
        this.controller.createPartitions(
          {
            validateOnly: req.validateOnly ?? false,
            topics: req.topics.map((t) => ({
              name: t.name,
              count: t.count,
              ...(t.assignments && t.assignments.length > 0 ? { assignments: [...t.assignments].sort((a, b) => a.partition - b.partition).map((a) => a.brokerIds) } : {}),
            })),
          },
          now,
        ),
      );
      return { errorCode: 0, errorMessage: '', topics: r.topics.map((t) => ({ name: t.name, errorCode: t.errorCode, errorMessage: t.errorMessage ?? '' })) };
    } catch (e) {
      return { ...ControllerService.wireError(e), topics: [] };
    }
  }
}
