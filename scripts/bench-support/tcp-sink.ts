// The raw TCP baseline's far end: a server in its own process that counts and discards
// what each connection sends and, when the sender ends, answers with the byte count.
// Prints its port on stdout, exits on SIGTERM.
import { createServer } from 'node:net';

const server = createServer((sock) => {
  let bytes = 0;
  sock.on('data', (b: Buffer) => (bytes += b.length));
  sock.on('end', () => sock.end(`${bytes}\n`));
  sock.on('error', () => undefined);
});
server.listen(0, '127.0.0.1', () => process.stdout.write(`${(server.address() as { port: number }).port}\n`));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
