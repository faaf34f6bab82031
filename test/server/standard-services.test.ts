// What a generic gRPC tool sees on the client API port: server reflection lists the
// Raftka service (and health) and serves its descriptor with every rpc; the standard
// health service answers SERVING while the server runs. Plus InitProducerId over the
// wire with a stand-in producer id source.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { protoPath as healthProtoPath } from 'grpc-health-check';
import protobuf from 'protobufjs';
import { RaftkaError } from '../../src/common/errors.ts';
import { silentLogger } from '../../src/common/logger.ts';
import { RawClient } from '../../src/client/raw-client.ts';
import { startClientApiServer } from '../../src/server/client-api.ts';
import { FakeMetadata, unusedAdmin, startHarness } from './support.ts';
import { defer } from '../support/tmp.ts';

// The reflection protocol's own .proto, as any reflection client would load it.
const require = createRequire(import.meta.url);
const REFLECTION_PROTO = join(dirname(require.resolve('@grpc/reflection')), '..', 'proto', 'grpc', 'reflection', 'v1', 'reflection.proto');
const REFLECTION_V1ALPHA_PROTO = join(dirname(require.resolve('@grpc/reflection')), '..', 'proto', 'grpc', 'reflection', 'v1alpha', 'reflection.proto');
// google.protobuf.FileDescriptorProto, to read what reflection returns.
const FileDescriptorProto = protobuf.loadSync(require.resolve('protobufjs/google/protobuf/descriptor.proto')).lookupType('google.protobuf.FileDescriptorProto');

interface ReflectionResponse {
  listServicesResponse?: { service: Array<{ name: string }> };
  fileDescriptorResponse?: { fileDescriptorProto: Buffer[] };
  errorResponse?: { errorCode: number; errorMessage: string };
}

/** One request on a ServerReflectionInfo stream, as grpcurl sends them (older tools use v1alpha). */
function reflect(address: string, request: Record<string, unknown>, version: 'v1' | 'v1alpha' = 'v1'): Promise<ReflectionResponse> {
  const pkg = grpc.loadPackageDefinition(protoLoader.loadSync(version === 'v1' ? REFLECTION_PROTO : REFLECTION_V1ALPHA_PROTO)) as unknown as {
    grpc: { reflection: Record<'v1' | 'v1alpha', { ServerReflection: grpc.ServiceClientConstructor }> };
  };
  const client = new pkg.grpc.reflection[version].ServerReflection(address, grpc.credentials.createInsecure()) as unknown as grpc.Client & {
    ServerReflectionInfo(): grpc.ClientDuplexStream<unknown, ReflectionResponse>;
  };
  return new Promise<ReflectionResponse>((resolve, reject) => {
    const call = client.ServerReflectionInfo();
    call.on('data', (r: ReflectionResponse) => {
      resolve(r);
      call.end();
    });
    call.on('error', (e: Error) => reject(e));
    call.on('end', () => client.close());
    call.write({ host: '', ...request });
  });
}

function healthCheck(address: string, service: string): Promise<{ status: string }> {
  const pkg = grpc.loadPackageDefinition(protoLoader.loadSync(healthProtoPath, { enums: String })) as unknown as { grpc: { health: { v1: { Health: grpc.ServiceClientConstructor } } } };
  const client = new pkg.grpc.health.v1.Health(address, grpc.credentials.createInsecure()) as unknown as grpc.Client & {
    Check(req: { service: string }, cb: (err: grpc.ServiceError | null, res: { status: string }) => void): void;
  };
  return new Promise((resolve, reject) =>
    client.Check({ service }, (err, res) => {
      client.close();
      if (err) reject(err);
      else resolve(res);
    }),
  );
}

test('server reflection lists the Raftka service and serves its descriptor; health Check answers SERVING', async (t) => {
  const h = await startHarness(t);
  const address = `127.0.0.1:${h.server.port}`;

  const list = await reflect(address, { listServices: '*' });
  const names = list.listServicesResponse!.service.map((s) => s.name);
  assert.ok(names.includes('raftka.v1.Raftka'), names.join());
  assert.ok(names.includes('grpc.health.v1.Health'), names.join());
  const alpha = await reflect(address, { listServices: '*' }, 'v1alpha');
  assert.deepEqual(alpha.listServicesResponse!.service.map((s) => s.name), names, 'v1alpha lists the same services');

  const files = await reflect(address, { fileContainingSymbol: 'raftka.v1.Raftka' });
  const protos = files.fileDescriptorResponse!.fileDescriptorProto.map((b) => FileDescriptorProto.toObject(FileDescriptorProto.decode(b), { arrays: true }) as { package: string; service: Array<{ name: string; method: Array<{ name: string }> }> });
  const raftka = protos.find((f) => f.package === 'raftka.v1')!.service.find((s) => s.name === 'Raftka')!;
  for (const rpc of ['Metadata', 'Produce', 'ProduceStream', 'Fetch', 'FetchStream', 'ListOffsets', 'InitProducerId', 'CreateTopics']) {
    assert.ok(raftka.method.some((m) => m.name === rpc), `the descriptor has ${rpc}`);
  }
  const missing = await reflect(address, { fileContainingSymbol: 'raftka.v1.NoSuchThing' });
  assert.equal(missing.errorResponse?.errorCode, grpc.status.NOT_FOUND);

  assert.deepEqual(await healthCheck(address, ''), { status: 'SERVING' });
  assert.deepEqual(await healthCheck(address, 'raftka.v1.Raftka'), { status: 'SERVING' });
  await assert.rejects(healthCheck(address, 'no.such.Service'), (e: grpc.ServiceError) => e.code === grpc.status.NOT_FOUND);
});

test('InitProducerId: fresh ids at epoch 0 from the id source; transactional ids and source failures are error codes', async (t) => {
  let next = 5000;
  const source: { failWith?: RaftkaError } = {};
  const server = await startClientApiServer({
    listen: '127.0.0.1:0',
    brokerId: 1,
    metadata: () => new FakeMetadata(),
    admin: unusedAdmin,
    replicaManager: { produce: () => Promise.reject(new Error('unused')), fetch: () => Promise.reject(new Error('unused')), listOffset: () => Promise.reject(new Error('unused')) },
    producerIds: {
      nextProducerId: async () => {
        if (source.failWith) throw source.failWith;
        return next++;
      },
    },
    logger: silentLogger(),
  });
  defer(t, () => server.close());
  const client = new RawClient(`127.0.0.1:${server.port}`);
  defer(t, () => client.close());

  assert.deepEqual(await client.initProducerId(), { errorCode: 0, errorMessage: '', producerId: 5000, producerEpoch: 0 });
  assert.deepEqual(await client.initProducerId({ transactionTimeoutMs: 60_000 }), { errorCode: 0, errorMessage: '', producerId: 5001, producerEpoch: 0 });
  const txn = await client.initProducerId({ transactionalId: 'orders' });
  assert.equal(txn.errorCode, 42);
  assert.equal(txn.producerId, -1);
  source.failWith = new RaftkaError('REQUEST_TIMED_OUT', 'no block');
  const timedOut = await client.initProducerId();
  assert.deepEqual(timedOut, { errorCode: 7, errorMessage: 'no block', producerId: -1, producerEpoch: -1 });
});
