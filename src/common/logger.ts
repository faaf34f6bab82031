// One pino root per process; every component logs through a child carrying its name, so
// logs filter by `component`. Level comes from RAFTKA_LOG_LEVEL unless given.
import { pino, type Logger, type DestinationStream } from 'pino';

export type { Logger };

export interface LoggerOptions {
  level?: string;
  name?: string;
  /** Extra fields on every line (node id, cluster id). */
  base?: Record<string, unknown>;
  destination?: DestinationStream;
}

export function createLogger(opts: LoggerOptions = {}): Logger {
  const level = opts.level ?? process.env['RAFTKA_LOG_LEVEL'] ?? 'info';
  const options = {
    level,
    base: { ...(opts.name ? { name: opts.name } : {}), pid: process.pid, ...opts.base },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  return opts.destination ? pino(options, opts.destination) : pino(options);
}

export function componentLogger(parent: Logger, component: string, fields: Record<string, unknown> = {}): Logger {
  return parent.child({ component, ...fields });
}

/** A logger that writes nothing: default for library use and unit tests. */
export function silentLogger(): Logger {
  return pino({ level: process.env['RAFTKA_LOG_LEVEL'] ?? 'silent' });
}
