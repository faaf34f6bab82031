// Typed configuration: each key is declared once with its type, default and bounds, and
// `parseConfig` turns loose input (a properties file, CLI flags, a CreateTopics request)
// into a typed, frozen object. Every rejection names the key and the value, as an
// INVALID_CONFIG error, because an operator reads it at start-up.
import { RaftkaError } from './errors.ts';

type Kind = 'int' | 'long' | 'boolean' | 'string' | 'list';

interface BaseDef<T> {
  readonly kind: Kind;
  readonly default: T;
  readonly doc: string;
  validate?(v: T): string | undefined;
}

export interface IntDef extends BaseDef<number> {
  readonly kind: 'int' | 'long';
  readonly min?: number;
  readonly max?: number;
}
export interface BoolDef extends BaseDef<boolean> {
  readonly kind: 'boolean';
}
export interface StringDef<S extends string = string> extends BaseDef<S> {
  readonly kind: 'string';
  readonly oneOf?: readonly S[];
}
export interface ListDef extends BaseDef<readonly string[]> {
  readonly kind: 'list';
}

export type ConfigDef = IntDef | BoolDef | StringDef | ListDef;
export type ConfigDefs = Record<string, ConfigDef>;

export type ConfigOf<D extends ConfigDefs> = {
  readonly [K in keyof D]: D[K] extends BaseDef<infer T> ? T : never;
};

export const intDef = (d: number, doc: string, bounds: { min?: number; max?: number } = {}): IntDef => ({
  kind: 'int',
  default: d,
  doc,
  ...bounds,
});
export const longDef = (d: number, doc: string, bounds: { min?: number; max?: number } = {}): IntDef => ({
  kind: 'long',
  default: d,
  doc,
  ...bounds,
});
export const boolDef = (d: boolean, doc: string): BoolDef => ({ kind: 'boolean', default: d, doc });
export function enumDef<S extends string>(d: S, oneOf: readonly S[], doc: string): StringDef<S> {
  return { kind: 'string', default: d, doc, oneOf };
}
export const stringDef = (d: string, doc: string, validate?: (v: string) => string | undefined): StringDef => ({
  kind: 'string',
  default: d,
  doc,
  ...(validate ? { validate } : {}),
});
export const listDef = (d: readonly string[], doc: string): ListDef => ({ kind: 'list', default: d, doc });

function invalid(key: string, value: unknown, why: string): RaftkaError {
  return new RaftkaError('INVALID_CONFIG', `Invalid value ${JSON.stringify(value)} for configuration ${key}: ${why}`);
}

function coerce(key: string, def: ConfigDef, raw: unknown): unknown {
  switch (def.kind) {
    case 'int':
    case 'long': {
      const n = typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : raw;
      if (typeof n !== 'number' || !Number.isInteger(n)) throw invalid(key, raw, 'expected an integer');
      if (def.kind === 'int' && (n > 2 ** 31 - 1 || n < -(2 ** 31))) throw invalid(key, raw, 'out of the int32 range');
      if (!Number.isSafeInteger(n)) throw invalid(key, raw, 'out of the safe integer range');
      if (def.min !== undefined && n < def.min) throw invalid(key, raw, `must be at least ${def.min}`);
      if (def.max !== undefined && n > def.max) throw invalid(key, raw, `must be at most ${def.max}`);
      return n;
    }
    case 'boolean': {
      if (typeof raw === 'boolean') return raw;
      if (raw === 'true') return true;
      if (raw === 'false') return false;
      throw invalid(key, raw, 'expected true or false');
    }
    case 'string': {
      if (typeof raw !== 'string') throw invalid(key, raw, 'expected a string');
      if (def.oneOf && !def.oneOf.includes(raw)) throw invalid(key, raw, `expected one of ${def.oneOf.join(', ')}`);
      return raw;
    }
    case 'list': {
      if (Array.isArray(raw) && raw.every((x) => typeof x === 'string')) return Object.freeze([...raw]);
      if (typeof raw === 'string') return Object.freeze(raw.split(',').map((s) => s.trim()).filter((s) => s !== ''));
      throw invalid(key, raw, 'expected a comma-separated list');
    }
  }
}

/**
 * Validates `input` against `defs`. Unknown keys are rejected (a typo must not silently
 * fall back to a default); missing keys take their defaults.
 */
export function parseConfig<D extends ConfigDefs>(defs: D, input: Record<string, unknown> = {}): ConfigOf<D> {
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(input)) {
    if (!Object.hasOwn(defs, key)) throw invalid(key, input[key], 'unknown configuration key');
  }
  for (const [key, def] of Object.entries(defs)) {
    const raw = Object.hasOwn(input, key) && input[key] !== undefined ? input[key] : def.default;
    const value = coerce(key, def, raw);
    const why = (def.validate as ((v: unknown) => string | undefined) | undefined)?.(value);
    if (why !== undefined) throw invalid(key, raw, why);
    out[key] = value;
  }
  return Object.freeze(out) as ConfigOf<D>;
}

/** Parses Java-style `key=value` properties text (comments with # or !). */
export function parseProperties(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [i, line] of text.split(/\r?\n/).entries()) {
    const t = line.trim();
    if (t === '' || t.startsWith('#') || t.startsWith('!')) continue;
    const eq = t.indexOf('=');
    if (eq <= 0) throw new RaftkaError('INVALID_CONFIG', `Line ${i + 1} is not key=value: ${JSON.stringify(line)}`);
    out[t.slice(0, eq).trim()] = t.slice(eq + 1).trim();
  }
  return out;
}
