// Drives a QuorumController the way the I/O shell will: every result's records are
// encoded, "committed" as one Raft entry, and applied by a MetadataStateMachine; after
// each commit the controller's view must equal the image replayed from the log.
import assert from 'node:assert/strict';
import { uuidToBase64 } from '../../src/common/ids.ts';
import { SeededRandom } from '../../src/common/random.ts';
import { QuorumController, type ActivateOptions } from '../../src/controller/controller.ts';
import { controllerConfig, type BrokerHeartbeatResponse, type ControllerResult, type LeaderlessReplicaReport } from '../../src/controller/types.ts';
import {
  MetadataStateMachine,
  NO_LEADER,
  decodeSnapshot,
  encodeRecords,
  encodeSnapshot,
  imagesEqual,
  type MetadataImage,
  type PartitionState,
} from '../../src/metadata/index.ts';

export function incarnation(brokerId: number, generation = 0): string {
  const b = Buffer.alloc(16);
  b.writeUInt32BE(brokerId, 0);
  b.writeUInt32BE(generation, 4);
  b[6] = 0x40 | (b[6]! & 0x0f);
  b[8] = 0x80 | (b[8]! & 0x3f);
  return uuidToBase64(b);
}

export class Harness {
  readonly sm = new MetadataStateMachine();
  readonly controller: QuorumController;
  nowMs = 1_000;
  private index = 0;
  private term = 1;
  readonly epochs = new Map<number, number>();
  private readonly generations = new Map<number, number>();

  constructor(config: Record<string, unknown> = {}, seed = 1, activate: ActivateOptions = {}) {
    this.controller = new QuorumController(new SeededRandom(seed), controllerConfig(config));
    this.commit(this.controller.activate(this.sm.image, this.term, this.nowMs, activate));
  }

  /** The committed image. */
  get image(): MetadataImage {
    return this.sm.image;
  }

  commit<R>(result: ControllerResult<R>): R {
    if (result.records.length > 0) {
      this.index++;
      this.sm.apply(this.index, { index: this.index, term: this.term, kind: 'normal', data: encodeRecords(result.records) });
    }
    assert.ok(
      imagesEqual(this.controller.image.withPosition(0, 0), this.sm.image.withPosition(0, 0)),
      'the controller view equals the image replayed from its records',
    );
    return result.response;
  }

  /** A new controller takes over from the committed image (anything uncommitted is lost). */
  failover(): void {
    this.term++;
    this.controller.deactivate();
    this.commit(this.controller.activate(this.sm.image, this.term, this.nowMs));
  }

  advance(ms: number): void {
    this.nowMs += ms;
  }

  register(brokerId: number, opts: { rack?: string | null; newIncarnation?: boolean; previousBrokerEpoch?: number } = {}) {
    let gen = this.generations.get(brokerId) ?? 0;
    if (opts.newIncarnation === true) gen++;
    this.generations.set(brokerId, gen);
    const r = this.commit(
      this.controller.registerBroker(
        {
          brokerId,
          incarnationId: incarnation(brokerId, gen),
          endpoints: [{ name: 'CLIENT', host: '127.0.0.1', port: 9000 + brokerId }],
          rack: opts.rack ?? null,
          ...(opts.previousBrokerEpoch !== undefined ? { previousBrokerEpoch: opts.previousBrokerEpoch } : {}),
        },
        this.nowMs,
      ),
    );
    if (r.error === 'NONE') this.epochs.set(brokerId, r.brokerEpoch);
    return r;
  }

  heartbeat(
    brokerId: number,
    opts: { caughtUp?: boolean; wantFence?: boolean; wantShutDown?: boolean; brokerEpoch?: number; leaderlessReplicas?: LeaderlessReplicaReport[] } = {},
  ): BrokerHeartbeatResponse {
    return this.commit(
      this.controller.brokerHeartbeat(
        {
          brokerId,
          brokerEpoch: opts.brokerEpoch ?? this.epochs.get(brokerId) ?? -1,
          currentMetadataOffset: this.image.offset,
          caughtUp: opts.caughtUp ?? true,
          wantFence: opts.wantFence ?? false,
          wantShutDown: opts.wantShutDown ?? false,
          ...(opts.leaderlessReplicas !== undefined ? { leaderlessReplicas: opts.leaderlessReplicas } : {}),
        },
        this.nowMs,
      ),
    );
  }

  /** Registers and unfences brokers (racks by index when given). */
  startBrokers(ids: readonly number[], racks?: readonly (string | null)[]): void {
    ids.forEach((id, i) => {
      const r = this.register(id, { rack: racks?.[i] ?? null });
      assert.equal(r.error, 'NONE', r.errorMessage ?? '');
      const hb = this.heartbeat(id);
      assert.equal(hb.isFenced, false);
    });
  }

  heartbeatAll(): void {
    for (const b of this.image.brokers.values()) {
      if (this.epochs.get(b.brokerId) === b.brokerEpoch) this.heartbeat(b.brokerId);
    }
  }

  createTopic(name: string, numPartitions: number, replicationFactor: number, configs: Record<string, string> = {}): string {
    const r = this.commit(this.controller.createTopics({ topics: [{ name, numPartitions, replicationFactor, configs }] }, this.nowMs));
    assert.equal(r.topics[0]!.error, 'NONE', r.topics[0]!.errorMessage ?? '');
    return r.topics[0]!.topicId;
  }

  partition(topic: string, partition = 0): PartitionState {
    const t = this.image.topic(topic);
    assert.ok(t, `topic ${topic}`);
    return t.partitions[partition]!;
  }

  /** The leader's AlterPartition for `newIsr`, at the partition's current epochs. */
  alterIsr(topic: string, partition: number, newIsr: number[]) {
    const p = this.partition(topic, partition);
    return this.commit(
      this.controller.alterPartition(
        {
          brokerId: p.leader,
          brokerEpoch: this.epochs.get(p.leader)!,
          topicId: p.topicId,
          partition,
          leaderEpoch: p.leaderEpoch,
          partitionEpoch: p.partitionEpoch,
          newIsr,
        },
        this.nowMs,
      ),
    );
  }
}

export interface History {
  epochs: Map<string, { leader: number; leaderEpoch: number; partitionEpoch: number }>;
  producerIdsEnd: number;
  brokerEpochs: Map<number, number>;
}

/** The named invariants every committed image must hold (see invariants.test.ts). */
export function checkInvariants(img: MetadataImage, hist: History, step: string): void {
  const usable = (b: number): boolean => img.isUnfenced(b);
  for (const t of img.topicsById.values()) {
    const cfg = img.topicConfig(t.name);
    for (const p of t.partitions) {
      const where = `${step}: ${t.name}-${p.partition} ${JSON.stringify(p)}`;
      const inReplicas = (xs: readonly number[]): boolean => xs.every((b) => p.replicas.includes(b));
      assert.ok(inReplicas(p.isr), `isr ⊆ replicas; ${where}`);
      assert.ok(inReplicas(p.elr), `elr ⊆ replicas; ${where}`);
      assert.ok(!p.elr.some((b) => p.isr.includes(b)), `isr ∩ elr = ∅; ${where}`);
      assert.ok(p.leader === NO_LEADER || p.isr.includes(p.leader), `leader ∈ isr; ${where}`);
      assert.ok(p.leader === NO_LEADER || usable(p.leader), `no fenced leader; ${where}`);
      assert.ok(p.isr.every(usable), `isr members are unfenced; ${where}`);
      assert.ok(p.elr.length === 0 || p.isr.length < cfg['min.insync.replicas'], `elr only below min isr; ${where}`);
      if (p.leader === NO_LEADER) {
        assert.ok(!p.isr.some(usable) && !p.elr.some(usable), `an offline partition has no clean candidate; ${where}`);
        if (cfg['unclean.leader.election.enable']) assert.ok(!p.replicas.some(usable), `unclean: no usable replica left; ${where}`);
      }
      const key = `${p.topicId}-${p.partition}`;
      const prev = hist.epochs.get(key);
      if (prev !== undefined) {
        assert.ok(p.leaderEpoch >= prev.leaderEpoch, `leader epochs only grow; ${where}`);
        assert.ok(p.partitionEpoch >= prev.partitionEpoch, `partition epochs only grow; ${where}`);
        if (p.leader !== prev.leader) assert.ok(p.leaderEpoch > prev.leaderEpoch, `a new leader has a new epoch; ${where}`);
      }
      hist.epochs.set(key, { leader: p.leader, leaderEpoch: p.leaderEpoch, partitionEpoch: p.partitionEpoch });
    }
  }
  assert.ok(img.nextProducerId >= hist.producerIdsEnd, `producer-id blocks never move back; ${step}`);
  assert.equal(img.nextProducerId % 1000, 0);
  hist.producerIdsEnd = img.nextProducerId;
  for (const b of img.brokers.values()) {
    const prev = hist.brokerEpochs.get(b.brokerId);
    assert.ok(prev === undefined || b.brokerEpoch >= prev, `broker epochs only grow; ${step}`);
    hist.brokerEpochs.set(b.brokerId, b.brokerEpoch);
  }
  assert.ok(imagesEqual(decodeSnapshot(encodeSnapshot(img)), img), `snapshot round trip; ${step}`);
}

export function newHistory(): History {
  return { epochs: new Map(), producerIdsEnd: 0, brokerEpochs: new Map() };
}
