// Helpers the networked CLI commands share: the --bootstrap option, one-line errors,
// argument parsers that fail with commander's one-line message, and a small leader
// routing layer over RawClient (metadata from the first bootstrap broker that answers,
// one channel per broker).
//
// Error convention: a user mistake (unknown topic, bad flag, unreachable broker) prints
// ONE line to stderr and exits 1; a stack trace is only ever a bug.
import { Command, InvalidArgumentError, Option } from 'commander';
import { RawClient, RawClientPool } from '../client/raw-client.ts';
import { errorByCode, isRaftkaError } from '../common/errors.ts';
import { isServiceError } from '../proto/rpc.ts';
import type { Broker, MetadataResponse, TopicMetadata } from '../proto/raftka.ts';

export const DEFAULT_BOOTSTRAP = '127.0.0.1:9092';

/** Deadline for the first metadata call: an unreachable cluster must fail in seconds, not 30 s. */
export const BOOTSTRAP_TIMEOUT_MS = 3_000;

/** An error meant for the user: printed as one line, exit code 1. */
export class CliError extends Error {}

export interface BootstrapFlags {
  bootstrap: string;
}

/** Adds `-b, --bootstrap` (default: $RAFTKA_BOOTSTRAP, else 127.0.0.1:9092). */
export function bootstrapOption(cmd: Command): Command {
  return cmd.addOption(
    new Option('-b, --bootstrap <host:port,...>', 'brokers to ask first, comma-separated (env RAFTKA_BOOTSTRAP)').default(
      process.env.RAFTKA_BOOTSTRAP || DEFAULT_BOOTSTRAP,
    ),
  );
}

export function parseBootstrap(s: string): string[] {
  const list = s
    .split(',')
    .map((x) => x.trim())
    .filter((x) => x !== '');
  if (list.length === 0) throw new CliError('--bootstrap is empty: give host:port[,host:port...]');
  for (const a of list) {
    if (!/^[^:\s]+:\d{1,5}$/.test(a) && !/^\[[0-9a-fA-F:]+\]:\d{1,5}$/.test(a)) {
      throw new CliError(`--bootstrap: ${JSON.stringify(a)} is not host:port`);
    }
  }
  return list;
}

/**
 * Makes a subcommand's own parse errors (unknown option, missing argument, bad value)
 * one line prefixed with the command path, without the help text the root program
 * prints after an error.
 */
export function oneLineErrors(cmd: Command, path: string): Command {
  return cmd.showHelpAfterError(false).configureOutput({
    outputError: (str, write) => write(`raftka ${path}: ${str.replace(/^error: /, '').trimEnd()} (see raftka ${path} --help)\n`),
  });
}

/** An integer argument parser for commander (`.option(..., parseIntArg('--partitions', 1))`). */
export function intArg(min = Number.MIN_SAFE_INTEGER, max = Number.MAX_SAFE_INTEGER): (v: string) => number {
  return (v: string) => {
    if (!/^-?\d+$/.test(v.trim())) throw new InvalidArgumentError(`expected an integer, got ${JSON.stringify(v)}`);
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n < min || n > max) {
      throw new InvalidArgumentError(`expected an integer${max === Number.MAX_SAFE_INTEGER ? ` >= ${min}` : ` in ${min}..${max}`}, got ${v}`);
    }
    return n;
  };
}

/** Collects a repeatable option into a list. */
export function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** Parses repeated `k=v` flags into a record. */
export function parseKeyValues(flag: string, items: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const s of items) {
    const eq = s.indexOf('=');
    if (eq <= 0) throw new CliError(`${flag} expects key=value, got ${JSON.stringify(s)}`);
    out[s.slice(0, eq).trim()] = s.slice(eq + 1).trim();
  }
  return out;
}

/** One line for an error code in a response: `NAME: message`. */
export function codeLine(code: number, message: string): string {
  const name = errorByCode(code);
  return message && message !== name ? `${name}: ${message}` : name;
}

/** A transport failure as one line (grpc's details without the "Last error" noise). */
export function transportLine(e: unknown): string {
  if (isServiceError(e)) {
    const details = e.details
      .replace(/^No connection established\. Last error: /, '')
      .replace(/^Error: /, '')
      .replace(/\.? Resolution note:.*$/, '')
      .replace(/ \(\d{4}-\d\d-\d\dT[^)]*\)$/, '');
    if (e.code === 4) return 'no answer before the deadline';
    return details || e.message;
  }
  return e instanceof Error ? e.message : String(e);
}

/**
 * Wraps a command action: a CliError or RaftkaError becomes one line on stderr and exit
 * code 1. Exits explicitly so a channel still reconnecting or stdin still open cannot
 * keep a failed command alive. Anything else is a bug and keeps its stack trace.
 */
export function action<A extends unknown[]>(path: string, fn: (...args: A) => Promise<void> | void): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await fn(...args);
    } catch (e) {
      if (e instanceof CliError || isRaftkaError(e)) {
        process.stderr.write(`raftka ${path}: ${e.message}\n`);
        process.exit(1);
      }
      throw e;
    }
  };
}

/**
 * Connections to a cluster: metadata from the bootstrap brokers (asked in parallel with a
 * short deadline, the first answer wins), then one channel per broker it names.
 */
export class Cluster {
  readonly pool = new RawClientPool({ timeoutMs: 30_000 });
  private brokers = new Map<number, Broker>();
  private readonly bootstrap: string[];

  constructor(bootstrap: string) {
    this.bootstrap = parseBootstrap(bootstrap);
  }

  /**
   * Metadata for `topics` (all topics when undefined; none with `[]`). Asks the known
   * brokers and the bootstrap list in parallel; fails with one line when none answers
   * within `timeoutMs`.
   */
  async metadata(topics?: string[], timeoutMs = BOOTSTRAP_TIMEOUT_MS): Promise<MetadataResponse> {
    const addrs = [...new Set([...[...this.brokers.values()].filter((b) => !b.fenced).map((b) => `${b.host}:${b.port}`), ...this.bootstrap])];
    const req = topics === undefined ? {} : topics.length === 0 ? { noTopics: true } : { topics };
    let md: MetadataResponse;
    try {
      md = await Promise.any(
        addrs.map(async (a) => {
          const r = await this.pool.get(a).metadata(req, { timeoutMs });
          if (r.errorCode !== 0) throw new CliError(`${a}: ${codeLine(r.errorCode, r.errorMessage)}`);
          return r;
        }),
      );
    } catch (e) {
      const errs = e instanceof AggregateError ? e.errors : [e];
      const first = errs[0] as unknown;
      throw new CliError(`cannot reach any broker of ${addrs.join(',')} (waited up to ${timeoutMs} ms): ${transportLine(first)}`);
    }
    this.brokers = new Map(md.brokers.map((b) => [b.id, b]));
    return md;
  }

  /** Metadata of one existing topic; a missing topic is a one-line error. */
  async topic(name: string, timeoutMs = BOOTSTRAP_TIMEOUT_MS): Promise<TopicMetadata> {
    const md = await this.metadata([name], timeoutMs);
    const t = md.topics.find((x) => x.name === name);
    if (!t || t.errorCode !== 0) {
      const code = t?.errorCode ?? 3;
      if (errorByCode(code) === 'UNKNOWN_TOPIC_OR_PARTITION') throw new CliError(`topic ${JSON.stringify(name)} does not exist`);
      throw new CliError(`topic ${JSON.stringify(name)}: ${codeLine(code, t?.errorMessage ?? '')}`);
    }
    return t;
  }

  /** A client for broker `id`, or undefined when it is not in the latest metadata. */
  broker(id: number): RawClient | undefined {
    const b = this.brokers.get(id);
    return b ? this.pool.get(`${b.host}:${b.port}`) : undefined;
  }

  /** Any broker (for admin calls, which every broker forwards to the controller). */
  async any(): Promise<RawClient> {
    const md = await this.metadata([]);
    const live = md.brokers.filter((b) => !b.fenced);
    const b = live[0] ?? md.brokers[0];
    return b ? this.pool.get(`${b.host}:${b.port}`) : this.pool.get(this.bootstrap[0]!);
  }

  close(): void {
    this.pool.close();
  }
}

/** Writes to stdout, waiting when the pipe is full so memory stays bounded. */
export async function writeOut(s: string): Promise<void> {
  if (s === '') return;
  if (!process.stdout.write(s)) await new Promise<void>((resolve) => process.stdout.once('drain', resolve));
}

/** A reader of stdout that went away (`| head`) is not an error: stop quietly. */
export function exitQuietlyOnEpipe(): void {
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(0);
    throw e;
  });
}
