// A broker stand-in for measuring the SDK alone (scripts/bench/sdk.ts): one "broker"
// leading every partition of one topic, answering Metadata, InitProducerId and
// Produce/ProduceStream at once from memory. Nothing is decoded past the request
// envelope, stored or replicated, so a client talking to it pays its own costs only.
// Usage: broker-standin.ts TOPIC PARTITIONS. Prints its port on stdout, exits on SIGTERM.
import * as grpc from '@grpc/grpc-js';
import { RaftkaRpc, type MetadataResponse, type ProduceRequest, type ProduceResponse } from '../../src/proto/raftka.ts';
import { bindServer, DATA_FLOW_CONTROL_WINDOW_BYTES, SERVER_OPTIONS, serviceDefinition } from '../../src/proto/rpc.ts';

const [topic = 't', partitionsArg = '6'] = process.argv.slice(2);
const partitions = Number(partitionsArg);
const BROKER_ID = 1;
let port = 0;
let nextOffset = 0;

function metadata(): MetadataResponse {
  return {
    errorCode: 0,
    errorMessage: '',
    clusterId: 'standin',
    controllerId: BROKER_ID,
    brokers: [{ id: BROKER_ID, host: '127.0.0.1', port, rack: '', fenced: false }],
    topics: [
      {
        errorCode: 0,
        errorMessage: '',
        name: topic,
        topicId: '',
        partitions: Array.from({ length: partitions }, (_, partition) => ({ errorCode: 0, errorMessage: '', partition, leaderId: BROKER_ID, leaderEpoch: 0, replicas: [BROKER_ID], isr: [BROKER_ID], offlineReplicas: [] })),
      },
    ],
  };
}

function produced(req: ProduceRequest): ProduceResponse {
  return {
    correlationId: req.correlationId ?? 0,
    errorCode: 0,
    errorMessage: '',
    responses: req.topicData.map((td) => ({
      name: td.name ?? '',
      topicId: td.topicId ?? '',
      partitions: td.partitions.map((p) => ({ partition: p.partition, errorCode: 0, errorMessage: '', baseOffset: (nextOffset += 1000), logAppendTimeMs: -1, logStartOffset: 0, currentLeader: null })),
    })),
  };
}

const server = new grpc.Server(SERVER_OPTIONS);
const unary =
  <Req, Res>(fn: (r: Req) => Res) =>
  (call: grpc.ServerUnaryCall<Req, Res>, cb: grpc.sendUnaryData<Res>) =>
    cb(null, fn(call.request));
server.addService(serviceDefinition({ Metadata: RaftkaRpc.Metadata, InitProducerId: RaftkaRpc.InitProducerId, Produce: RaftkaRpc.Produce, ProduceStream: RaftkaRpc.ProduceStream }), {
  Metadata: unary(metadata),
  InitProducerId: unary(() => ({ errorCode: 0, errorMessage: '', producerId: 7, producerEpoch: 0 })),
  Produce: unary(produced),
  ProduceStream: (call: grpc.ServerDuplexStream<ProduceRequest, ProduceResponse>) => {
    call.on('data', (req: ProduceRequest) => call.write(produced(req)));
    call.on('end', () => call.end());
    call.on('error', () => undefined);
  },
});
// The receive window raised as a broker's is (bindServer), so the client is not held back by flow control.
port = await bindServer(server, '127.0.0.1:0', DATA_FLOW_CONTROL_WINDOW_BYTES);
process.stdout.write(`${port}\n`);
process.on('SIGTERM', () => server.forceShutdown());
