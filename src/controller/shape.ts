// Structural checks for requests that arrive from outside the type system (a decoded
// RPC, a JSON admin call): every field the handler reads has the declared type, every
// list is bounded. A request that fails is malformed as a whole (INVALID_REQUEST, thrown
// before any state is touched); requests that are well-formed but wrong (a bad topic
// name, a stale epoch) get per-item error codes in their responses instead.
import { RaftkaError } from '../common/errors.ts';

export type Shape =
  | 'int'
  | 'string'
  | 'bool'
  | { readonly optional: Shape }
  | { readonly nullable: Shape }
  | { readonly list: Shape; readonly max?: number }
  | { readonly object: { readonly [key: string]: Shape } }
  | { readonly dict: Shape; readonly max?: number }
  | { readonly oneOf: readonly string[] };

export const LIST_LENGTH_MAX = 10_000;

export const opt = (s: Shape): Shape => ({ optional: s });
export const list = (s: Shape, max = LIST_LENGTH_MAX): Shape => ({ list: s, max });
export const obj = (fields: { readonly [key: string]: Shape }): Shape => ({ object: fields });

/** Throws INVALID_REQUEST naming the first field that does not match. */
export function checkShape(value: unknown, shape: Shape, what: string): void {
  const problem = shapeProblem(value, shape, what);
  if (problem !== undefined) throw new RaftkaError('INVALID_REQUEST', `Malformed request: ${problem}`);
}

function shapeProblem(v: unknown, s: Shape, path: string): string | undefined {
  if (s === 'int') return Number.isSafeInteger(v) ? undefined : `${path} is not an integer`;
  if (s === 'string') return typeof v === 'string' ? undefined : `${path} is not a string`;
  if (s === 'bool') return typeof v === 'boolean' ? undefined : `${path} is not a boolean`;
  if ('optional' in s) return v === undefined ? undefined : shapeProblem(v, s.optional, path);
  if ('nullable' in s) return v === null || v === undefined ? undefined : shapeProblem(v, s.nullable, path);
  if ('oneOf' in s) return typeof v === 'string' && s.oneOf.includes(v) ? undefined : `${path} is not one of ${s.oneOf.join(', ')}`;
  if ('list' in s) {
    if (!Array.isArray(v)) return `${path} is not a list`;
    const max = s.max ?? LIST_LENGTH_MAX;
    if (v.length > max) return `${path} holds ${v.length} items (at most ${max})`;
    for (let i = 0; i < v.length; i++) {
      const p = shapeProblem(v[i], s.list, `${path}[${i}]`);
      if (p !== undefined) return p;
    }
    return undefined;
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return `${path} is not an object`;
  const o = v as Record<string, unknown>;
  if ('dict' in s) {
    const keys = Object.keys(o);
    const max = s.max ?? LIST_LENGTH_MAX;
    if (keys.length > max) return `${path} holds ${keys.length} entries (at most ${max})`;
    for (const k of keys) {
      const p = shapeProblem(o[k], s.dict, `${path}.${k}`);
      if (p !== undefined) return p;
    }
    return undefined;
  }
  for (const [k, fs] of Object.entries(s.object)) {
    const p = shapeProblem(o[k], fs, `${path}.${k}`);
    if (p !== undefined) return p;
  }
  return undefined;
}
