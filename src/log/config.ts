// Per-log (topic-level) configuration; the keys are declared in common/log-config.ts.
import { parseConfig, type ConfigOf } from '../common/config.ts';
import { LOG_CONFIG_DEFS } from '../common/log-config.ts';

export { LOG_CONFIG_DEFS };

export type LogConfig = ConfigOf<typeof LOG_CONFIG_DEFS>;

export function logConfig(input: Record<string, unknown> = {}): LogConfig {
  return parseConfig(LOG_CONFIG_DEFS, input);
}
