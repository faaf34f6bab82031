// A broker stand-in for measuring the SDK alone (scripts/bench/sdk.ts): the SDK tests'
// one-broker FakeBroker in a process of its own, leading every partition of one topic and
// answering every produce at once (nothing stored or replicated), with a broker's raised
// HTTP/2 receive window, so a client talking to it pays its own costs only.
// Usage: broker-standin.ts TOPIC PARTITIONS. Prints its port on stdout, exits on SIGTERM.
import { DATA_FLOW_CONTROL_WINDOW_BYTES } from '../../src/proto/rpc.ts';
import { FakeBroker } from '../../test/client/fake-broker.ts';

const [topic = 't', partitions = '6'] = process.argv.slice(2);
const broker = new FakeBroker({ [topic]: Number(partitions) }, { keepRequests: false, receiveWindowBytes: DATA_FLOW_CONTROL_WINDOW_BYTES });
broker.handler = (req) => Promise.resolve(broker.answerOnly(req));
await broker.start();
process.stdout.write(`${broker.port}\n`);
process.on('SIGTERM', () => void broker.stop());
