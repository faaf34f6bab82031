// The closed set of error codes Raftka reports to clients and operators. Numbers and
// names follow Kafka's protocol (org.apache.kafka.common.protocol.Errors) where Kafka has
// the same error, so a Kafka user reads them without a glossary. `retriable` tells a
// client whether the same request may succeed later; `grpcStatus` is the status code a
// gRPC handler answers with (numbers from grpc's status.proto, kept numeric so that
// common/ imports nothing).

export const GrpcStatus = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
} as const;

type Status = (typeof GrpcStatus)[keyof typeof GrpcStatus];

interface ErrorSpec {
  readonly code: number;
  readonly retriable: boolean;
  readonly grpcStatus: Status;
  readonly description: string;
}

const S = GrpcStatus;
function spec(code: number, retriable: boolean, grpcStatus: Status, description: string): ErrorSpec {
  return { code, retriable, grpcStatus, description };
}

export const ERRORS = {
  UNKNOWN_SERVER_ERROR: spec(-1, false, S.INTERNAL, 'Unexpected server error'),
  NONE: spec(0, false, S.OK, 'No error'),
  OFFSET_OUT_OF_RANGE: spec(1, false, S.OUT_OF_RANGE, 'Offset is outside the range the log holds'),
  CORRUPT_MESSAGE: spec(2, true, S.INVALID_ARGUMENT, 'Record batch failed its CRC or is malformed'),
  UNKNOWN_TOPIC_OR_PARTITION: spec(3, true, S.NOT_FOUND, 'This server does not host this topic-partition'),
  INVALID_FETCH_SIZE: spec(4, false, S.INVALID_ARGUMENT, 'The requested fetch size is invalid'),
  LEADER_NOT_AVAILABLE: spec(5, true, S.UNAVAILABLE, 'There is no leader for this partition right now'),
  NOT_LEADER_OR_FOLLOWER: spec(6, true, S.FAILED_PRECONDITION, 'This server is not the leader or follower of that partition'),
  REQUEST_TIMED_OUT: spec(7, true, S.DEADLINE_EXCEEDED, 'The request timed out'),
  BROKER_NOT_AVAILABLE: spec(8, false, S.UNAVAILABLE, 'The broker is not available'),
  REPLICA_NOT_AVAILABLE: spec(9, true, S.UNAVAILABLE, 'The replica is not available'),
  MESSAGE_TOO_LARGE: spec(10, false, S.INVALID_ARGUMENT, 'The record batch is larger than the configured maximum'),
  STALE_CONTROLLER_EPOCH: spec(11, false, S.FAILED_PRECONDITION, 'The controller epoch is stale'),
  OFFSET_METADATA_TOO_LARGE: spec(12, false, S.INVALID_ARGUMENT, 'The offset commit metadata is too large'),
  NETWORK_EXCEPTION: spec(13, true, S.UNAVAILABLE, 'The server disconnected before a response was received'),
  COORDINATOR_LOAD_IN_PROGRESS: spec(14, true, S.UNAVAILABLE, 'The coordinator is loading group state'),
  COORDINATOR_NOT_AVAILABLE: spec(15, true, S.UNAVAILABLE, 'The coordinator is not available'),
  NOT_COORDINATOR: spec(16, true, S.FAILED_PRECONDITION, 'This is not the coordinator of that group'),
  INVALID_TOPIC_EXCEPTION: spec(17, false, S.INVALID_ARGUMENT, 'The topic name is invalid'),
  RECORD_LIST_TOO_LARGE: spec(18, false, S.INVALID_ARGUMENT, 'The request holds more bytes than the configured maximum'),
  NOT_ENOUGH_REPLICAS: spec(19, true, S.UNAVAILABLE, 'The in-sync replica set is smaller than min.insync.replicas'),
  NOT_ENOUGH_REPLICAS_AFTER_APPEND: spec(20, true, S.UNAVAILABLE, 'Appended, but the in-sync replica set shrank below min.insync.replicas'),
  INVALID_REQUIRED_ACKS: spec(21, false, S.INVALID_ARGUMENT, 'acks must be -1 (all), 0 or 1'),
  ILLEGAL_GENERATION: spec(22, false, S.FAILED_PRECONDITION, 'The group generation is not current'),
  INCONSISTENT_GROUP_PROTOCOL: spec(23, false, S.FAILED_PRECONDITION, 'The member protocols do not match the group'),
  INVALID_GROUP_ID: spec(24, false, S.INVALID_ARGUMENT, 'The group id is invalid'),
  UNKNOWN_MEMBER_ID: spec(25, false, S.FAILED_PRECONDITION, 'The member id is not known to the coordinator'),
  INVALID_SESSION_TIMEOUT: spec(26, false, S.INVALID_ARGUMENT, 'The session timeout is outside the allowed range'),
  REBALANCE_IN_PROGRESS: spec(27, false, S.FAILED_PRECONDITION, 'The group is rebalancing'),
  INVALID_COMMIT_OFFSET_SIZE: spec(28, false, S.INVALID_ARGUMENT, 'The committing offset data size is invalid'),
  INVALID_TIMESTAMP: spec(32, false, S.INVALID_ARGUMENT, 'The timestamp is out of the acceptable range'),
  UNSUPPORTED_VERSION: spec(35, false, S.UNIMPLEMENTED, 'The version of the request or record format is not supported'),
  TOPIC_ALREADY_EXISTS: spec(36, false, S.ALREADY_EXISTS, 'The topic already exists'),
  INVALID_PARTITIONS: spec(37, false, S.INVALID_ARGUMENT, 'The number of partitions is invalid'),
  INVALID_REPLICATION_FACTOR: spec(38, false, S.INVALID_ARGUMENT, 'The replication factor is invalid'),
  INVALID_REPLICA_ASSIGNMENT: spec(39, false, S.INVALID_ARGUMENT, 'The replica assignment is invalid'),
  INVALID_CONFIG: spec(40, false, S.INVALID_ARGUMENT, 'A configuration key or value is invalid'),
  NOT_CONTROLLER: spec(41, true, S.FAILED_PRECONDITION, 'This is not the active controller'),
  INVALID_REQUEST: spec(42, false, S.INVALID_ARGUMENT, 'The request is malformed'),
  POLICY_VIOLATION: spec(44, false, S.FAILED_PRECONDITION, 'The request violates a configured policy'),
  OUT_OF_ORDER_SEQUENCE_NUMBER: spec(45, false, S.FAILED_PRECONDITION, 'The producer sequence number is not the next one expected'),
  DUPLICATE_SEQUENCE_NUMBER: spec(46, false, S.ALREADY_EXISTS, 'The producer sequence number was already appended'),
  INVALID_PRODUCER_EPOCH: spec(47, false, S.FAILED_PRECONDITION, 'The producer epoch is older than the current one'),
  KAFKA_STORAGE_ERROR: spec(56, true, S.UNAVAILABLE, 'A disk error occurred on the broker'),
  UNKNOWN_PRODUCER_ID: spec(59, false, S.FAILED_PRECONDITION, 'The producer id is not known to the partition leader'),
  NON_EMPTY_GROUP: spec(68, false, S.FAILED_PRECONDITION, 'The group is not empty'),
  GROUP_ID_NOT_FOUND: spec(69, false, S.NOT_FOUND, 'The group id does not exist'),
  FETCH_SESSION_ID_NOT_FOUND: spec(70, true, S.NOT_FOUND, 'The fetch session id is not known to the leader'),
  INVALID_FETCH_SESSION_EPOCH: spec(71, true, S.FAILED_PRECONDITION, 'The fetch session epoch is not the one the leader expects'),
  FENCED_LEADER_EPOCH: spec(74, true, S.FAILED_PRECONDITION, 'The leader epoch in the request is older than the current one'),
  UNKNOWN_LEADER_EPOCH: spec(75, true, S.FAILED_PRECONDITION, 'The leader epoch in the request is newer than the current one'),
  STALE_BROKER_EPOCH: spec(77, false, S.FAILED_PRECONDITION, 'The broker epoch in the request is not the broker\'s current registration'),
  OFFSET_NOT_AVAILABLE: spec(78, true, S.UNAVAILABLE, 'The leader high watermark has not caught up yet'),
  MEMBER_ID_REQUIRED: spec(79, false, S.FAILED_PRECONDITION, 'The group member must rejoin with the assigned member id'),
  PREFERRED_LEADER_NOT_AVAILABLE: spec(80, true, S.UNAVAILABLE, 'The preferred leader is not available'),
  GROUP_MAX_SIZE_REACHED: spec(81, false, S.RESOURCE_EXHAUSTED, 'The group has reached its maximum size'),
  FENCED_INSTANCE_ID: spec(82, false, S.FAILED_PRECONDITION, 'Another member with this group.instance.id has replaced this one'),
  ELIGIBLE_LEADERS_NOT_AVAILABLE: spec(83, true, S.UNAVAILABLE, 'No eligible leader is available for the partition'),
  ELECTION_NOT_NEEDED: spec(84, false, S.ALREADY_EXISTS, 'Leader election not needed: the wanted replica already leads'),
  INVALID_RECORD: spec(87, false, S.INVALID_ARGUMENT, 'A record failed validation'),
  INCONSISTENT_VOTER_SET: spec(94, false, S.FAILED_PRECONDITION, 'The voter set in the request does not match this node'),
  INVALID_UPDATE_VERSION: spec(95, false, S.FAILED_PRECONDITION, 'The partition epoch in the request is not the current one'),
  UNKNOWN_TOPIC_ID: spec(100, true, S.NOT_FOUND, 'The topic id is not known'),
  DUPLICATE_BROKER_REGISTRATION: spec(101, false, S.ALREADY_EXISTS, 'A broker with this id is already registered with another incarnation'),
  BROKER_ID_NOT_REGISTERED: spec(102, false, S.FAILED_PRECONDITION, 'The broker id is not registered'),
  INCONSISTENT_TOPIC_ID: spec(103, true, S.FAILED_PRECONDITION, 'The topic id does not match the log on disk'),
  INCONSISTENT_CLUSTER_ID: spec(104, false, S.PERMISSION_DENIED, 'The cluster id does not match this node'),
  INELIGIBLE_REPLICA: spec(107, false, S.FAILED_PRECONDITION, 'The new ISR holds a replica that may not join it'),
  // Raftka's own: storage that is unreadable at start-up must stop the node rather than
  // let it vote or serve with lost state.
  CORRUPT_STORAGE: spec(10001, false, S.DATA_LOSS, 'Stored state is unreadable'),
} as const satisfies Record<string, ErrorSpec>;

export type ErrorName = keyof typeof ERRORS;

const byCode = new Map<number, ErrorName>(
  (Object.keys(ERRORS) as ErrorName[]).map((name) => [ERRORS[name].code, name]),
);

export function errorByCode(code: number): ErrorName {
  return byCode.get(code) ?? 'UNKNOWN_SERVER_ERROR';
}

export function isRetriable(name: ErrorName): boolean {
  return ERRORS[name].retriable;
}

/** An error a client or operator must handle: it carries one of the closed codes. */
export class RaftkaError extends Error {
  readonly errorName: ErrorName;
  readonly code: number;
  readonly retriable: boolean;

  constructor(errorName: ErrorName, message?: string, options?: { cause?: unknown }) {
    super(message ?? ERRORS[errorName].description, options);
    this.name = 'RaftkaError';
    this.errorName = errorName;
    this.code = ERRORS[errorName].code;
    this.retriable = ERRORS[errorName].retriable;
  }
}

export function isRaftkaError(e: unknown, name?: ErrorName): e is RaftkaError {
  return e instanceof RaftkaError && (name === undefined || e.errorName === name);
}

/** A broken invariant is a bug: crash loudly, never turn it into a client error. */
export class AssertionFailure extends Error {
  constructor(message: string) {
    super(`assertion failed: ${message}`);
    this.name = 'AssertionFailure';
  }
}

export function assert(condition: unknown, message: string | (() => string)): asserts condition {
  if (!condition) throw new AssertionFailure(typeof message === 'string' ? message : message());
}

export function unreachable(x: never): never {
  throw new AssertionFailure(`unreachable: ${JSON.stringify(x)}`);
}
