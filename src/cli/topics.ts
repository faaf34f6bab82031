// `raftka topics create|list|describe|delete|alter-config`, like kafka-topics and
// kafka-configs. Admin requests go to any broker, which forwards them to the active
// controller and answers once the controller's records commit.
import type { Command } from 'commander';
import { ERRORS, errorByCode } from '../common/errors.ts';
import { isTopicConfigKey, parseTopicConfig } from '../metadata/topic-config.ts';
import {
  CONFIG_OP_DELETE,
  CONFIG_OP_SET,
  CONFIG_RESOURCE_TOPIC,
  ELECTION_PREFERRED,
  ELECTION_UNCLEAN,
  type ConfigEntry,
  type ElectLeadersTopic,
  type ElectLeadersTopicResult,
  type PartitionElectionResult,
  type PartitionMetadata,
  type TopicDescription,
} from '../proto/raftka.ts';
import { action, bootstrapOption, CliError, Cluster, codeLine, collect, intArg, oneLineErrors, parseKeyValues } from './common.ts';

const ADMIN_TIMEOUT_MS = 15_000;
/** Between elections that answered ELIGIBLE_LEADERS_NOT_AVAILABLE, under --wait-ms. */
const RETRY_ELECTION_MS = 250;

/** Checks keys and values the way the controller will, so a typo fails before any request. */
function checkConfigs(configs: Record<string, string>): void {
  for (const k of Object.keys(configs)) {
    if (!isTopicConfigKey(k)) throw new CliError(`unknown topic config ${JSON.stringify(k)}`);
  }
  try {
    parseTopicConfig(configs);
  } catch (e) {
    throw new CliError((e as Error).message);
  }
}

function describeJson(t: TopicDescription, allConfigs: boolean) {
  return {
    name: t.name,
    topicId: t.topicId,
    partitions: t.partitions.map((p) => ({
      partition: p.partition,
      leader: p.leaderId,
      leaderEpoch: p.leaderEpoch,
      replicas: p.replicas,
      isr: p.isr,
      offlineReplicas: p.offlineReplicas,
      elr: p.eligibleLeaderReplicas ?? [],
      lastKnownElr: p.lastKnownElr ?? [],
      ...(p.errorCode !== 0 ? { error: codeLine(p.errorCode, p.errorMessage) } : {}),
    })),
    configs: Object.fromEntries(
      t.configs.filter((c) => allConfigs || c.source === 'topic').map((c) => [c.name, allConfigs ? { value: c.value, source: c.source } : c.value]),
    ),
  };
}

function configsLine(configs: ConfigEntry[], all: boolean): string {
  const shown = configs.filter((c) => all || c.source === 'topic');
  return shown.map((c) => `${c.name}=${c.value}${all ? ` (${c.source})` : ''}`).join(',');
}

export interface ElectionAnswer extends PartitionElectionResult {
  readonly topic: string;
}

/**
 * Runs an election, then (for up to `waitMs`) asks again for the partitions that answered
 * ELIGIBLE_LEADERS_NOT_AVAILABLE: an unclean election waits while replicas are starting or
 * have not reported their logs. Returns the last answer per partition, in first-answer order.
 */
export async function electAskingAgain(
  elect: (topics: ElectLeadersTopic[]) => Promise<ElectLeadersTopicResult[]>,
  first: ElectLeadersTopic[],
  waitMs: number,
  clock: { now: () => number; sleep: (ms: number) => Promise<void> } = { now: Date.now, sleep: (ms) => new Promise((res) => setTimeout(res, ms)) },
): Promise<ElectionAnswer[]> {
  const deadline = clock.now() + waitMs;
  const answers = new Map<string, ElectionAnswer>();
  let ask = first;
  for (;;) {
    for (const t of await elect(ask)) for (const p of t.partitions) answers.set(`${t.name}\0${p.partition}`, { ...p, topic: t.name });
    const waiting = [...answers.values()].filter((a) => a.errorCode === ERRORS.ELIGIBLE_LEADERS_NOT_AVAILABLE.code);
    if (waiting.length === 0 || clock.now() + RETRY_ELECTION_MS > deadline) return [...answers.values()];
    const byTopic = new Map<string, number[]>();
    for (const w of waiting) byTopic.set(w.topic, [...(byTopic.get(w.topic) ?? []), w.partition]);
    ask = [...byTopic].map(([name, partitions]) => ({ name, partitions }));
    await clock.sleep(RETRY_ELECTION_MS);
  }
}

export function registerTopicsCommands(program: Command): void {
  const topics = oneLineErrors(program.command('topics').description('create, list, describe, delete and configure topics'), 'topics');

  oneLineErrors(
    bootstrapOption(
      topics
        .command('create')
        .description('create a topic')
        .argument('<name>', 'topic name')
        .option('-p, --partitions <n>', 'number of partitions (default: the broker default, num.partitions)', intArg(1, 1_000_000))
        .option('-r, --replication-factor <n>', 'replicas per partition (default: default.replication.factor)', intArg(1, 1024))
        .option('-c, --config <key=value>', 'a topic config override, e.g. retention.ms=60000 (repeatable)', collect, [])
        .option('--if-not-exists', 'succeed when the topic already exists')
        .option('--json', 'print the created topic as one JSON object'),
    ),
    'topics create',
  ).action(
    action('topics create', async (name: string, opts: { bootstrap: string; partitions?: number; replicationFactor?: number; config: string[]; ifNotExists?: boolean; json?: boolean }) => {
      const configs = parseKeyValues('--config', opts.config);
      checkConfigs(configs);
      const cluster = new Cluster(opts.bootstrap);
      try {
        const client = await cluster.any();
        const r = await client.createTopics({
          topics: [{ name, numPartitions: opts.partitions ?? 0, replicationFactor: opts.replicationFactor ?? 0, configs }],
          timeoutMs: ADMIN_TIMEOUT_MS,
        });
        if (r.errorCode !== 0) throw new CliError(`cannot create topic ${JSON.stringify(name)}: ${codeLine(r.errorCode, r.errorMessage)}`);
        const t = r.topics[0];
        if (!t) throw new CliError(`cannot create topic ${JSON.stringify(name)}: empty answer`);
        if (t.errorCode !== 0) {
          if (opts.ifNotExists && errorByCode(t.errorCode) === 'TOPIC_ALREADY_EXISTS') {
            if (opts.json) console.log(JSON.stringify({ name, created: false }));
            else console.log(`Topic ${name} already exists.`);
            return;
          }
          throw new CliError(`cannot create topic ${JSON.stringify(name)}: ${codeLine(t.errorCode, t.errorMessage)}`);
        }
        if (opts.json) {
          console.log(
            JSON.stringify({
              name: t.name,
              topicId: t.topicId,
              created: true,
              partitions: t.numPartitions,
              replicationFactor: t.replicationFactor,
              configs: Object.fromEntries(t.configs.filter((c) => c.source === 'topic').map((c) => [c.name, c.value])),
            }),
          );
        } else {
          console.log(`Created topic ${t.name} (id ${t.topicId}, ${t.numPartitions} partitions, replication factor ${t.replicationFactor}).`);
        }
      } finally {
        cluster.close();
      }
    }),
  );

  oneLineErrors(
    bootstrapOption(topics.command('list').description('list topic names').option('--json', 'print one JSON object: {"topics":[{name,topicId,partitions}]}')),
    'topics list',
  ).action(
    action('topics list', async (opts: { bootstrap: string; json?: boolean }) => {
      const cluster = new Cluster(opts.bootstrap);
      try {
        const md = await cluster.metadata();
        const list = md.topics
          .filter((t) => t.errorCode === 0)
          .map((t) => ({ name: t.name, topicId: t.topicId, partitions: t.partitions.length }))
          .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
        if (opts.json) console.log(JSON.stringify({ topics: list }));
        else for (const t of list) console.log(t.name);
      } finally {
        cluster.close();
      }
    }),
  );

  oneLineErrors(
    bootstrapOption(
      topics
        .command('describe')
        .description('show partitions (leader, leader epoch, replicas, ISR, offline replicas, ELR and last known ELR) and configs of one topic or all')
        .argument('[name]', 'topic name (default: every topic)')
        .option('--all-configs', 'show every effective config with its source (topic, broker, default), not only overrides')
        .option('--under-replicated-partitions', 'only partitions whose ISR is smaller than their replica set (no topic lines)')
        .option('--unavailable-partitions', 'only partitions without a leader (no topic lines)')
        .option('--json', 'one JSON object per topic'),
    ),
    'topics describe',
  ).action(
    action('topics describe', async (name: string | undefined, opts: { bootstrap: string; allConfigs?: boolean; underReplicatedPartitions?: boolean; unavailablePartitions?: boolean; json?: boolean }) => {
      // Kafka's kafka-topics --describe filters: with either, only the partitions that match.
      const filtered = opts.underReplicatedPartitions === true || opts.unavailablePartitions === true;
      const wanted = (p: PartitionMetadata) =>
        !filtered || (opts.underReplicatedPartitions === true && p.isr.length < p.replicas.length) || (opts.unavailablePartitions === true && p.leaderId < 0);
      const cluster = new Cluster(opts.bootstrap);
      try {
        const client = await cluster.any();
        const r = await client.describeTopics(name === undefined ? {} : { names: [name] }, { timeoutMs: ADMIN_TIMEOUT_MS });
        if (r.errorCode !== 0) throw new CliError(codeLine(r.errorCode, r.errorMessage));
        const found = r.topics.filter((t) => t.errorCode === 0).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
        if (name !== undefined && found.length === 0) {
          const t = r.topics[0];
          if (!t || errorByCode(t.errorCode) === 'UNKNOWN_TOPIC_OR_PARTITION') throw new CliError(`topic ${JSON.stringify(name)} does not exist`);
          throw new CliError(`topic ${JSON.stringify(name)}: ${codeLine(t.errorCode, t.errorMessage)}`);
        }
        for (const t of found) {
          const partitions = t.partitions.filter(wanted);
          if (filtered && partitions.length === 0) continue;
          if (opts.json) {
            console.log(JSON.stringify(describeJson({ ...t, partitions }, opts.allConfigs ?? false)));
            continue;
          }
          const rf = t.partitions[0]?.replicas.length ?? 0;
          if (!filtered) console.log(`Topic: ${t.name}\tTopicId: ${t.topicId}\tPartitionCount: ${t.partitions.length}\tReplicationFactor: ${rf}\tConfigs: ${configsLine(t.configs, opts.allConfigs ?? false)}`);
          for (const p of [...partitions].sort((a, b) => a.partition - b.partition)) {
            console.log(
              `\tTopic: ${t.name}\tPartition: ${p.partition}\tLeader: ${p.leaderId < 0 ? 'none' : p.leaderId}\tLeaderEpoch: ${p.leaderEpoch}` +
                `\tReplicas: ${p.replicas.join(',')}\tIsr: ${p.isr.join(',')}${p.offlineReplicas.length > 0 ? `\tOffline: ${p.offlineReplicas.join(',')}` : ''}` +
                // Kafka's columns [KIP-966], shown when a partition has any.
                `${(p.eligibleLeaderReplicas ?? []).length > 0 ? `\tElr: ${p.eligibleLeaderReplicas!.join(',')}` : ''}${(p.lastKnownElr ?? []).length > 0 ? `\tLastKnownElr: ${p.lastKnownElr!.join(',')}` : ''}` +
                `${p.errorCode !== 0 ? `\tError: ${codeLine(p.errorCode, p.errorMessage)}` : ''}`,
            );
          }
        }
      } finally {
        cluster.close();
      }
    }),
  );

  oneLineErrors(
    bootstrapOption(topics.command('delete').description('delete a topic and its data on every broker').argument('<name>', 'topic name').option('--json', 'print one JSON object')),
    'topics delete',
  ).action(
    action('topics delete', async (name: string, opts: { bootstrap: string; json?: boolean }) => {
      const cluster = new Cluster(opts.bootstrap);
      try {
        const client = await cluster.any();
        const r = await client.deleteTopics({ names: [name], timeoutMs: ADMIN_TIMEOUT_MS });
        if (r.errorCode !== 0) throw new CliError(`cannot delete topic ${JSON.stringify(name)}: ${codeLine(r.errorCode, r.errorMessage)}`);
        const t = r.topics[0];
        if (t && t.errorCode !== 0) {
          if (errorByCode(t.errorCode) === 'UNKNOWN_TOPIC_OR_PARTITION') throw new CliError(`topic ${JSON.stringify(name)} does not exist`);
          throw new CliError(`cannot delete topic ${JSON.stringify(name)}: ${codeLine(t.errorCode, t.errorMessage)}`);
        }
        if (opts.json) console.log(JSON.stringify({ name, topicId: t?.topicId ?? null, deleted: true }));
        else console.log(`Deleted topic ${name}.`);
      } finally {
        cluster.close();
      }
    }),
  );

  oneLineErrors(
    bootstrapOption(
      topics
        .command('alter-config')
        .description('set or delete topic config overrides, key by key (Kafka\'s incremental alter configs: keys not named keep their values)')
        .argument('<name>', 'topic name')
        .option('--set <key=value>', 'set a config override, e.g. retention.ms=60000 (repeatable)', collect, [])
        .option('--delete <key>', 'remove a config override: back to the cluster default or the built-in default (repeatable)', collect, [])
        .option('--dry-run', 'check the change on the controller without making it')
        .option('--json', 'print the change as one JSON object'),
    ),
    'topics alter-config',
  ).action(
    action('topics alter-config', async (name: string, opts: { bootstrap: string; set: string[]; delete: string[]; dryRun?: boolean; json?: boolean }) => {
      const sets = parseKeyValues('--set', opts.set);
      if (Object.keys(sets).length === 0 && opts.delete.length === 0) throw new CliError('nothing to change: give --set key=value or --delete key');
      checkConfigs(sets);
      for (const k of opts.delete) {
        if (!isTopicConfigKey(k)) throw new CliError(`unknown topic config ${JSON.stringify(k)}`);
        if (Object.hasOwn(sets, k)) throw new CliError(`${k} is both set and deleted`);
      }
      const deletes = [...new Set(opts.delete)];
      const cluster = new Cluster(opts.bootstrap);
      try {
        await cluster.topic(name);
        const client = await cluster.any();
        const r = await client.incrementalAlterConfigs({
          resources: [
            {
              resourceType: CONFIG_RESOURCE_TOPIC,
              resourceName: name,
              configs: [...Object.entries(sets).map(([k, value]) => ({ name: k, operation: CONFIG_OP_SET, value })), ...deletes.map((k) => ({ name: k, operation: CONFIG_OP_DELETE }))],
            },
          ],
          validateOnly: opts.dryRun ?? false,
          timeoutMs: ADMIN_TIMEOUT_MS,
        });
        const res = r.resources[0];
        const code = r.errorCode !== 0 ? r.errorCode : (res?.errorCode ?? 0);
        if (code !== 0 || !res) {
          if (errorByCode(code) === 'UNKNOWN_TOPIC_OR_PARTITION') throw new CliError(`topic ${JSON.stringify(name)} does not exist`);
          throw new CliError(`cannot change configs of topic ${JSON.stringify(name)}: ${res ? codeLine(code, r.errorCode !== 0 ? r.errorMessage : res.errorMessage) : 'empty answer'}`);
        }
        if (opts.json) {
          console.log(JSON.stringify({ name, set: sets, deleted: deletes, dryRun: opts.dryRun ?? false }));
        } else {
          const what = [...Object.entries(sets).map(([k, v]) => `set ${k}=${v}`), ...deletes.map((k) => `deleted ${k}`)].join(', ');
          console.log(`${opts.dryRun ? 'Would change' : 'Changed'} configs of topic ${name}: ${what}.`);
        }
      } finally {
        cluster.close();
      }
    }),
  );

  oneLineErrors(
    bootstrapOption(
      topics
        .command('elect-leaders')
        .description('move partition leadership back to the preferred replica (the first in the replica list), or --unclean: elect a leader for partitions that have none')
        .argument('[name]', 'topic name (default: every partition of every topic)')
        .option('-p, --partition <n>', 'only this partition of the topic (repeatable)', (v: string, prev: number[]) => [...prev, intArg(0, 1_000_000)(v)], [] as number[])
        .option('--unclean', 'elect the replica with the most complete log for partitions without a leader (may lose acknowledged writes)')
        .option('--wait-ms <ms>', 'ask again, up to this long, for partitions that cannot elect a leader yet (ELIGIBLE_LEADERS_NOT_AVAILABLE: replicas still starting or not reported)', intArg(0, 3_600_000), 0)
        .option('--json', 'one JSON object per partition: {topic,partition,leader,result}'),
    ),
    'topics elect-leaders',
  ).action(
    action('topics elect-leaders', async (name: string | undefined, opts: { bootstrap: string; partition: number[]; unclean?: boolean; waitMs: number; json?: boolean }) => {
      if (name === undefined && opts.partition.length > 0) throw new CliError('--partition needs a topic name');
      const cluster = new Cluster(opts.bootstrap);
      try {
        if (name !== undefined) await cluster.topic(name);
        const client = await cluster.any();
        const electionType = opts.unclean ? ELECTION_UNCLEAN : ELECTION_PREFERRED;
        const answers = await electAskingAgain(
          async (topics) => {
            const r = await client.electLeaders({ electionType, topics, timeoutMs: ADMIN_TIMEOUT_MS });
            if (r.errorCode !== 0) throw new CliError(`leader election failed: ${codeLine(r.errorCode, r.errorMessage)}`);
            return r.topics;
          },
          name === undefined ? [] : [{ name, partitions: opts.partition }],
          opts.waitMs,
        );
        let failed = 0;
        for (const p of answers) {
          const code = errorByCode(p.errorCode);
          // Nothing to do is not a failure (Kafka's tool says the same).
          if (p.errorCode !== 0 && code !== 'ELECTION_NOT_NEEDED') failed++;
          const result = p.errorCode === 0 ? 'elected' : code === 'ELECTION_NOT_NEEDED' ? 'not needed' : codeLine(p.errorCode, p.errorMessage);
          if (opts.json) console.log(JSON.stringify({ topic: p.topic, partition: p.partition, leader: p.leaderId, result: p.errorCode === 0 ? 'ELECTED' : code, ...(p.errorMessage ? { message: p.errorMessage } : {}) }));
          else console.log(`${p.topic}-${p.partition}\tleader ${p.leaderId < 0 ? 'none' : p.leaderId}\t${result}`);
        }
        if (failed > 0) throw new CliError(`${failed} partition(s) could not be elected (see above)`);
      } finally {
        cluster.close();
      }
    }),
  );
}

