// A per-link TCP fault proxy: listens on 127.0.0.1:0 and forwards each connection to one
// target, so the nemesis can cut exactly one directed link (node a's connections to node
// b, or the clients' to node b) without root or iptables.
//
// Faults hold bytes instead of discarding them: a paused direction stops reading its
// socket, so the kernel buffers fill and the sender stalls, the way TCP behaves while
// its packets are lost (it retransmits until the path heals or its own timeouts give
// up). Discarding would corrupt the byte stream, a fault no real network produces under
// TCP. Healing resumes the held bytes; `reset()` models the other outcome, connections
// that died during the partition. While a link is fully dropped, new connections are
// accepted but not connected onward, so they hang like a SYN that gets no answer.
import { createServer, Socket, type Server } from 'node:net';
import { componentLogger, type Logger } from '../common/logger.ts';

/**
 * `pass`: both directions flow. `drop`: neither does. `to-target-only`: bytes from the
 * connecting side reach the target, answers are held. `to-client-only`: the reverse.
 */
export type ProxyMode = 'pass' | 'drop' | 'to-target-only' | 'to-client-only';

export interface FaultProxyOptions {
  /** host:port connections are forwarded to; undefined while the target has no address (its process is down). */
  readonly target: string | undefined;
  /** For logs: which link this is, e.g. "1->2" or "clients->3". */
  readonly name?: string;
  readonly logger?: Logger;
}

interface Link {
  readonly client: Socket;
  upstream?: Socket;
  /** The upstream socket finished connecting. */
  connected: boolean;
  /** A write to the other side returned false: wait for 'drain' before reading more. */
  upBlocked: boolean;
  downBlocked: boolean;
}

function parseTarget(target: string): { host: string; port: number } {
  const i = target.lastIndexOf(':');
  const port = Number(target.slice(i + 1));
  if (i <= 0 || !Number.isInteger(port) || port <= 0 || port > 65535) throw new RangeError(`proxy target must be host:port, got ${JSON.stringify(target)}`);
  return { host: target.slice(0, i).replace(/^\[|\]$/g, ''), port };
}

export class FaultProxy {
  private readonly server: Server;
  private readonly links = new Set<Link>();
  private target: { host: string; port: number } | undefined;
  private readonly log: Logger | undefined;
  private _mode: ProxyMode = 'pass';
  private _port = 0;
  private closed = false;

  private constructor(readonly opts: FaultProxyOptions) {
    this.target = opts.target === undefined ? undefined : parseTarget(opts.target);
    this.log = opts.logger ? componentLogger(opts.logger, 'fault-proxy').child({ link: opts.name ?? opts.target }) : undefined;
    this.server = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (s) => this.accept(s));
  }

  static async start(opts: FaultProxyOptions): Promise<FaultProxy> {
    const p = new FaultProxy(opts);
    await new Promise<void>((resolve, reject) => {
      p.server.once('error', reject);
      p.server.listen(0, '127.0.0.1', () => {
        p.server.off('error', reject);
        resolve();
      });
    });
    p._port = (p.server.address() as { port: number }).port;
    return p;
  }

  get port(): number {
    return this._port;
  }

  /** The address to connect to instead of the target. */
  get address(): string {
    return `127.0.0.1:${this._port}`;
  }

  get mode(): ProxyMode {
    return this._mode;
  }

  /** Connections currently open through the proxy. */
  get connections(): number {
    return this.links.size;
  }

  /**
   * Points future connections at another address (a restarted process listens on a new
   * port), or at none: connections are then refused, as by a host whose process is down.
   */
  setTarget(target: string | undefined): void {
    this.target = target === undefined ? undefined : parseTarget(target);
  }

  /** Switches the mode for every open and future connection. */
  setMode(mode: ProxyMode): void {
    if (this._mode === mode) return;
    this._mode = mode;
    this.log?.debug({ mode }, 'proxy mode');
    for (const l of this.links) this.apply(l);
  }

  /** Closes every open connection abruptly (RST where the platform allows); the listener stays. */
  reset(): void {
    for (const l of [...this.links]) this.drop(l, true);
  }

  /** Stops listening and kills every connection; idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.reset();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private get toTarget(): boolean {
    return this._mode === 'pass' || this._mode === 'to-target-only';
  }

  private get toClient(): boolean {
    return this._mode === 'pass' || this._mode === 'to-client-only';
  }

  private accept(client: Socket): void {
    if (this.closed) {
      client.destroy();
      return;
    }
    const l: Link = { client, connected: false, upBlocked: false, downBlocked: false };
    this.links.add(l);
    client.setNoDelay(true);
    client.on('error', () => this.drop(l, false));
    client.on('close', () => this.drop(l, false));
    client.on('data', (d: Buffer) => {
      if (l.upstream && !l.upstream.write(d)) {
        l.upBlocked = true;
        this.apply(l);
      }
    });
    client.on('end', () => l.upstream?.end());
    this.apply(l);
  }

  /** Starts or stops reading each side as the mode and backpressure allow. */
  private apply(l: Link): void {
    if (!l.upstream && this._mode !== 'drop') this.connect(l);
    const up = l.upstream;
    if (up && l.connected && this.toTarget && !l.upBlocked) l.client.resume();
    else l.client.pause();
    if (up) {
      if (l.connected && this.toClient && !l.downBlocked) up.resume();
      else up.pause();
    }
  }

  private connect(l: Link): void {
    const target = this.target;
    if (target === undefined) {
      this.drop(l, false);
      return;
    }
    const up = new Socket({ allowHalfOpen: true });
    l.upstream = up;
    up.setNoDelay(true);
    up.pause();
    up.on('error', () => this.drop(l, false));
    up.on('close', () => this.drop(l, false));
    up.on('data', (d: Buffer) => {
      if (!l.client.write(d)) {
        l.downBlocked = true;
        this.apply(l);
      }
    });
    up.on('end', () => l.client.end());
    up.on('drain', () => {
      l.upBlocked = false;
      this.apply(l);
    });
    l.client.on('drain', () => {
      l.downBlocked = false;
      this.apply(l);
    });
    up.connect(target.port, target.host, () => {
      l.connected = true;
      this.apply(l);
    });
  }

  private drop(l: Link, reset: boolean): void {
    if (!this.links.delete(l)) return;
    for (const s of [l.client, l.upstream]) {
      if (!s || s.destroyed) continue;
      if (reset && typeof s.resetAndDestroy === 'function' && !s.connecting) s.resetAndDestroy();
      else s.destroy();
    }
  }
}

/** Starts a proxy towards `target`. */
export function startFaultProxy(opts: FaultProxyOptions): Promise<FaultProxy> {
  return FaultProxy.start(opts);
}
