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
//
// Reflection is built on its first request, not at start-up: loading @grpc/reflection and
// building its descriptors of our protos cost a broker ~2 MB of heap (idle RSS 78-79 MB
// without, 81-83 with), for a service only tools ever call. Its two services are registered up
// front (grpc-js takes services before it binds) with handlers and codecs that reach the
// real ones once they exist.
import type * as grpc from '@grpc/grpc-js';
import { createRequire } from 'node:module';
import * as protoLoader from '@grpc/proto-loader';
import type { ReflectionService } from '@grpc/reflection';
import { HealthImplementation, protoPath as healthProtoPath } from 'grpc-health-check';
import { PROTO_DIR } from '../proto/rpc.ts';
import { RAFTKA_SERVICE } from '../proto/raftka.ts';
import { GROUPS_SERVICE } from '../proto/group.ts';

export interface StandardServices {
  /** Marks every service NOT_SERVING (call before the server shuts down). */
  notServing(): void;
}

const require = createRequire(import.meta.url);

/** The reflection protocol versions @grpc/reflection serves, each one rpc. */
const REFLECTION_SERVICES = ['grpc.reflection.v1.ServerReflection', 'grpc.reflection.v1alpha.ServerReflection'] as const;
const REFLECTION_RPC = 'ServerReflectionInfo';

interface Registered {
  definition: grpc.MethodDefinition<unknown, unknown>;
  handler: grpc.handleBidiStreamingCall<unknown, unknown>;
}

let reflection: Map<string, Registered> | undefined;

/** The real reflection services by name, built once per process on first use. */
function reflectionServices(): Map<string, Registered> {
  if (reflection) return reflection;
  const { ReflectionService: Service } = require('@grpc/reflection') as { ReflectionService: typeof ReflectionService };
  const service = new Service({
    // One load for both files: protobufjs names a file descriptor after its package
    // (raftka_v1.proto), so two loads give two same-named files and reflection keeps
    // only the first (raftka.v1.Groups went missing).
    ...protoLoader.loadSync(['raftka.proto', 'group.proto'], { includeDirs: [PROTO_DIR] }),
    ...protoLoader.loadSync(healthProtoPath),
  });
  const found = new Map<string, Registered>();
  // addToServer is how @grpc/reflection hands out its services; catch them instead.
  const collector = {
    addService: (definition: grpc.ServiceDefinition, implementation: grpc.UntypedServiceImplementation) => {
      const m = definition[REFLECTION_RPC]!;
      found.set(m.path.split('/')[1]!, { definition: m, handler: implementation[REFLECTION_RPC] as grpc.handleBidiStreamingCall<unknown, unknown> });
    },
  };
  service.addToServer(collector as unknown as grpc.Server);
  for (const name of REFLECTION_SERVICES) if (!found.has(name)) throw new Error(`@grpc/reflection did not provide ${name}`);
  reflection = found;
  return found;
}

function addLazyReflection(server: grpc.Server): void {
  for (const name of REFLECTION_SERVICES) {
    const real = () => reflectionServices().get(name)!;
    const definition: grpc.MethodDefinition<unknown, unknown> = {
      path: `/${name}/${REFLECTION_RPC}`,
      requestStream: true,
      responseStream: true,
      requestSerialize: (v) => real().definition.requestSerialize(v),
      requestDeserialize: (b) => real().definition.requestDeserialize(b),
      responseSerialize: (v) => real().definition.responseSerialize(v),
      responseDeserialize: (b) => real().definition.responseDeserialize(b),
    };
    server.addService({ [REFLECTION_RPC]: definition }, { [REFLECTION_RPC]: (call: grpc.ServerDuplexStream<unknown, unknown>) => real().handler(call) });
  }
}

export function addStandardServices(server: grpc.Server): StandardServices {
  const health = new HealthImplementation({ '': 'SERVING', [RAFTKA_SERVICE]: 'SERVING', [GROUPS_SERVICE]: 'SERVING' });
  // grpc-health-check types its server loosely (its own Server shape); grpc-js's fits.
  health.addToServer(server as unknown as Parameters<HealthImplementation['addToServer']>[0]);
  addLazyReflection(server);
  return {
    notServing: () => {
      health.setStatus('', 'NOT_SERVING');
      health.setStatus(RAFTKA_SERVICE, 'NOT_SERVING');
      health.setStatus(GROUPS_SERVICE, 'NOT_SERVING');
    },
  };
}
