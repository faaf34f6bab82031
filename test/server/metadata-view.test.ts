// The MetadataView over a MetadataImage: brokers by client listener, topics by name and
// id, effective topic configs with their source.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MetadataImage, configKey } from '../../src/metadata/image.ts';
import { metadataViewOf } from '../../src/server/metadata-view.ts';

const TOPIC_ID = 'AAAAAAAAAAAAAAAAAAAAAA';

function image(): MetadataImage {
  const endpoints = (port: number) => [
    { name: 'REPLICATION', host: '10.0.0.1', port: port + 100 },
    { name: 'CLIENT', host: 'broker.example', port },
  ];
  return new MetadataImage({
    ...MetadataImage.EMPTY.fields(),
    offset: 10,
    brokers: new Map([
      [2, { brokerId: 2, incarnationId: 'b', brokerEpoch: 5, endpoints: endpoints(9093), rack: null, fenced: true }],
      [1, { brokerId: 1, incarnationId: 'a', brokerEpoch: 4, endpoints: endpoints(9092), rack: 'r1', fenced: false }],
    ]),
    topicsById: new Map([
      [TOPIC_ID, { name: 'orders', topicId: TOPIC_ID, partitions: [{ topicId: TOPIC_ID, partition: 0, replicas: [1, 2], isr: [1], elr: [], lastKnownElr: [], leader: 1, leaderEpoch: 3, partitionEpoch: 7 }] }],
    ]),
    topicIdsByName: new Map([['orders', TOPIC_ID]]),
    configs: new Map([
      [configKey('topic', 'orders'), new Map([['retention.ms', '1000']])],
      [configKey('cluster', ''), new Map([['min.insync.replicas', '2']])],
    ]),
  });
}

test('metadataViewOf answers from the image', () => {
  const view = metadataViewOf(image(), { clusterId: 'c1', controllerId: 3, listenerName: 'CLIENT', voters: [{ id: 3, lag: 0, isLeader: true }] });
  assert.equal(view.clusterId, 'c1');
  assert.equal(view.controllerId, 3);
  assert.deepEqual(view.brokers(), [
    { id: 1, host: 'broker.example', port: 9092, rack: 'r1', fenced: false },
    { id: 2, host: 'broker.example', port: 9093, rack: null, fenced: true },
  ]);
  assert.equal(view.broker(9), undefined);
  assert.equal(view.topicByName('orders')?.topicId, TOPIC_ID);
  assert.equal(view.topicById(TOPIC_ID)?.partitions[0]?.leaderEpoch, 3);
  assert.deepEqual([...view.topics()].map((t) => t.name), ['orders']);
  const configs = new Map(view.topicConfigs(TOPIC_ID)!.map((c) => [c.name, c]));
  assert.deepEqual(configs.get('retention.ms'), { name: 'retention.ms', value: '1000', source: 'topic' });
  assert.deepEqual(configs.get('min.insync.replicas'), { name: 'min.insync.replicas', value: '2', source: 'broker' });
  assert.deepEqual(configs.get('cleanup.policy'), { name: 'cleanup.policy', value: 'delete', source: 'default' });
  assert.equal(view.topicConfigs('BBBBBBBBBBBBBBBBBBBBBA'), undefined);
  assert.deepEqual(view.voters(), [{ id: 3, lag: 0, isLeader: true }]);
});
