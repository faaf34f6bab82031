// Access to grpc-js internals for the frame patches (request-frames.ts, response-frames.ts).
// Each patch repeats or replaces steps of one grpc-js release line, so it is applied only
// when that line is installed; on any other version grpc-js keeps its own behaviour.
import { createRequire } from 'node:module';

/** The grpc-js release line the patches were written against. */
const GRPC_JS_MINOR = '1.14';

/**
 * The grpc-js module at `path` (e.g. `build/src/server-interceptors.js`), the same
 * instance `import '@grpc/grpc-js'` loads (one CommonJS cache), or undefined when the
 * installed grpc-js is of another release line or the module is not there.
 */
export function grpcJsInternal<T>(path: string): T | undefined {
  try {
    const require = createRequire(import.meta.url);
    if (!String((require('@grpc/grpc-js/package.json') as { version?: unknown }).version).startsWith(`${GRPC_JS_MINOR}.`)) return undefined;
    return require(`@grpc/grpc-js/${path}`) as T;
  } catch {
    return undefined;
  }
}
