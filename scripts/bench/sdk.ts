// `npm run bench -- sdk [--json] [--records N] [--rounds R]`
//
// What the SDK producer costs its own process. On this machine the load generator and
// the brokers share two cores, so every CPU-second the SDK spends is taken from the
// brokers in a cluster run; there its cost is lost in the host's drift. Here the perf
// tool's producer (src/perf/producer-load.ts, as `raftka perf produce` runs it) sends 1 KiB
// records (64 KiB batches, linger 5 ms, acks=all, idempotent: the perf matrix's settings
// until 2026-12-03, kept so this benchmark's figures stay comparable)
// to a broker stand-in in another process that answers every request at once from memory
// (scripts/bench-support/broker-standin.ts), so the client's CPU per MB and its
// throughput are measured alone.
//
// Baseline, in the same run: a raw grpc-js bidi stream from this process to a sink in
// another (scripts/bench-support/grpc-sink.ts) writing one prepared message of the size
// of a full SDK request (6 partitions x 64 KiB) over and over, 5 in flight (the SDK's
// maxInFlightRequests), both servers with a broker's 16 MiB receive window: the floor any
// client of a gRPC stream pays for moving the bytes.
// R interleaved rounds (default 3) of N records each (default 300,000, after a quarter as
// many unmeasured), medians reported. MB = 10^6 bytes of record values.
//
// JSON: sdkProduceMBs, sdkProduceCpuMsPerMB, sdkProduceRecordsPerCpuSec, rawGrpcMBs,
// rawGrpcCpuMsPerMB, cpuRatio (SDK CPU per MB / raw CPU per MB), records, rounds.
import type { BenchContext, BenchResult } from '../bench.ts';
import { prepareProducerLoad } from '../../src/perf/producer-load.ts';
import { DATA_FLOW_CONTROL_WINDOW_BYTES } from '../../src/proto/rpc.ts';
import { median, numberArg } from '../bench-support/args.ts';
import { rawGrpcStream, spawnSink, type RawGrpcResult } from '../bench-support/sinks.ts';

const TOPIC = 'sdk-bench';
const PARTITIONS = 6;
const RECORD_BYTES = 1024;
const BATCH_BYTES = 64 * 1024;
/** The stand-in's and the sink's HTTP/2 receive window: a broker's (DATA_FLOW_CONTROL_WINDOW_BYTES). */
const RECEIVE_WINDOW_BYTES = DATA_FLOW_CONTROL_WINDOW_BYTES;

interface SdkRound {
  mbs: number;
  cpuMsPerMB: number;
}

/**
 * One producer of the perf tool (`raftka perf produce`'s, src/perf/producer-load.ts):
 * `records` sent as fast as it takes them, after `warmup` unmeasured.
 */
async function sdkRound(port: number, records: number, warmup: number): Promise<SdkRound> {
  const load = await prepareProducerLoad({
    bootstrap: [`127.0.0.1:${port}`],
    topic: TOPIC,
    records,
    recordSize: RECORD_BYTES,
    ratePerSec: -1,
    acks: -1,
    compression: 'none',
    batchSize: BATCH_BYTES,
    lingerMs: 5,
    payloadJson: false,
    stamp: false,
    warmupRecords: warmup,
  });
  try {
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    let acked = 0;
    const final = await load.run(Date.now(), (r) => (acked += r.records));
    const seconds = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    if (final.firstError !== undefined || acked !== records) throw new Error(`the SDK round acknowledged ${acked} of ${records} records: ${final.firstError ?? 'no error'}`);
    const mb = (records * RECORD_BYTES) / 1e6;
    return { mbs: mb / seconds, cpuMsPerMB: (cpu.user + cpu.system) / 1000 / mb };
  } finally {
    await load.close();
  }
}

export async function run(ctx: BenchContext): Promise<BenchResult> {
  const records = numberArg(ctx.args, '--records', 300_000);
  const rounds = numberArg(ctx.args, '--rounds', 3);
  if (!(records >= 1000) || !(rounds >= 1)) throw new Error('--records must be at least 1000 and --rounds at least 1');
  const standin = spawnSink('broker-standin.ts', [TOPIC, String(PARTITIONS)]);
  const rawPayload = Buffer.alloc(PARTITIONS * BATCH_BYTES, 0x61);
  const sdk: SdkRound[] = [];
  const raw: RawGrpcResult[] = [];
  try {
    const port = await standin.port;
    for (let r = 1; r <= rounds; r++) {
      ctx.progress(`round ${r}/${rounds}: SDK producer, ${records.toLocaleString('en-US')} records of ${RECORD_BYTES} B`);
      const s = await sdkRound(port, records, Math.floor(records / 4));
      sdk.push(s);
      ctx.progress(`  ${s.mbs.toFixed(0)} MB/s, ${s.cpuMsPerMB.toFixed(2)} ms CPU per MB`);
      ctx.progress(`round ${r}/${rounds}: raw grpc-js stream, ${rawPayload.length.toLocaleString('en-US')} B messages`);
      const g = await rawGrpcStream(rawPayload, 2, 5, RECEIVE_WINDOW_BYTES);
      raw.push(g);
      ctx.progress(`  ${g.mbs.toFixed(0)} MB/s, ${g.cpuMsPerMB.toFixed(2)} ms CPU per MB`);
    }
  } finally {
    standin.kill();
  }
  const sdkMBs = median(sdk.map((s) => s.mbs));
  const sdkCpu = median(sdk.map((s) => s.cpuMsPerMB));
  const rawMBs = median(raw.map((g) => g.mbs));
  const rawCpu = median(raw.map((g) => g.cpuMsPerMB));
  const recordsPerCpuSec = 1000 / ((sdkCpu * RECORD_BYTES) / 1e6);
  return {
    rows: [
      ['SDK producer MB/s (median)', sdkMBs],
      ['SDK producer CPU ms per MB', sdkCpu],
      ['SDK producer records per CPU-second', Math.round(recordsPerCpuSec)],
      ['raw grpc-js stream MB/s', rawMBs],
      ['raw grpc-js stream CPU ms per MB', rawCpu],
      ['CPU per MB, SDK / raw', sdkCpu / rawCpu],
      ['rounds (interleaved)', rounds],
    ],
    json: {
      sdkProduceMBs: sdkMBs,
      sdkProduceCpuMsPerMB: sdkCpu,
      sdkProduceRecordsPerCpuSec: recordsPerCpuSec,
      rawGrpcMBs: rawMBs,
      rawGrpcCpuMsPerMB: rawCpu,
      cpuRatio: sdkCpu / rawCpu,
      records,
      rounds,
    },
  };
}
