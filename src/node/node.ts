// One Raftka process, built from its configuration: the Raft quorum member with the
// metadata state machine, the controller shell (active while this node leads), the
// replica manager, the internal listener (replica fetch), the client API, and the
// broker lifecycle (registration, heartbeats, controlled shutdown).
//
// Listeners: CLIENT (public gRPC API), REPLICATION (replica fetch), CONTROLLER (Raft and
// the controller RPCs, at the addresses controller.quorum.voters names, so a broker can
// reach the controller before anything is registered).
import type { Server as GrpcServer } from '@grpc/grpc-js';
import { RaftkaError, errorByCode } from '../common/errors.ts';
import { systemClock, type Clock } from '../common/clock.ts';
import { systemRandom } from '../common/random.ts';
import { componentLogger, type Logger } from '../common/logger.ts';
import { MetadataStateMachine } from '../metadata/state-machine.ts';
import type { MetadataImage } from '../metadata/image.ts';
import { controllerConfig } from '../controller/index.ts';
import { LIST_LENGTH_MAX } from '../controller/shape.ts';
import { ReplicaManager } from '../broker/replica-manager.ts';
import { assignmentsFor } from '../broker/assignments.ts';
import { ProducerIdManager } from '../broker/producer-id-manager.ts';
import { startRaftNode, parseVoters, type RaftNodeHandle } from '../io/raft-node.ts';
import { checkMetaProperties } from '../io/meta-properties.ts';
import { addControllerService, GrpcControllerClient } from '../io/controller-rpc.ts';
import { TcpReplicaFetchClient, startTcpReplicaFetchServer, type TcpReplicaFetchServer } from '../io/replica-fetch-tcp.ts';
import { startClientApiServer, type ClientApiServer } from '../server/client-api.ts';
import { addGroupService } from '../server/group-api.ts';
import { GroupCoordinator, OFFSETS_TOPIC } from '../group/coordinator.ts';
import { buildBatch } from '../log/batch.ts';
import { takeCleanShutdown, writeCleanShutdown } from '../log/clean-shutdown.ts';
import type { AdminClient, ControllerRpcHandler } from '../server/types.ts';
import { parseListeners, topicDefaults, type Listener, type NodeConfig } from '../node-config.ts';
import { BrokerLifecycle, type BrokerState } from './broker-lifecycle.ts';
import { applyOnceRegistered } from './registration-gate.ts';
import { ControllerService } from './controller-service.ts';
import { metadataView } from './metadata-view.ts';
import { installTestHooks } from './test-hooks.ts';

export interface NodeOptions {
  logger: Logger;
  clock?: Clock;
  /** Test-only: fsync observer for partition logs (power-loss simulation). */
  onSync?: (path: string, length: number) => void;
}

export interface RaftkaNode {
  readonly nodeId: number;
  readonly clusterId: string;
  readonly clientPort: number;
  readonly replicationPort: number;
  readonly controllerPort: number;
  readonly replicaManager: ReplicaManager;
  image(): MetadataImage;
  brokerState(): BrokerState;
  isActiveController(): boolean;
  /** Moves leaderships away (and Raft leadership), bounded by controlled.shutdown.timeout.ms, then closes. */
  shutdown(): Promise<void>;
  /** Closes everything at once (no controlled shutdown). */
  close(): Promise<void>;
}

function address(l: Listener): string {
  return `${l.host.includes(':') ? `[${l.host}]` : l.host}:${l.port}`;
}

export async function startNode(cfg: NodeConfig, opts: NodeOptions): Promise<RaftkaNode> {
  const nodeId = cfg['node.id'];
  const logger = opts.logger.child({ nodeId });
  const log = componentLogger(logger, 'node');
  const hooks = installTestHooks(cfg, { clock: opts.clock ?? systemClock, onSync: opts.onSync, logger });
  const clock = hooks.clock;
  const dir = cfg['log.dirs'];
  const meta = checkMetaProperties(dir, { nodeId });
  const previousBrokerEpoch = await takeCleanShutdown(dir, log);
  const clusterId = meta.clusterId;
  const listeners = parseListeners(cfg.listeners);
  const advertised = cfg['advertised.listeners'] !== '' ? parseListeners(cfg['advertised.listeners'], 'advertised.listeners') : listeners;
  const isController = cfg['process.roles'].includes('controller');
  if (!listeners.has('CONTROLLER')) {
    // Broker-only nodes need it too: the Raft leader pushes the metadata log to them.
    throw new RaftkaError('INVALID_CONFIG', 'Configuration listeners needs a CONTROLLER listener (the Raft endpoint)');
  }
  const voters = parseVoters(cfg['controller.quorum.voters']);
  const voterAddress = new Map(voters.map((v) => [v.nodeId, v.address]));
  const stateMachine = new MetadataStateMachine();
  const closers: Array<() => Promise<void> | void> = [() => hooks.close()];
  const closeAll = async () => {
    for (const c of closers.splice(0).reverse()) {
      try {
        await c();
      } catch (e) {
        log.warn({ err: (e as Error).message }, 'error while closing');
      }
    }
  };

  try {
    // The controller RPCs are registered on the Raft listener before it binds; they
    // answer NOT_CONTROLLER until the service below exists and is active.
    // Filled in below; closures created earlier read it through this holder.
    const late: { service?: ControllerService; lifecycle?: BrokerLifecycle; raft?: RaftNodeHandle } = {};
    const forward = <K extends keyof ControllerRpcHandler>(k: K) =>
      ((req: never) => {
        const service = late.service;
        if (!service) return Promise.reject(new RaftkaError('NOT_CONTROLLER', 'controller is starting'));
        return (service[k] as (r: never) => Promise<unknown>)(req);
      }) as ControllerRpcHandler[K];
    const handler: ControllerRpcHandler = {
      brokerRegistration: forward('brokerRegistration'),
      brokerHeartbeat: forward('brokerHeartbeat'),
      alterPartition: forward('alterPartition'),
      controlledShutdown: forward('controlledShutdown'),
      createTopics: forward('createTopics'),
      deleteTopics: forward('deleteTopics'),
      createPartitions: forward('createPartitions'),
      incrementalAlterConfigs: forward('incrementalAlterConfigs'),
      electLeaders: forward('electLeaders'),
      allocateProducerIds: forward('allocateProducerIds'),
    };
    const controllerListener = listeners.get('CONTROLLER')!;
    const raft: RaftNodeHandle = await startRaftNode({
      nodeId,
      clusterId,
      dir,
      listen: address(controllerListener),
      voters,
      stateMachine,
      raftConfig: { electionTimeoutMs: cfg['raft.election.timeout.ms'] },
      snapshotIntervalEntries: 10_000,
      clock,
      logger,
      registerServices: (server: GrpcServer) => addControllerService(server, handler, logger),
      // A voter's Raft stream to us dropped: if no new one shows up shortly (a reconnect),
      // its process is gone; fence it at once instead of waiting out its session.
      onPeerStreamClosed: (peer) => {
        const t = setTimeout(() => {
          if (late.raft && late.raft.transport.incomingStreams(peer) === 0) late.service?.brokerDisconnected(peer);
        }, 200);
        t.unref();
      },
    });
    late.raft = raft;
    closers.push(() => raft.close());
    raft.driver.on('fatal', (e: unknown) => {
      log.fatal({ err: e }, 'metadata log failed; stopping');
      void closeAll().finally(() => process.exit(70));
    });

    const sessionMs = cfg['broker.session.timeout.ms'];
    const service = !isController ? undefined : new ControllerService({
      nodeId,
      driver: raft.driver,
      stateMachine,
      config: controllerConfig({
        'broker.session.timeout.ms': sessionMs,
        'num.partitions': cfg['num.partitions'],
        'default.replication.factor': cfg['default.replication.factor'],
      }),
      clock,
      random: systemRandom,
      logger,
      clusterConfigDefaults: {
        'min.insync.replicas': String(cfg['min.insync.replicas']),
        'unclean.leader.election.enable': String(cfg['unclean.leader.election.enable']),
        ...topicDefaults(cfg),
      },
      // Live brokers find a new controller within a few heartbeats; a broker that died
      // with the old controller is fenced well before a full session.
      initialSessionMs: Math.min(sessionMs, 3 * cfg['broker.heartbeat.interval.ms']),
      // Every live voter keeps a Raft stream to the leader (it had to vote for it).
      isPeerConnected: (id) => !voterAddress.has(id) || raft.transport.incomingStreams(id) > 0,
    });
    if (service) {
      late.service = service;
      service.start();
      closers.push(() => service.stop());
    }

    // The Raft leader is the controller. A node that does not know it yet (a broker-only
    // node before it is an observer) tries the voters in turn.
    let probe = 0;
    const controllerAddress = () => {
      const leader = raft.driver.leaderId;
      if (leader !== null && voterAddress.get(leader)) return voterAddress.get(leader);
      const v = voters[probe++ % voters.length];
      return v?.address || undefined;
    };
    const controllerClient = new GrpcControllerClient({ controllerAddress, brokerEpoch: () => late.lifecycle?.brokerEpoch ?? -1, logger });
    closers.push(() => controllerClient.close());
    // Replica fetch runs over our own framed TCP protocol: measured 4-9x the bytes/s of
    // grpc-js on this machine (npm run bench -- replica-transport).
    const fetchClient = new TcpReplicaFetchClient({ logger });
    closers.push(() => fetchClient.close());

    const rm = new ReplicaManager({
      brokerId: nodeId,
      brokerEpoch: () => late.lifecycle?.brokerEpoch ?? -1,
      dataDir: dir,
      clock,
      logger,
      fetchClient,
      controller: controllerClient,
      topicDefaults: topicDefaults(cfg),
      defaultMinInsyncReplicas: cfg['min.insync.replicas'],
      replicaLagTimeMaxMs: cfg['replica.lag.time.max.ms'],
      replicaFetchWaitMaxMs: cfg['replica.fetch.wait.max.ms'],
      replicaFetchMaxBytes: cfg['replica.fetch.max.bytes'],
      retentionCheckIntervalMs: cfg['log.retention.check.interval.ms'],
      producerIdExpirationMs: cfg['producer.id.expiration.ms'],
      producerIdExpirationCheckIntervalMs: cfg['producer.id.expiration.check.interval.ms'],
      ...(hooks.onSync ? { onSync: hooks.onSync } : {}),
    });
    rm.start();
    closers.push(async () => {
      const clean = await rm.close();
      // Only once every log is flushed and sealed, and only for a registration we had.
      const epoch = late.lifecycle?.brokerEpoch ?? -1;
      if (clean && epoch >= 0) await writeCleanShutdown(dir, epoch);
    });

    const internal: TcpReplicaFetchServer = await startTcpReplicaFetchServer({ listen: address(listeners.get('REPLICATION')!), handler: rm, logger });
    closers.push(() => internal.close());

    // Admin requests go to the active controller: in-process when that is us, else over
    // the internal API [KIP-590 forwarding].
    const admin: AdminClient = {
      createTopics: (req) => (service?.isActive ? service.createTopics(req) : controllerClient.createTopics(req)),
      deleteTopics: (req) => (service?.isActive ? service.deleteTopics(req) : controllerClient.deleteTopics(req)),
      createPartitions: (req) => (service?.isActive ? service.createPartitions(req) : controllerClient.createPartitions(req)),
      incrementalAlterConfigs: (req) => (service?.isActive ? service.incrementalAlterConfigs(req) : controllerClient.incrementalAlterConfigs(req)),
      electLeaders: (req) => (service?.isActive ? service.electLeaders(req) : controllerClient.electLeaders(req)),
    };
    // InitProducerId: ids from blocks the active controller allocates [KIP-730].
    const producerIds = new ProducerIdManager({
      allocate: async () => {
        const req = { brokerId: nodeId, brokerEpoch: late.lifecycle?.brokerEpoch ?? -1 };
        const r = service?.isActive ? await service.allocateProducerIds(req) : await controllerClient.allocateProducerIds(req);
        if (r.errorCode !== 0) throw new RaftkaError(errorByCode(r.errorCode), r.errorMessage || `AllocateProducerIds failed with ${errorByCode(r.errorCode)}`);
        return { start: r.producerIdStart, len: r.producerIdLen };
      },
      logger: componentLogger(logger, 'producer-ids'),
    });
    closers.push(() => producerIds.close());
    const quorum = () => ({ leaderId: raft.driver.leaderId, voters: voters.map((v) => v.nodeId), lag: raft.driver.voterLag() });

    // Consumer groups: this broker coordinates the groups of the __consumer_offsets
    // partitions it leads; their records go through the replica manager with acks=all.
    const offsetsTopicId = (): string => {
      const t = stateMachine.image.topic(OFFSETS_TOPIC);
      if (!t) throw new RaftkaError('COORDINATOR_NOT_AVAILABLE', `${OFFSETS_TOPIC} does not exist`);
      return t.topicId;
    };
    const groupCoordinator = new GroupCoordinator({
      brokerId: nodeId,
      clock,
      logger,
      config: {
        minSessionTimeoutMs: cfg['group.min.session.timeout.ms'],
        maxSessionTimeoutMs: cfg['group.max.session.timeout.ms'],
        initialRebalanceDelayMs: cfg['group.initial.rebalance.delay.ms'],
        maxSize: cfg['group.max.size'],
        offsetsRetentionMs: cfg['offsets.retention.minutes'] * 60_000,
      },
      log: {
        append: async (p, records) => {
          await rm.produce(offsetsTopicId(), p, buildBatch(records, { nowMs: clock.nowMs() }), -1, 30_000);
        },
        read: async (p, from, maxBytes) => {
          const part = rm.partition(offsetsTopicId(), p);
          if (!part) throw new RaftkaError('NOT_COORDINATOR', `${OFFSETS_TOPIC}-${p} is not open here`);
          return part.log.read(from, maxBytes);
        },
      },
      partitionExists: (topic, partition) => {
        const t = stateMachine.image.topic(topic);
        return t !== undefined && Number.isInteger(partition) && partition >= 0 && partition < t.partitions.length;
      },
    });
    groupCoordinator.start();
    closers.push(() => groupCoordinator.stop());
    const clientApi: ClientApiServer = await startClientApiServer({
      listen: address(listeners.get('CLIENT')!),
      brokerId: nodeId,
      metadata: () => metadataView(clusterId, stateMachine.image, quorum()),
      admin,
      replicaManager: rm,
      producerIds,
      logger,
      extraServices: (server) =>
        void addGroupService(server, {
          brokerId: nodeId,
          metadata: () => metadataView(clusterId, stateMachine.image, quorum()),
          admin,
          coordinator: groupCoordinator,
          offsetsTopic: { partitions: cfg['offsets.topic.num.partitions'], replicationFactor: cfg['offsets.topic.replication.factor'] },
          logger,
        }),
    });
    closers.push(() => clientApi.close());

    // Advertise the bound ports (a listener may ask for port 0).
    const bound = { CLIENT: clientApi.port, REPLICATION: internal.port, CONTROLLER: raft.port };
    hooks.listening(bound);
    const endpoints = (['CLIENT', 'REPLICATION', 'CONTROLLER'] as const).map((name) => {
      const l = advertised.get(name) ?? listeners.get(name)!;
      const port = l.port === 0 || !advertised.has(name) ? bound[name] : l.port;
      const host = l.host === '0.0.0.0' ? '127.0.0.1' : l.host;
      return { name, host, port };
    });

    // Reconcile replicas with every new image, one pass at a time, always to the latest.
    let reconciling = false;
    let pending: MetadataImage | undefined;
    // The last image whose assignments are fully applied (logs open, roles set).
    let reconciled: MetadataImage | undefined;
    const reconcile = async (image: MetadataImage) => {
      pending = image;
      if (reconciling) return;
      reconciling = true;
      try {
        while (pending) {
          const img = pending;
          pending = undefined;
          for (const b of img.brokers.values()) {
            if (b.brokerId === nodeId) continue;
            const ep = b.endpoints.find((e) => e.name === 'REPLICATION');
            if (ep) fetchClient.setAddress(b.brokerId, hooks.replicationAddress(b.brokerId) ?? `${ep.host}:${ep.port}`);
            // Raft addresses of broker-only nodes (observers) come from their registration.
            const raftEp = b.endpoints.find((e) => e.name === 'CONTROLLER');
            if (raftEp && !voterAddress.has(b.brokerId)) raft.setPeerAddress(b.brokerId, `${raftEp.host}:${raftEp.port}`);
          }
          await rm.reconcile(assignmentsFor(img, nodeId));
          reconciled = img;
          const offsets = img.topic(OFFSETS_TOPIC);
          const led = new Map<number, number>();
          for (const p of offsets?.partitions ?? []) if (p.leader === nodeId) led.set(p.partition, p.leaderEpoch);
          groupCoordinator.onLeadership(offsets?.partitions.length ?? 0, led);
        }
      } catch (e) {
        log.error({ err: e }, 'reconciliation failed');
      } finally {
        reconciling = false;
      }
    };
    const lifecycle = new BrokerLifecycle({
      brokerId: nodeId,
      clusterId,
      endpoints,
      rack: cfg['broker.rack'],
      controller: controllerClient,
      heartbeatIntervalMs: cfg['broker.heartbeat.interval.ms'],
      previousBrokerEpoch,
      // Caught up once an image holding our own registration has been reconciled (the
      // replicas it names are open). Judged from the image itself, not from when the
      // registration response arrived, which may come after that image.
      caughtUpOffset: (epoch) => (reconciled?.broker(nodeId)?.brokerEpoch === epoch ? reconciled.offset : -1),
      // The controller refuses a heartbeat with a longer list as malformed.
      leaderlessReplicas: () => rm.leaderlessReplicas(LIST_LENGTH_MAX),
      logger,
    });
    late.lifecycle = lifecycle;

    // Replicas follow the image only once it holds this process's own registration.
    closers.push(
      applyOnceRegistered(stateMachine, nodeId, lifecycle.incarnationId, (image, first) => {
        if (first) log.info({ imageOffset: image.offset, brokerEpoch: image.broker(nodeId)?.brokerEpoch }, 'own registration replayed; applying metadata to replicas');
        void reconcile(image);
      }),
    );
    lifecycle.start();
    closers.push(() => lifecycle.stop());

    log.info({ clusterId, client: endpoints[0], replication: endpoints[1], controller: raft.port }, 'node started');

    let shuttingDown: Promise<void> | undefined;
    return {
      nodeId,
      clusterId,
      clientPort: clientApi.port,
      replicationPort: internal.port,
      controllerPort: raft.port,
      replicaManager: rm,
      image: () => stateMachine.image,
      brokerState: () => lifecycle.state,
      isActiveController: () => service?.isActive ?? false,
      shutdown: () =>
        (shuttingDown ??= (async () => {
          const timeoutMs = cfg['controlled.shutdown.timeout.ms'];
          const moved = await lifecycle.controlledShutdown(timeoutMs);
          log.info({ moved }, moved ? 'controlled shutdown: leaderships moved' : 'controlled shutdown timed out');
          if (isController && raft.driver.isLeader) {
            const target = voters.find((v) => v.nodeId !== nodeId);
            if (target && raft.driver.transferLeadership(target.nodeId)) {
              // Wait for the hand-over (a leaderChange event), at most 2 s.
              await new Promise<void>((resolve) => {
                const done = () => {
                  clearTimeout(timer);
                  raft.driver.off('leaderChange', onChange);
                  resolve();
                };
                const onChange = () => {
                  if (!raft.driver.isLeader) done();
                };
                const timer = setTimeout(done, Math.min(2000, timeoutMs));
                raft.driver.on('leaderChange', onChange);
              });
            }
          }
          await closeAll();
        })()),
      close: closeAll,
    };
  } catch (e) {
    await closeAll();
    throw e;
  }
}
