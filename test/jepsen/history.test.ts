import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  HistoryError,
  HistoryRecorder,
  formatHistory,
  formatOp,
  parseHistory,
  parseHistoryLines,
  topicOf,
  validateHistory,
  type Op,
} from '../../src/jepsen/history.ts';
import { SeededRandom } from '../../src/common/random.ts';
import { HistoryBuilder } from './builder.ts';
import { asHistory, generateHistory } from './model.ts';

const K = 'orders-0';

function sample(): Op[] {
  const h = new HistoryBuilder();
  h.nemesis('partition', { halves: [[1], [2, 3]] });
  h.send(0, [[K, 0, 1], ['audit-12', 0, 'not-a-number']]);
  h.sendFailed(0, [[K, 2]], 'info');
  h.subscribe(20, [K]);
  h.poll(20, { [K]: [[0, 1]] }, [K]);
  h.pollFailed(20, 'fail');
  h.assign(10, [K], true);
  h.seek(10, { [K]: 0 });
  h.commit(20, 'g', { [K]: 1 });
  h.crash(10);
  h.finalReads(99, [K]);
  h.op(1, 'invoke', 'send', [[K, 3]]); // left pending at the end: allowed
  return h.ops;
}

test('format and parse round-trip, one op per line with the documented field order', () => {
  const ops = sample();
  const text = formatHistory(ops);
  assert.equal(text.split('\n').length, ops.length + 1);
  assert.ok(text.endsWith('\n'));
  assert.match(formatOp(ops[0] as Op), /^\{"index":0,"time":\d+,"process":"nemesis","type":"invoke","f":"partition","value":/);
  assert.deepEqual(parseHistory(text), ops);
  assert.deepEqual(parseHistory(text.trimEnd()), ops, 'the trailing newline is optional');
  assert.deepEqual(parseHistory(text.replaceAll('\n', '\r\n')), ops, 'CRLF files parse too');
  assert.deepEqual(parseHistory(''), []);
  assert.deepEqual(parseHistoryLines(text.trimEnd().split('\n')), ops, 'lines from readline parse the same');
  assert.throws(() => parseHistoryLines(['']), /history line 1: blank line/);
});

test('model histories round-trip through the text format', () => {
  const ops = asHistory(generateHistory(new SeededRandom(7), 200).ops);
  assert.deepEqual(parseHistory(formatHistory(ops)), JSON.parse(JSON.stringify(ops)));
});

test('topicOf strips the partition, even when the topic has dashes', () => {
  assert.equal(topicOf('orders-0'), 'orders');
  assert.equal(topicOf('my-topic-12'), 'my-topic');
});

// Each malformed line, placed as line 2 after a good invoke, and the message it must give.
const good = '{"index":0,"time":1,"process":0,"type":"invoke","f":"poll","value":null}';
const malformed: [string, string, RegExp][] = [
  ['not JSON', '{"index":1,', /line 2: not valid JSON/],
  ['not an object', '[1,2]', /line 2: the line must be an object, got \[1,2\]/],
  ['missing field', '{"index":1,"time":2,"process":0,"type":"ok","f":"poll"}', /line 2: field "value" is required/],
  ['bad type', '{"index":1,"time":2,"process":0,"type":"okay","f":"poll","value":null}', /line 2: type must be one of invoke, ok, fail, info, got "okay"/],
  ['negative time', '{"index":1,"time":-5,"process":0,"type":"ok","f":"poll","value":{}}', /line 2: time must be a non-negative number/],
  ['fractional index', '{"index":1.5,"time":2,"process":0,"type":"ok","f":"poll","value":{}}', /line 2: index must be a non-negative integer, got 1.5/],
  ['bad process', '{"index":1,"time":2,"process":"p1","type":"ok","f":"poll","value":{}}', /line 2: process must be a non-negative integer or "nemesis", got "p1"/],
  ['unknown client f', '{"index":1,"time":2,"process":0,"type":"ok","f":"read","value":{}}', /line 2: f of a client must be one of send, poll/],
  ['unknown field', '{"index":1,"time":2,"process":0,"type":"ok","f":"poll","value":{},"extra":1}', /line 2: field "extra" is not part of a poll op/],
  ['bad key', '{"index":1,"time":2,"process":0,"type":"ok","f":"poll","value":{"orders":[]}}', /line 2: value key must be a key "<topic>-<partition>", got "orders"/],
  ['negative offset', '{"index":1,"time":2,"process":0,"type":"ok","f":"poll","value":{"t-0":[[0,1],[-1,2]]}}', /line 2: value\["t-0"\]\[1\]\[0\] \(offset\) must be a non-negative integer, got -1/],
  ['record not a pair', '{"index":1,"time":2,"process":0,"type":"ok","f":"poll","value":{"t-0":[[0]]}}', /line 2: value\["t-0"\]\[0\] must be \[offset, value\]/],
  ['float value', '{"index":1,"time":2,"process":0,"type":"ok","f":"poll","value":{"t-0":[[0,1.5]]}}', /line 2: value\["t-0"\]\[0\]\[1\] \(value\) must be an integer or a string, got 1.5/],
  ['value on a failed poll', '{"index":1,"time":2,"process":0,"type":"fail","f":"poll","value":{}}', /line 2: value of a fail poll must be null/],
  ['bad rebalance log', '{"index":1,"time":2,"process":0,"type":"ok","f":"poll","value":{},"rebalanceLog":[{"keys":"t-0"}]}', /line 2: rebalanceLog\[0\]\.keys must be an array/],
  ['error on an invoke', '{"index":1,"time":2,"process":1,"type":"invoke","f":"poll","value":null,"error":"x"}', /line 2: error is only allowed on a completion/],
  ['blank line', '', /line 2: blank line/],
];

for (const [name, line, message] of malformed) {
  test(`a malformed line is refused with its line number: ${name}`, () => {
    assert.throws(
      () => parseHistory(`${good}\n${line}\n`),
      (e: unknown) => e instanceof HistoryError && e.line === 2 && message.test(e.message),
    );
  });
}

test('send, assign, seek, commit, crash and final-reads values are checked by shape', () => {
  const line = (f: string, type: string, value: string, extra = '') =>
    `{"index":0,"time":1,"process":0,"type":"${type}","f":"${f}","value":${value}${extra}}`;
  const refused: [string, RegExp][] = [
    [line('send', 'invoke', '[["t-0",[0,1]]]'), /value\[0\]\[1\] \(value\) must be an integer or a string/],
    [line('send', 'invoke', '[["t-0"]]'), /value\[0\] must be \[key, value\]/],
    [line('send', 'invoke', '{"t-0":1}'), /value must be an array/],
    [line('assign', 'invoke', '["t-0"]', ',"seekToBeginning":"yes"'), /seekToBeginning must be true or false/],
    [line('seek', 'invoke', '{"t-0":"x"}'), /value\["t-0"\] must be a non-negative integer/],
    [line('commit', 'invoke', '{"offsets":{}}'), /value.group must be a non-empty string/],
    [line('commit', 'invoke', '{"group":"g","offsets":{},"generation":3}'), /value.generation is not part of a commit/],
    [line('crash', 'invoke', '{}'), /value of a crash must be null/],
    [line('final-reads', 'invoke', '[1]'), /value\[0\] must be a key/],
    [line('assign', 'invoke', '[]', ',"rebalanceLog":[]'), /field "rebalanceLog" is not part of a assign op/],
  ];
  for (const [text, message] of refused) {
    assert.throws(() => parseHistory(text), (e: unknown) => e instanceof HistoryError && e.line === 1 && message.test(e.message), text);
  }
  const ok = line('send', 'invoke', '[["t-0",1],["t-1","raw"]]');
  assert.equal(parseHistory(ok).length, 1);
  // The nemesis may describe its targets with any JSON.
  assert.equal(parseHistory('{"index":0,"time":0,"process":"nemesis","type":"invoke","f":"clock","value":{"node":2,"skewMs":-300}}').length, 1);
});

test('history-level rules name the op: indexes, time, and invoke/completion pairing', () => {
  const cases: [(h: HistoryBuilder) => void, RegExp][] = [
    [(h) => h.op(0, 'ok', 'poll', {}), /line 1: ok poll for process 0, which has no pending invoke/],
    [
      (h) => {
        h.op(0, 'invoke', 'poll', null);
        h.op(0, 'invoke', 'send', []);
      },
      /line 2: process 0 invoked send while its poll \(op 0\) is still pending/,
    ],
    [
      (h) => {
        h.op(0, 'invoke', 'poll', null);
        h.op(0, 'ok', 'crash', null);
      },
      /line 2: ok crash completes process 0's poll \(op 0\)/,
    ],
    [
      (h) => {
        h.op(0, 'invoke', 'send', [[K, 1]]);
        h.op(0, 'ok', 'send', [[K, [0, 2]]]);
      },
      /line 2: the send completion's records differ from those its invoke \(op 0\) sent/,
    ],
  ];
  for (const [build, message] of cases) {
    const h = new HistoryBuilder();
    build(h);
    assert.throws(() => parseHistory(formatHistory(h.ops)), (e: unknown) => e instanceof HistoryError && message.test(e.message));
  }
  const ops = sample();
  const gap = ops.map((op, i) => (i === 3 ? { ...op, index: 7 } : op));
  assert.throws(() => validateHistory(gap), (e: unknown) => e instanceof HistoryError && e.opIndex === 3 && /index must be 3/.test(e.message));
  const back = ops.map((op, i) => (i === 3 ? { ...op, time: 0 } : op));
  assert.throws(() => validateHistory(back), /history op 3: time 0 is before the previous op's/);
});

test('the recorder numbers and stamps ops, refuses what a reader would, and writes what parses back', () => {
  let now = 0;
  const lines: string[] = [];
  const rec = new HistoryRecorder(
    () => (now += 10),
    (op) => lines.push(formatOp(op)),
  );
  rec.nemesis('invoke', 'kill', { nodes: [1] });
  rec.invoke(0, 'send', [[K, 1]]);
  rec.invoke(1, 'poll', null);
  assert.throws(() => rec.invoke(0, 'poll', null), /process 0 does not follow its pending send/);
  assert.throws(() => rec.complete(1, 'ok', 'send', [[K, [0, 1]]]), /does not follow its pending poll/);
  assert.throws(() => rec.complete(0, 'ok', 'send', [[K, [0, 9]]]), /records differ from its invoke's/);
  assert.throws(() => rec.complete(1, 'ok', 'poll', { bad: [] }), HistoryError);
  rec.complete(0, 'ok', 'send', [[K, [0, 1]]]);
  rec.complete(1, 'ok', 'poll', { [K]: [[0, 1]] }, { rebalanceLog: [{ keys: [K] }] });
  rec.invoke(2, 'commit', { group: 'g', offsets: { [K]: 1 } });
  assert.deepEqual(
    rec.pendingOps().map((op) => op.process),
    ['nemesis', 2],
  );
  rec.nemesis('info', 'kill', { nodes: [1] }, 'timed out');
  assert.equal(rec.history.length, 7);
  assert.deepEqual(
    rec.history.map((op) => op.index),
    [0, 1, 2, 3, 4, 5, 6],
  );
  assert.deepEqual(parseHistory(`${lines.join('\n')}\n`), rec.history);
});
