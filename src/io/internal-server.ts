// The internal listener of a node: replica fetch (every broker) and the controller RPCs
// (controller nodes), on one gRPC server separate from the client API, so client load
// and replication traffic do not share a port (or its limits) by accident.
import * as grpc from '@grpc/grpc-js';
import { componentLogger, type Logger } from '../common/logger.ts';
import { bindServer, SERVER_OPTIONS, shutdownServer } from '../proto/rpc.ts';
import type { ControllerRpcHandler, ReplicaFetchHandler } from '../server/types.ts';
import { addControllerService } from './controller-rpc.ts';
import { addReplicaFetchService } from './replica-fetch-transport.ts';

export interface InternalServerOptions {
  /** host:port; port 0 picks a free port. */
  listen: string;
  logger: Logger;
  /** The replica manager (leader side of replica fetch). */
  replicaFetch?: ReplicaFetchHandler;
  /** The controller RPCs; omit on broker-only nodes. */
  controller?: ControllerRpcHandler;
}

export interface InternalServer {
  readonly port: number;
  close(): Promise<void>;
}

export async function startInternalServer(opts: InternalServerOptions): Promise<InternalServer> {
  const server = new grpc.Server(SERVER_OPTIONS);
  if (opts.replicaFetch) addReplicaFetchService(server, opts.replicaFetch, opts.logger);
  if (opts.controller) addControllerService(server, opts.controller, opts.logger);
  const port = await bindServer(server, opts.listen);
  componentLogger(opts.logger, 'internal-server').info({ listen: opts.listen, port, replicaFetch: !!opts.replicaFetch, controller: !!opts.controller }, 'internal API listening');
  let closing: Promise<void> | undefined;
  return { port, close: () => (closing ??= shutdownServer(server)) };
}
