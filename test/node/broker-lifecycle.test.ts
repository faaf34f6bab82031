// BrokerLifecycle against a scripted controller: register, heartbeat with the leaderless
// replicas' reports, and register again when the controller says the registration the
// heartbeats carry is stale (a new incarnation replaced it, or the controller fenced and
// forgot it) [KIP-631, KIP-903].
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BrokerLifecycle } from '../../src/node/broker-lifecycle.ts';
import { ERRORS, type ErrorName } from '../../src/common/errors.ts';
import { silentLogger } from '../../src/common/logger.ts';
import type { BrokerHeartbeatRequest, BrokerHeartbeatResponse, BrokerRegistrationResponse } from '../../src/proto/broker.ts';
import type { LeaderlessReplica } from '../../src/broker/types.ts';
import { defer, waitFor } from '../support/tmp.ts';

function scriptedController(heartbeatError: (brokerEpoch: number) => ErrorName) {
  let epoch = 4;
  const heartbeats: BrokerHeartbeatRequest[] = [];
  const controller = {
    brokerRegistration: async (): Promise<BrokerRegistrationResponse> => ({ errorCode: 0, errorMessage: '', brokerEpoch: ++epoch }),
    brokerHeartbeat: async (req: BrokerHeartbeatRequest): Promise<BrokerHeartbeatResponse> => {
      heartbeats.push(req);
      const error = heartbeatError(req.brokerEpoch);
      return { errorCode: ERRORS[error].code, errorMessage: error === 'NONE' ? '' : error, isCaughtUp: true, isFenced: error !== 'NONE', shouldShutDown: false };
    },
  };
  return { controller, heartbeats, registrations: () => epoch - 4 };
}

test('a heartbeat answered STALE_BROKER_EPOCH registers again; heartbeats carry the leaderless replicas', async (t) => {
  const reports: LeaderlessReplica[] = [{ topicId: 'AAAAAAAAAAAAAAAAAAAAAA', partition: 2, leaderEpoch: 7, lastWrittenEpoch: 6, logEndOffset: 120 }];
  // The first registration (epoch 5) goes stale; the second (epoch 6) is current.
  const c = scriptedController((e) => (e === 5 ? 'STALE_BROKER_EPOCH' : 'NONE'));
  const lifecycle = new BrokerLifecycle({
    brokerId: 1,
    clusterId: 'c',
    endpoints: [],
    rack: '',
    controller: c.controller,
    heartbeatIntervalMs: 10,
    caughtUpOffset: () => 0,
    leaderlessReplicas: () => reports,
    logger: silentLogger(),
  });
  defer(t, () => lifecycle.stop());
  lifecycle.start();
  await waitFor('the broker unfenced under its second registration', () => lifecycle.state === 'unfenced' && lifecycle.brokerEpoch === 6, 5000, 5);
  assert.equal(c.registrations(), 2);
  assert.deepEqual(
    c.heartbeats.map((h) => h.brokerEpoch).slice(0, 2),
    [5, 6],
  );
  assert.deepEqual(c.heartbeats.at(-1)!.leaderlessReplicas, reports);
});
