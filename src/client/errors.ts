// The SDK's typed errors. Everything a broker reports is a RaftkaProtocolError: a
// RaftkaError (closed code table, `errorName`, `code`, `retriable`) plus where it
// happened. Errors of the SDK's own state (a producer used after disconnect, bad
// options) are RaftkaClientError with a `type`, so callers can branch without parsing
// messages.
import { RaftkaError, errorByCode, type ErrorName } from '../common/errors.ts';

export { RaftkaError, type ErrorName } from '../common/errors.ts';

export interface ProtocolErrorContext {
  topic?: string;
  partition?: number;
  brokerId?: number;
  cause?: unknown;
}

export class RaftkaProtocolError extends RaftkaError {
  readonly topic: string | undefined;
  readonly partition: number | undefined;
  readonly brokerId: number | undefined;

  constructor(errorName: ErrorName, message: string, ctx: ProtocolErrorContext = {}) {
    super(errorName, message, ctx.cause !== undefined ? { cause: ctx.cause } : undefined);
    this.name = 'RaftkaProtocolError';
    this.topic = ctx.topic;
    this.partition = ctx.partition;
    this.brokerId = ctx.brokerId;
  }

  static fromCode(code: number, serverMessage: string, ctx: ProtocolErrorContext = {}): RaftkaProtocolError {
    const name = errorByCode(code);
    const where = ctx.topic !== undefined ? ` (${ctx.topic}${ctx.partition !== undefined ? `-${ctx.partition}` : ''})` : '';
    return new RaftkaProtocolError(name, `${name}${where}${serverMessage ? `: ${serverMessage}` : ''}`, ctx);
  }
}

export type ClientErrorType =
  /** send/flush on a producer that is disconnecting or disconnected. */
  | 'PRODUCER_DISCONNECTED'
  /** send (or an admin call) before connect(). */
  | 'NOT_CONNECTED'
  /** An option or argument is invalid. */
  | 'INVALID_ARGUMENT'
  /** No broker in the bootstrap list (or the cached metadata) answered. */
  | 'BROKERS_UNREACHABLE';

export class RaftkaClientError extends Error {
  readonly type: ClientErrorType;

  constructor(type: ClientErrorType, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'RaftkaClientError';
    this.type = type;
  }
}
