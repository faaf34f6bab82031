// The broker's view of what it must host, and the internal replica-fetch protocol. The
// replica manager reconciles against `PartitionAssignment`s derived from the metadata
// image; the fetch protocol is carried by whatever transport src/io provides.

export interface TopicPartition {
  readonly topicId: string;
  readonly topic: string;
  readonly partition: number;
}

export interface PartitionAssignment extends TopicPartition {
  readonly replicas: readonly number[];
  readonly isr: readonly number[];
  /** -1: no leader. */
  readonly leader: number;
  readonly leaderEpoch: number;
  readonly partitionEpoch: number;
  /** Topic-level configuration overrides (log configs plus min.insync.replicas). */
  readonly config: Readonly<Record<string, string>>;
}

/** A hosted replica of a partition without a leader, and where its log ends (heartbeated to the controller). */
export interface LeaderlessReplica {
  readonly topicId: string;
  readonly partition: number;
  /** The partition's leader epoch in this broker's image. */
  readonly leaderEpoch: number;
  /** The leader epoch of the log's last batch (-1 when the log is empty). */
  readonly lastWrittenEpoch: number;
  readonly logEndOffset: number;
}

export interface ReplicaFetchPartition {
  readonly topicId: string;
  readonly partition: number;
  /** The leader epoch the follower believes is current (fences stale leaders and followers). */
  readonly currentLeaderEpoch: number;
  readonly fetchOffset: number;
  /** Epoch of the last batch the follower holds (-1: none), for divergence detection [KIP-320]. */
  readonly lastFetchedEpoch: number;
  /** Everything below it is fsynced on the follower. */
  readonly flushedOffset: number;
  readonly maxBytes: number;
}

export interface TopicPartitionId {
  readonly topicId: string;
  readonly partition: number;
}

export interface ReplicaFetchRequest {
  readonly replicaId: number;
  /** The follower broker's registration epoch; a stale incarnation is refused. */
  readonly brokerEpoch: number;
  readonly maxWaitMs: number;
  readonly minBytes: number;
  readonly maxBytes: number;
  /** Incremental fetch session [KIP-227] (broker/fetch-session.ts): 0 with epoch 0 opens one. */
  readonly sessionId: number;
  /** 0: full fetch (`partitions` is every partition fetched); n >= 1: the session's n-th incremental fetch. */
  readonly sessionEpoch: number;
  /** Full fetch: every partition; incremental: only partitions whose fetch state changed. */
  readonly partitions: readonly ReplicaFetchPartition[];
  /** Incremental: partitions the follower no longer fetches from this leader. */
  readonly forgotten: readonly TopicPartitionId[];
}

export interface ReplicaFetchPartitionResponse {
  readonly topicId: string;
  readonly partition: number;
  readonly errorCode: number;
  readonly highWatermark: number;
  readonly logStartOffset: number;
  readonly logEndOffset: number;
  /** Set when the follower's log diverges from the leader's: truncate to the end of this epoch. */
  readonly divergingEpoch?: { readonly epoch: number; readonly endOffset: number } | undefined;
  readonly records: Buffer;
}

export interface ReplicaFetchResponse {
  readonly errorCode: number;
  /** The fetch session the request used or opened (0 when refused). */
  readonly sessionId: number;
  /** Partitions with news only (records, an error, a divergence, a new HW or log start offset). */
  readonly partitions: readonly ReplicaFetchPartitionResponse[];
}

/** How a follower reaches a leader broker (gRPC in production, direct calls in tests). */
export interface ReplicaFetchClient {
  fetch(leaderId: number, request: ReplicaFetchRequest, signal: AbortSignal): Promise<ReplicaFetchResponse>;
  /**
   * The fetcher is done with a response's record bytes (appended, fsynced, or dropped):
   * a client may reuse their memory for later responses.
   */
  release?(response: ReplicaFetchResponse): void;
}

export interface AlterPartitionRequest {
  readonly brokerId: number;
  readonly topicId: string;
  readonly partition: number;
  readonly leaderEpoch: number;
  readonly partitionEpoch: number;
  readonly newIsr: readonly number[];
}

export interface AlterPartitionResponse {
  readonly errorCode: number;
  readonly isr?: readonly number[];
  readonly leaderEpoch?: number;
  readonly partitionEpoch?: number;
}

/** How a partition leader reaches the active controller. */
export interface ControllerClient {
  alterPartition(request: AlterPartitionRequest): Promise<AlterPartitionResponse>;
}

export function tpKey(topicId: string, partition: number): string {
  return `${topicId}:${partition}`;
}
