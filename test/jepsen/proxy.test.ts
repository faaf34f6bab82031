import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { FaultProxy } from '../../src/jepsen/proxy.ts';
import { defer, waitFor } from '../support/tmp.ts';

type HasAfter = Parameters<typeof defer>[0];

/** An echo server that also keeps what each connection sent it. */
async function echoServer(t: HasAfter): Promise<{ server: Server; port: number; received: string[]; accepted: () => number }> {
  const received: string[] = [];
  const sockets = new Set<Socket>();
  let accepted = 0;
  const server = createServer((s) => {
    accepted++;
    sockets.add(s);
    const i = received.push('') - 1;
    s.on('data', (d) => {
      received[i] += d.toString();
      s.write(d);
    });
    s.on('error', () => undefined);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  defer(t, () => {
    for (const s of sockets) s.destroy();
    return new Promise((r) => server.close(r));
  });
  return { server, port: (server.address() as { port: number }).port, received, accepted: () => accepted };
}

interface Client {
  socket: Socket;
  text(): string;
  closed(): boolean;
}

async function dial(t: HasAfter, port: number): Promise<Client> {
  let text = '';
  let closed = false;
  const socket = connect(port, '127.0.0.1');
  socket.on('data', (d) => (text += d.toString()));
  socket.on('error', () => undefined);
  socket.on('close', () => (closed = true));
  await new Promise<void>((r, j) => {
    socket.once('connect', r);
    socket.once('error', j);
  });
  defer(t, () => socket.destroy());
  return { socket, text: () => text, closed: () => closed };
}

async function proxyTo(t: HasAfter, port: number): Promise<FaultProxy> {
  const p = await FaultProxy.start({ target: `127.0.0.1:${port}`, name: 'test' });
  defer(t, () => p.close());
  return p;
}

/**
 * Evidence that held bytes are really held, not just slow: several full round trips on a
 * separate, healthy link complete in the meantime.
 */
async function barrier(t: HasAfter, port: number): Promise<void> {
  const c = await dial(t, port);
  for (let i = 0; i < 5; i++) {
    const want = c.text() + `b${i};`;
    c.socket.write(`b${i};`);
    await waitFor('barrier echo', () => c.text() === want, 5000, 1);
  }
  c.socket.destroy();
}

test('pass forwards bytes both ways; connections are counted and closed with the proxy', async (t) => {
  const srv = await echoServer(t);
  const p = await proxyTo(t, srv.port);
  const c = await dial(t, p.port);
  c.socket.write('hello');
  await waitFor('echo through the proxy', () => c.text() === 'hello');
  assert.equal(srv.received[0], 'hello');
  assert.equal(p.connections, 1);
  await p.close();
  await waitFor('client connection closed by the proxy', () => c.closed());
  assert.equal(p.connections, 0);
  await assert.rejects(dial(t, p.port), 'a closed proxy no longer listens');
});

test('drop stalls an open connection both ways; heal delivers the held bytes', async (t) => {
  const srv = await echoServer(t);
  const p = await proxyTo(t, srv.port);
  const c = await dial(t, p.port);
  c.socket.write('a');
  await waitFor('first echo', () => c.text() === 'a');
  p.setMode('drop');
  c.socket.write('b');
  await barrier(t, srv.port);
  assert.equal(srv.received[0], 'a', 'nothing passes while the link is dropped');
  assert.equal(c.text(), 'a');
  assert.equal(c.closed(), false, 'the connection stalls rather than closing');
  p.setMode('pass');
  await waitFor('held bytes delivered after heal', () => c.text() === 'ab');
  assert.equal(srv.received[0], 'ab');
});

test('a connection opened during drop hangs (never reaches the target) and works after heal', async (t) => {
  const srv = await echoServer(t);
  const p = await proxyTo(t, srv.port);
  p.setMode('drop');
  const c = await dial(t, p.port);
  c.socket.write('x');
  await barrier(t, srv.port);
  // The barrier itself connected once; the proxied connection did not.
  assert.equal(srv.accepted(), 1);
  assert.equal(c.text(), '');
  p.setMode('pass');
  await waitFor('the held connection reaches the target after heal', () => c.text() === 'x');
  const fresh = await dial(t, p.port);
  fresh.socket.write('y');
  await waitFor('a new connection after heal', () => fresh.text() === 'y');
});

test('one-way: to-target-only delivers requests but holds answers; to-client-only the reverse', async (t) => {
  const srv = await echoServer(t);
  const p = await proxyTo(t, srv.port);
  const c = await dial(t, p.port);
  c.socket.write('0');
  await waitFor('first echo', () => c.text() === '0');

  p.setMode('to-target-only');
  c.socket.write('1');
  await waitFor('the request reaches the target', () => srv.received[0] === '01');
  await barrier(t, srv.port);
  assert.equal(c.text(), '0', 'the echo is held');

  p.setMode('to-client-only');
  await waitFor('the held echo flows once its direction opens', () => c.text() === '01');
  c.socket.write('2');
  await barrier(t, srv.port);
  assert.equal(srv.received[0], '01', 'requests are held now');

  p.setMode('pass');
  await waitFor('everything flows after heal', () => c.text() === '012');
});

test('reset kills open connections but keeps listening', async (t) => {
  const srv = await echoServer(t);
  const p = await proxyTo(t, srv.port);
  const c = await dial(t, p.port);
  c.socket.write('a');
  await waitFor('echo', () => c.text() === 'a');
  p.reset();
  await waitFor('connection reset', () => c.closed());
  const d = await dial(t, p.port);
  d.socket.write('b');
  await waitFor('a new connection works', () => d.text() === 'b');
});

test('a target that refuses connections closes the client side', async (t) => {
  const srv = await echoServer(t);
  const port = srv.port;
  await new Promise((r) => srv.server.close(r));
  const p = await proxyTo(t, port);
  const c = await dial(t, p.port);
  await waitFor('client closed when the target refuses', () => c.closed());
  assert.equal(p.connections, 0);
});

test('without a target connections are refused; setTarget points new connections elsewhere', async (t) => {
  const first = await echoServer(t);
  const second = await echoServer(t);
  const p = await FaultProxy.start({ target: undefined });
  defer(t, () => p.close());
  const refused = await dial(t, p.port);
  await waitFor('refused while the target is down', () => refused.closed());
  p.setTarget(`127.0.0.1:${first.port}`);
  const a = await dial(t, p.port);
  a.socket.write('a');
  await waitFor('reaches the first target', () => a.text() === 'a');
  p.setTarget(`127.0.0.1:${second.port}`);
  const b = await dial(t, p.port);
  b.socket.write('b');
  await waitFor('a new connection reaches the second target', () => b.text() === 'b');
  a.socket.write('c');
  await waitFor('the open connection stays with the first', () => a.text() === 'ac');
  assert.deepEqual([first.received, second.received], [['ac'], ['b']]);
  assert.throws(() => p.setTarget('nohost'), /host:port/);
});

test('bad targets are refused with a clear error', async () => {
  await assert.rejects(FaultProxy.start({ target: 'nohost' }), /host:port/);
  await assert.rejects(FaultProxy.start({ target: '127.0.0.1:70000' }), /host:port/);
});
