// The Raftka SDK, shaped like KafkaJS:
//
//   const raftka = new Raftka({ brokers: ['127.0.0.1:9092'], clientId: 'my-app' });
//   const producer = raftka.producer();            // idempotent, acks=all by default
//   await producer.connect();
//   await producer.send({ topic: 'events', messages: [{ key: 'k', value: 'v' }] });
//   await producer.disconnect();
//
//   const consumer = raftka.consumer({ groupId: 'my-group' });
//   await consumer.connect();
//   await consumer.subscribe({ topics: ['events'], fromBeginning: true });
//   await consumer.run({ eachMessage: async ({ topic, partition, message }) => { ... } });
//
// Each producer and admin owns its metadata cache and one connection per broker (as in
// KafkaJS), closed on disconnect.
import { createLogger, silentLogger, type Logger } from '../common/logger.ts';
import { Admin } from './admin.ts';
import { Cluster } from './cluster.ts';
import { registerCodecs } from './codecs.ts';
import { RaftkaClientError } from './errors.ts';
import { Producer, type ProducerOptions, type RetryOptions } from './producer.ts';
import { Consumer, type ConsumerOptions } from './consumer.ts';

export { Producer, DEFAULT_BATCH_BYTES } from './producer.ts';
export type { Message, ProducerRecord, ProducerBatch, TopicMessages, RecordMetadata, ProducerOptions, RetryOptions } from './producer.ts';
export { Consumer, PartitionAssignersByName } from './consumer.ts';
export type { ConsumerOptions, RunOptions, EachMessagePayload, EachBatchPayload, Batch, KafkaMessage, IHeaders, TopicPartitionOffset, AssignedPartition, ConsumerEvent, ConsumerEventName } from './consumer.ts';
export { PartitionAssigners, RangeAssigner, RoundRobinAssigner, CooperativeStickyAssigner, rangeAssign, roundRobinAssign, cooperativeStickyAssign } from './assignors.ts';
export type { PartitionAssigner, GroupAssignment, MemberSubscription, TopicPartitions, RebalanceProtocol } from './assignors.ts';
export { Admin, ConfigResourceTypes } from './admin.ts';
export type { ITopicConfig, TopicInfo, PartitionInfo, TopicDescriptionInfo, ClusterDescription, TopicOffsets, ElectionResult } from './admin.ts';
export { CompressionTypes, CompressionType, compressionId, decodeBatch, registerCodecs, type CompressionOption } from './codecs.ts';
export { murmur2, toPositive, partitionForKey, DefaultPartitioner, type Partitioner, type PartitionerArgs } from './partitioner.ts';
export { RaftkaProtocolError, RaftkaClientError, RaftkaError, type ClientErrorType, type ErrorName } from './errors.ts';

/** KafkaJS's logLevel values. */
export const logLevel = { NOTHING: 0, ERROR: 1, WARN: 2, INFO: 4, DEBUG: 5 } as const;

export interface RaftkaConfig {
  /** Bootstrap brokers, `host:port`. */
  brokers: string[];
  clientId?: string;
  /** A pino level name or a KafkaJS logLevel number; default silent (a library should not print). */
  logLevel?: 'silent' | 'error' | 'warn' | 'info' | 'debug' | number;
  /** Give a logger of your own instead. */
  logger?: Logger;
  /** ms to reach a broker before trying the next one. Default 1000 (KafkaJS). */
  connectionTimeout?: number;
  /** ms for a request without a wait of its own, and slack on produce timeouts. Default 30000 (KafkaJS). */
  requestTimeout?: number;
  /** Kafka's metadata.max.age.ms. Default 300000. */
  metadataMaxAge?: number;
  /** Default retry options for producers. */
  retry?: RetryOptions;
}

function levelName(l: RaftkaConfig['logLevel']): string {
  if (l === undefined) return 'silent';
  if (typeof l === 'string') return l;
  return l <= 0 ? 'silent' : l === 1 ? 'error' : l === 2 ? 'warn' : l <= 4 ? 'info' : 'debug';
}

export class Raftka {
  private readonly logger: Logger;

  constructor(private readonly config: RaftkaConfig) {
    if (!Array.isArray(config.brokers) || config.brokers.length === 0) throw new RaftkaClientError('INVALID_ARGUMENT', 'brokers must list at least one host:port');
    registerCodecs();
    this.logger =
      config.logger ??
      (config.logLevel === undefined ? silentLogger() : createLogger({ level: levelName(config.logLevel), name: 'raftka-client', base: { clientId: config.clientId ?? 'raftka' } }));
  }

  private cluster(component: string): Cluster {
    return new Cluster({
      brokers: this.config.brokers,
      requestTimeoutMs: this.config.requestTimeout ?? 30_000,
      connectionTimeoutMs: this.config.connectionTimeout ?? 1_000,
      metadataMaxAgeMs: this.config.metadataMaxAge ?? 300_000,
      logger: this.logger.child({ component }),
    });
  }

  producer(opts: ProducerOptions = {}): Producer {
    const cluster = this.cluster('producer');
    const producer = new Producer(
      { cluster, logger: this.logger.child({ component: 'producer' }), requestTimeoutMs: this.config.requestTimeout ?? 30_000, onDisconnect: () => cluster.close() },
      { retry: this.config.retry, ...opts },
    );
    return producer;
  }

  /** A consumer with its own metadata cache and connections (closed on disconnect). */
  consumer(opts: ConsumerOptions = {}): Consumer {
    const cluster = this.cluster('consumer');
    return new Consumer({ cluster, logger: this.logger.child({ component: 'consumer', groupId: opts.groupId }), requestTimeoutMs: this.config.requestTimeout ?? 30_000, onDisconnect: () => cluster.close() }, opts);
  }

  admin(): Admin {
    return new Admin(this.cluster('admin'), this.config.requestTimeout ?? 30_000);
  }
}
