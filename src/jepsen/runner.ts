/**
 * Orchestrates Jepsen-style runs: a fresh cluster in a temp dir, the workload for the
 * run's time while the nemesis plays the schedule, a full heal, recovery, final reads,
 * the checker over the history and the cluster's observations, a report directory and
 * a one-screen summary. The cluster and the temp dir are removed whatever happens (an
 * exception, Ctrl-C); an invalid run keeps the node logs in its report.
 *
 * Several runs (`runSuite`) each get a seed; a failing run is shrunk by fast-check over
 * the property "the run is valid", within a budget of further cluster runs, and the
 * seed and the shrunk schedule are printed so `--replay <seed>` repeats it.
 */
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import fc from 'fast-check';
import { componentLogger, silentLogger, type Logger } from '../common/logger.ts';
import { Raftka } from '../client/index.ts';
import { check, type CheckResult } from './checker.ts';
import { STOP_SIGNALS, signalExitCode, startJepsenCluster } from './cluster.ts';
import type { FaultKind, JepsenCluster } from './fault-api.ts';
import { HistoryRecorder } from './history.ts';
import { createNemesis } from './nemesis.ts';
import { electLeaderlessPartitions, type UncleanRecovery } from './recovery.ts';
import { runFlags, writeReport } from './report.ts';
import { describeSchedule, scheduleArbitrary, scheduleFor, scheduleKeys, type Schedule, type ScheduleOptions } from './schedule.ts';
import { Workload } from './workload.ts';

export interface RunOptions {
  readonly nodes: number;
  /** Workload duration (ms). */
  readonly timeMs: number;
  readonly kinds: readonly FaultKind[];
  /** acks=1, unclean leader election, min.insync.replicas 1: built to lose writes. */
  readonly unsafe?: boolean;
  /**
   * false: the workload's topics use flush.before.ack=false (acknowledged once every
   * in-sync replica has written, not synced), every power loss of a run hits one node
   * (see NemesisOptions.powerLossOneNode), and after the heal every partition left
   * without a leader gets an unclean election of its most complete log (recovery.ts).
   * Default true, the durable default.
   */
  readonly flushBeforeAck?: boolean;
  /** Where run directories go (default `report`). */
  readonly reportDir?: string;
  readonly logger?: Logger;
  /** Called with each run's summary (the CLI prints it). */
  readonly print?: (text: string) => void;
}

export interface RunOutcome {
  readonly runId: string;
  readonly seed: number;
  readonly schedule: Schedule;
  readonly valid: boolean;
  readonly result: CheckResult;
  readonly reportPath: string;
  /** Keys the final reads could not read to their end (their lost writes go unseen). */
  readonly uncovered: readonly string[];
  /** Why the final reads could not finish those keys (the last errors seen). */
  readonly finalReadErrors: readonly string[];
  /** flush.before.ack=false runs: the unclean elections after the heal, if a partition needed one. */
  readonly recovery?: UncleanRecovery;
  readonly summary: string;
}

const RECOVERY_MS = 60_000;
const FINAL_READS_MS = 30_000;
/** Workload time after the heal: clients see the recovered cluster before they stop. */
const AFTER_HEAL_MS = 2000;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export function scheduleOptions(o: RunOptions): ScheduleOptions {
  return { nodes: o.nodes, timeMs: o.timeMs, kinds: o.kinds, unsafe: o.unsafe ?? false, flushBeforeAck: o.flushBeforeAck ?? true };
}

/** Topic configs of a run's workload topics. */
function topicConfigs(o: RunOptions): Record<string, string> {
  return { ...brokerOverrides(o.unsafe ?? false), ...(o.flushBeforeAck === false ? { 'flush.before.ack': 'false' } : {}) };
}

/** Broker config of a run: unsafe mode opens exactly the doors acks=all and min ISR 2 close. */
function brokerOverrides(unsafe: boolean): Record<string, string> {
  return unsafe ? { 'unclean.leader.election.enable': 'true', 'min.insync.replicas': '1' } : { 'min.insync.replicas': '2' };
}

function runIdFor(seed: number, suffix = ''): string {
  const t = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '').replace('T', '-');
  return `${t}-seed${seed}${suffix}`;
}

async function createTopics(cluster: JepsenCluster, schedule: Schedule, configs: Record<string, string>, nodes: number): Promise<void> {
  const admin = new Raftka({ brokers: [...cluster.bootstrap], requestTimeout: 10_000 }).admin();
  await admin.connect();
  try {
    const topics = [...new Set(scheduleKeys(schedule).map((k) => k.slice(0, k.lastIndexOf('-'))))];
    await admin.createTopics({
      topics: topics.map((topic) => ({
        topic,
        numPartitions: schedule.partitions,
        replicationFactor: Math.min(3, nodes),
        configEntries: Object.entries(configs).map(([name, value]) => ({ name, value })),
      })),
      waitForLeaders: true,
      timeout: 20_000,
    });
  } finally {
    await admin.disconnect();
  }
}

/** The one-screen text summary of a run. */
export function summarize(o: Omit<RunOutcome, 'summary'>): string {
  const s = o.result.stats;
  const lines = [
    `jepsen run ${o.runId}: ${o.valid ? 'VALID' : 'INVALID'} (seed ${o.seed})`,
    ...describeSchedule(o.schedule)
      .split('\n')
      .map((l) => `  ${l}`),
  ];
  if (s) {
    lines.push(`  ops ${s.ops} (nemesis ${s.nemesisOps}); sends ok ${s.sendsOk}, info ${s.sendsInfo + s.sendsPending}, fail ${s.sendsFail}; records acked ${s.recordsAcked}`);
    lines.push(`  polls ok ${s.pollsOk}, fail ${s.pollsFail}, info ${s.pollsInfo}; records read ${s.reads}; acked but unseen ${s.unseen}; info sends read ${s.infoRecordsRead}`);
  }
  if (o.recovery) {
    const elected = Object.entries(o.recovery.elected).map(([k, b]) => `${k}→${b}`);
    const failed = o.recovery.notElected.length > 0 ? `; not elected: ${o.recovery.notElected.join(', ')} (${o.recovery.error ?? 'no error seen'})` : '';
    lines.push(`  unclean recovery after the heal (every replica had stopped uncleanly): ${elected.join(', ') || 'none elected'}${failed}`);
  }
  lines.push(
    `  final reads: ${
      o.uncovered.length === 0
        ? 'every key read to its end'
        : `could not finish ${o.uncovered.join(', ')} within ${FINAL_READS_MS / 1000} s of the heal (the cluster did not serve them: ${o.finalReadErrors.join('; ') || 'no error seen'})`
    }`,
  );
  const found = Object.entries(o.result.anomalies);
  if (found.length === 0) lines.push('  anomalies: none');
  for (const [name, a] of found) lines.push(`  ${name}: ${a.count}${a.examples[0] ? ` (e.g. ${a.examples[0].message})` : ''}`);
  lines.push(`  report: ${join(o.reportPath, 'index.html')}`);
  return lines.join('\n');
}

/** Copies the node logs (not the data) into the report of an invalid run. */
function keepLogs(root: string, into: string): void {
  if (!existsSync(root)) return;
  const dest = join(into, 'logs');
  mkdirSync(dest, { recursive: true });
  for (const f of readdirSync(root)) if (f.endsWith('.log')) copyFileSync(join(root, f), join(dest, f));
}

/**
 * One run of one schedule. Throws only when the harness itself failed (the cluster did
 * not start or recover); anomalies are the result, not an exception.
 */
export async function runOnce(seed: number, schedule: Schedule, opts: RunOptions, runId = runIdFor(seed)): Promise<RunOutcome> {
  const log = componentLogger(opts.logger ?? silentLogger(), 'jepsen-runner', { runId });
  const unsafe = opts.unsafe ?? false;
  const root = mkdtempSync(join(tmpdir(), 'raftka-jepsen-'));
  const reportPath = resolve(opts.reportDir ?? 'report', runId);
  const abort = new AbortController();
  let cluster: JepsenCluster | undefined;
  let workload: Workload | undefined;
  let cleaned: Promise<void> | undefined;
  let keepLogsOnCleanup = false;
  const cleanup = (): Promise<void> =>
    (cleaned ??= (async () => {
      abort.abort();
      await workload?.stop().catch(() => undefined);
      await cluster?.stop().catch((e: unknown) => log.warn({ err: String(e) }, 'cluster stop failed'));
      if (keepLogsOnCleanup) keepLogs(root, reportPath);
      rmSync(root, { recursive: true, force: true });
    })());
  const onSignal = (signal: NodeJS.Signals) => {
    void cleanup().finally(() => process.exit(signalExitCode(signal)));
  };
  for (const s of STOP_SIGNALS) process.on(s, onSignal);
  try {
    const t0 = process.hrtime.bigint();
    const recorder = new HistoryRecorder(() => Number(process.hrtime.bigint() - t0));
    cluster = await startJepsenCluster({ nodes: opts.nodes, root, overrides: brokerOverrides(unsafe) });
    await cluster.waitReady(RECOVERY_MS);
    await createTopics(cluster, schedule, topicConfigs(opts), opts.nodes);
    const keys = scheduleKeys(schedule);
    log.info({ keys, schedule }, 'workload starting');
    workload = new Workload({
      bootstrap: cluster.bootstrap,
      keys,
      producers: schedule.producers,
      consumers: schedule.consumers,
      recorder,
      seed,
      acks: unsafe ? 1 : -1,
      logger: log,
    });
    workload.start();
    const nemesis = createNemesis(cluster, recorder, { seed, keys, powerLossOneNode: opts.flushBeforeAck === false });
    // The run's length is wall time by definition: the nemesis plays inside it.
    await Promise.all([nemesis.run(schedule.faults, abort.signal), sleep(opts.timeMs)]);
    recorder.nemesis('invoke', 'heal', { of: 'all' });
    await cluster.healAll();
    recorder.nemesis('ok', 'heal', { of: 'all' });
    await cluster.waitReady(RECOVERY_MS);
    const recovery = opts.flushBeforeAck === false ? await electLeaderlessPartitions(cluster.bootstrap, keys, recorder, RECOVERY_MS) : undefined;
    await sleep(AFTER_HEAL_MS);
    await workload.stop();
    const { uncovered, lastErrors: finalReadErrors } = await workload.finalReads(FINAL_READS_MS);
    const observations = await cluster.observations();
    const history = recorder.history;
    const result = check(history, observations);
    const valid = result.valid && uncovered.length === 0;
    keepLogsOnCleanup = !valid;
    const partial = { runId, seed, schedule, valid, result, reportPath, uncovered, finalReadErrors, ...(recovery ? { recovery } : {}) };
    const summary = summarize(partial);
    await writeReport(reportPath, {
      runId,
      seed,
      schedule,
      options: { nodes: opts.nodes, timeMs: opts.timeMs, kinds: [...opts.kinds], unsafe, flushBeforeAck: opts.flushBeforeAck ?? true },
      history,
      result,
      uncovered,
      summary,
    });
    opts.print?.(summary);
    return { ...partial, summary };
  } catch (e) {
    keepLogsOnCleanup = true;
    throw e;
  } finally {
    await cleanup();
    for (const s of STOP_SIGNALS) process.off(s, onSignal);
  }
}

/** A seed for a schedule drawn by fast-check outside `runSuite` (the quick test suite). */
export function seedOf(schedule: Schedule): number {
  let h = 0x811c9dc5;
  for (const ch of JSON.stringify(schedule)) h = Math.imul(h ^ ch.charCodeAt(0), 0x01000193) >>> 0;
  return h & 0x7fffffff;
}

/**
 * The property "a run of this schedule is valid", for fast-check. After `budget` cluster
 * runs the property answers true without running, so shrinking a failure ends within
 * the budget; the smallest failing schedule found so far is what fast-check reports.
 */
export function validityProperty(opts: RunOptions, budget: number, onRun?: (o: RunOutcome) => void, seedFor: (s: Schedule) => number = seedOf): fc.IAsyncProperty<[Schedule]> {
  let runs = 0;
  return fc.asyncProperty(scheduleArbitrary(scheduleOptions(opts)), async (schedule) => {
    if (runs >= budget) return true;
    const seed = seedFor(schedule);
    const attempt = runs++;
    const outcome = await runOnce(seed, schedule, opts, runIdFor(seed, attempt === 0 ? '' : `-r${attempt}`));
    onRun?.(outcome);
    return outcome.valid;
  });
}

export interface SuiteOptions extends RunOptions {
  readonly runs: number;
  /** First run's seed (run r uses seed + r); random when absent. */
  readonly seed?: number;
  /** Repeat exactly the run of this seed (once). */
  readonly replay?: number;
  /** Cluster runs spent shrinking a failure (default 5). */
  readonly shrinkRuns?: number;
  /** Run exactly this schedule once (a shrunk schedule a failure printed). */
  readonly schedule?: Schedule;
}

export interface SuiteOutcome {
  readonly valid: boolean;
  readonly outcomes: readonly RunOutcome[];
  /** For a failure: the seed that replays it and the shrunk schedule. */
  readonly failure?: { readonly seed: number; readonly schedule: Schedule; readonly text: string };
}

export async function runSuite(opts: SuiteOptions): Promise<SuiteOutcome> {
  const print = opts.print ?? (() => undefined);
  const base = opts.replay ?? opts.seed ?? Math.floor(Math.random() * 2 ** 31);
  const seeds = opts.replay !== undefined ? [opts.replay] : Array.from({ length: opts.runs }, (_, r) => (base + r) % 2 ** 31);
  const outcomes: RunOutcome[] = [];
  if (opts.schedule) {
    const o = await runOnce(base, opts.schedule, opts);
    return { valid: o.valid, outcomes: [o], ...(o.valid ? {} : { failure: { seed: base, schedule: o.schedule, text: failureText(base, o.schedule, 0, opts) } }) };
  }
  for (const seed of seeds) {
    if (opts.unsafe) {
      // The unsafe schedule is fixed: nothing to draw or shrink.
      const o = await runOnce(seed, scheduleFor(seed, scheduleOptions(opts)), opts);
      outcomes.push(o);
      if (!o.valid) return { valid: false, outcomes, failure: { seed, schedule: o.schedule, text: failureText(seed, o.schedule, 0, opts) } };
      continue;
    }
    print(`jepsen: run with seed ${seed} (replay: --replay ${seed})\n${describeSchedule(scheduleFor(seed, scheduleOptions(opts)))}`);
    let tries = 0;
    // fast-check draws the same first schedule for a seed as scheduleFor (schedule.ts).
    const property = validityProperty(
      opts,
      1 + (opts.shrinkRuns ?? 5),
      (o) => {
        outcomes.push(o);
        tries++;
      },
      () => seed,
    );
    const details = await fc.check(property, { seed, numRuns: 1 });
    if (details.failed && details.counterexample) {
      const [schedule] = details.counterexample;
      // A run that threw (the cluster never recovered) has no outcome: say why it failed.
      const err = details.errorInstance;
      const thrown = err === null || err === undefined || /Property failed by returning false/.test(String(err)) ? undefined : err instanceof Error ? err.message : String(err);
      const text = failureText(seed, schedule, Math.max(0, tries - 1), opts) + (thrown ? `\nthe last failing run threw: ${thrown}` : '');
      print(text);
      return { valid: false, outcomes, failure: { seed, schedule, text } };
    }
  }
  return { valid: outcomes.every((o) => o.valid), outcomes };
}

function failureText(seed: number, schedule: Schedule, shrinkRuns: number, opts: RunOptions): string {
  return [
    `jepsen: FAILED with seed ${seed} — replay with: raftka jepsen --replay ${seed} ${runFlags(opts)}`,
    `shrunk schedule (after ${shrinkRuns} shrinking run(s)):`,
    describeSchedule(schedule),
    `run the shrunk schedule itself with: raftka jepsen --seed ${seed} ${runFlags(opts)} --schedule '${JSON.stringify(schedule)}'`,
  ].join('\n');
}
