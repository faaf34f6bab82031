// The two services every gRPC tool expects, on the client API server, so generic clients
// (grpcurl, Postman, grpc_cli, Kubernetes probes) discover and check a broker without
// our .proto files:
//  - Server reflection (grpc.reflection.v1 and v1alpha, @grpc/reflection): lists
//    raftka.v1.Raftka, raftka.v1.Groups and grpc.health.v1.Health and serves their descriptors, built from
//    proto/raftka.proto with its comments' contract.
//  - Health checking (grpc.health.v1.Health, grpc-health-check): SERVING for "" (the
//    server) and for raftka.v1.Raftka while the server runs, NOT_SERVING once it closes,
//    so a Watch sees the shutdown.
//
// The descriptors come from @grpc/proto-loader because that is the form the reflection
// service reads; our own RPCs keep using protobufjs (src/proto/rpc.ts).
import type * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';
import { HealthImplementation, protoPath as healthProtoPath } from 'grpc-health-check';
import { PROTO_DIR } from '../proto/rpc.ts';
import { RAFTKA_SERVICE } from '../proto/raftka.ts';
import { GROUPS_SERVICE } from '../proto/group.ts';

export interface StandardServices {
  /** Marks every service NOT_SERVING (call before the server shuts down). */
  notServing(): void;
}

let reflection: ReflectionService | undefined;

function reflectionService(): ReflectionService {
  // Parsing the protos takes a few ms; one instance serves every server in the process.
  reflection ??= new ReflectionService({
    // One load for both files: protobufjs names a file descriptor after its package
    // (raftka_v1.proto), so two loads give two same-named files and reflection keeps
    // only the first (raftka.v1.Groups went missing).
    ...protoLoader.loadSync(['raftka.proto', 'group.proto'], { includeDirs: [PROTO_DIR] }),
    ...protoLoader.loadSync(healthProtoPath),
  });
  return reflection;
}

export function addStandardServices(server: grpc.Server): StandardServices {
  const health = new HealthImplementation({ '': 'SERVING', [RAFTKA_SERVICE]: 'SERVING', [GROUPS_SERVICE]: 'SERVING' });
  // grpc-health-check types its server loosely (its own Server shape); grpc-js's fits.
  health.addToServer(server as unknown as Parameters<HealthImplementation['addToServer']>[0]);
  reflectionService().addToServer(server);
  return {
    notServing: () => {
      health.setStatus('', 'NOT_SERVING');
      health.setStatus(RAFTKA_SERVICE, 'NOT_SERVING');
      health.setStatus(GROUPS_SERVICE, 'NOT_SERVING');
    },
  };
}
