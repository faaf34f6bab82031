// One member of `raftka perf consume --group`: an SDK consumer (src/client/consumer.ts)
// subscribed in a consumer group, counting what its eachBatch handler is given (keys and
// values, as the SDK measures a message's size). Time to the first record includes
// joining the group and the first rebalance, as it does for a Kafka consumer.
import { Raftka } from '../client/index.ts';
import { LatencyRecorder } from './latency.ts';
import { REPORT_MS, until, type Load, type LoadFinal, type LoadReport } from './load.ts';
import { nowEpochMs } from './payload.ts';

export interface GroupConsumerLoadOptions {
  bootstrap: string[];
  topic: string;
  groupId: string;
  /** Bytes per partition per fetch. */
  partitionMaxBytes: number;
}

export async function prepareGroupConsumerLoad(o: GroupConsumerLoadOptions): Promise<Load> {
  const consumer = new Raftka({ brokers: o.bootstrap, clientId: 'raftka-perf' }).consumer({
    groupId: o.groupId,
    maxBytesPerPartition: o.partitionMaxBytes,
    maxWaitTimeInMs: 500,
    autoOffsetReset: 'earliest',
    // A short session so members that stop leave the group promptly.
    sessionTimeout: 10_000,
    heartbeatInterval: 1_000,
  });
  await consumer.connect();
  await consumer.subscribe({ topic: o.topic, fromBeginning: true });
  let wakeStopped: (() => void) | undefined;
  const stopped = new Promise<void>((r) => (wakeStopped = r));
  return {
    stop: () => wakeStopped?.(),
    close: () => consumer.disconnect(),
    async run(startAtMs, report) {
      const latency = new LatencyRecorder();
      let records = 0;
      let bytes = 0;
      let firstRecordAtMs: number | undefined;
      const flushReport = () => {
        const r: LoadReport = { records, bytes, errors: 0, window: latency.takeWindow() };
        records = bytes = 0;
        report(r);
      };
      await until(startAtMs);
      const timer = setInterval(flushReport, REPORT_MS);
      const startedAtMs = nowEpochMs();
      try {
        await consumer.run({
          eachBatch: async ({ batch }) => {
            if (batch.messages.length === 0) return;
            firstRecordAtMs ??= nowEpochMs();
            records += batch.messages.length;
            for (const m of batch.messages) bytes += m.size;
          },
        });
        await stopped;
      } finally {
        clearInterval(timer);
      }
      const endedAtMs = nowEpochMs();
      flushReport();
      const final: LoadFinal = { histogram: latency.encode(), startedAtMs, endedAtMs, ...(firstRecordAtMs !== undefined ? { firstRecordAtMs } : {}) };
      latency.destroy();
      return final;
    },
  };
}
