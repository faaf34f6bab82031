// `raftka groups list|describe|delete|reset-offsets`, like kafka-consumer-groups:
// describe shows each member with its assignment and, per partition, the committed
// offset, the log end offset (the high watermark) and the lag; reset-offsets rewrites a
// group's committed offsets and, as Kafka, only for a group without members.
import type { Command } from 'commander';
import { errorByCode } from '../common/errors.ts';
import { silentLogger } from '../common/logger.ts';
import { Cluster as SdkCluster } from '../client/cluster.ts';
import { GroupRpc, fetchCommitted } from '../client/consumer-group.ts';
import { decodeAssignment } from '../client/consumer-protocol.ts';
import { EARLIEST_TIMESTAMP, LATEST_TIMESTAMP } from '../proto/raftka.ts';
import type { DescribedGroup, ListedGroup } from '../proto/group.ts';
import { action, bootstrapOption, CliError, codeLine, intArg, oneLineErrors, parseBootstrap, transportLine } from './common.ts';

const TIMEOUT_MS = 10_000;

interface Flags {
  bootstrap: string;
  json?: boolean;
}

function sdkCluster(bootstrap: string): SdkCluster {
  return new SdkCluster({ brokers: parseBootstrap(bootstrap), requestTimeoutMs: TIMEOUT_MS, connectionTimeoutMs: 3_000, metadataMaxAgeMs: 60_000, logger: silentLogger() });
}

async function withGroup<T>(bootstrap: string, group: string, fn: (rpc: GroupRpc, cluster: SdkCluster) => Promise<T>): Promise<T> {
  const cluster = sdkCluster(bootstrap);
  const rpc = new GroupRpc(cluster, group, TIMEOUT_MS, silentLogger());
  try {
    await cluster.refresh().catch((e: unknown) => {
      throw new CliError(`cannot reach any broker of ${bootstrap}: ${transportLine(e)}`);
    });
    return await fn(rpc, cluster);
  } finally {
    rpc.close();
    cluster.close();
  }
}

async function describeGroup(rpc: GroupRpc): Promise<DescribedGroup> {
  const r = await rpc.call('DescribeGroups', { groups: [rpc.groupId] });
  if (r.errorCode !== 0) throw new CliError(codeLine(r.errorCode, r.errorMessage));
  const g = r.groups[0];
  if (!g) throw new CliError(`group ${JSON.stringify(rpc.groupId)}: no answer`);
  if (g.errorCode !== 0) throw new CliError(`group ${JSON.stringify(rpc.groupId)}: ${codeLine(g.errorCode, g.errorMessage)}`);
  return g;
}

/** Offsets by time per partition from each partition's leader. */
async function listOffsets(cluster: SdkCluster, topic: string, partitions: number[], timestamp: number): Promise<Map<number, number>> {
  await cluster.ensure([topic]).catch((e: unknown) => {
    throw new CliError((e as Error).message);
  });
  const byLeader = new Map<number, number[]>();
  for (const p of partitions) {
    const l = cluster.leaderOf(topic, p);
    if (l < 0) throw new CliError(`${topic}-${p} has no leader right now; try again`);
    byLeader.set(l, [...(byLeader.get(l) ?? []), p]);
  }
  const out = new Map<number, number>();
  for (const [leader, ps] of byLeader) {
    const r = await cluster.brokerConnection(leader)!.listOffsets({ topics: [{ name: topic, partitions: ps.map((partition) => ({ partition, timestamp })) }] }, { timeoutMs: TIMEOUT_MS });
    if (r.errorCode !== 0) throw new CliError(codeLine(r.errorCode, r.errorMessage));
    for (const a of r.topics[0]?.partitions ?? []) {
      if (a.errorCode !== 0) throw new CliError(`${topic}-${a.partition}: ${codeLine(a.errorCode, a.errorMessage)}`);
      out.set(a.partition, a.offset);
    }
  }
  return out;
}

interface PartitionRow {
  topic: string;
  partition: number;
  committedOffset: number | null;
  logEndOffset: number | null;
  lag: number | null;
  memberId: string | null;
  clientId: string | null;
  host: string | null;
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
}

export function registerGroupsCommands(program: Command): void {
  const groups = oneLineErrors(program.command('groups').description('list, describe, delete consumer groups and reset their offsets'), 'groups');

  oneLineErrors(
    bootstrapOption(groups.command('list').description('every consumer group (each broker lists the groups it coordinates)').option('--state <state>', 'only groups in this state (Empty, Stable, PreparingRebalance, CompletingRebalance)').option('--json', 'one JSON array')),
    'groups list',
  ).action(
    action('groups list', async (flags: Flags & { state?: string }) => {
      const cluster = sdkCluster(flags.bootstrap);
      const rpc = new GroupRpc(cluster, '', TIMEOUT_MS, silentLogger());
      try {
        await cluster.refresh().catch((e: unknown) => {
          throw new CliError(`cannot reach any broker of ${flags.bootstrap}: ${transportLine(e)}`);
        });
        const all = new Map<string, ListedGroup>();
        for (const b of cluster.knownBrokers().filter((x) => !x.fenced)) {
          const r = await rpc.callAt(`${b.host}:${b.port}`, 'ListGroups', { statesFilter: flags.state ? [flags.state] : [] }).catch((e: unknown) => {
            throw new CliError(`broker ${b.id}: ${transportLine(e)}`);
          });
          if (r.errorCode !== 0) throw new CliError(`broker ${b.id}: ${codeLine(r.errorCode, r.errorMessage)}`);
          for (const g of r.groups) all.set(g.groupId, g);
        }
        const list = [...all.values()].sort((a, b) => (a.groupId < b.groupId ? -1 : 1));
        if (flags.json) console.log(JSON.stringify(list.map((g) => ({ group: g.groupId, state: g.groupState, protocolType: g.protocolType }))));
        else if (list.length > 0) console.log(table([['GROUP', 'STATE', 'PROTOCOL-TYPE'], ...list.map((g) => [g.groupId, g.groupState, g.protocolType])]));
      } finally {
        rpc.close();
        cluster.close();
      }
    }),
  );

  oneLineErrors(bootstrapOption(groups.command('describe').description('members, assignment, committed offset, log end offset and lag per partition').argument('<group>', 'group id').option('--json', 'one JSON object')), 'groups describe').action(
    action('groups describe', async (group: string, flags: Flags) => {
      await withGroup(flags.bootstrap, group, async (rpc, cluster) => {
        const g = await describeGroup(rpc);
        if (g.groupState === 'Dead') throw new CliError(`group ${JSON.stringify(group)} does not exist`);
        const owner = new Map<string, { memberId: string; clientId: string; host: string }>();
        const members = g.members.map((m) => {
          let assignment: Array<{ topic: string; partitions: number[] }> = [];
          try {
            assignment = decodeAssignment(m.memberAssignment).assignment;
          } catch {
            // Not a consumer-protocol assignment: shown without partitions.
          }
          for (const tp of assignment) for (const p of tp.partitions) owner.set(`${tp.topic}:${p}`, { memberId: m.memberId, clientId: m.clientId, host: m.clientHost });
          return { memberId: m.memberId, groupInstanceId: m.groupInstanceId || null, clientId: m.clientId, host: m.clientHost, assignment };
        });
        const committed = await rpc.call('OffsetFetch', { groupId: group, topics: [] });
        if (committed.errorCode !== 0) throw new CliError(codeLine(committed.errorCode, committed.errorMessage));
        const parts = new Map<string, { topic: string; partition: number; committed: number | null }>();
        for (const t of committed.topics) for (const p of t.partitions) if (p.committedOffset >= 0) parts.set(`${t.name}:${p.partition}`, { topic: t.name, partition: p.partition, committed: p.committedOffset });
        for (const m of members) for (const tp of m.assignment) for (const p of tp.partitions) if (!parts.has(`${tp.topic}:${p}`)) parts.set(`${tp.topic}:${p}`, { topic: tp.topic, partition: p, committed: null });
        const rows: PartitionRow[] = [];
        const topics = [...new Set([...parts.values()].map((p) => p.topic))].sort();
        for (const topic of topics) {
          const ps = [...parts.values()].filter((p) => p.topic === topic).sort((a, b) => a.partition - b.partition);
          let ends = new Map<number, number>();
          try {
            ends = await listOffsets(cluster, topic, ps.map((p) => p.partition), LATEST_TIMESTAMP);
          } catch {
            // A deleted topic or a partition without a leader: shown without end offsets.
          }
          for (const p of ps) {
            const end = ends.get(p.partition) ?? null;
            const o = owner.get(`${topic}:${p.partition}`);
            rows.push({ topic, partition: p.partition, committedOffset: p.committed, logEndOffset: end, lag: end !== null && p.committed !== null ? Math.max(0, end - p.committed) : null, memberId: o?.memberId ?? null, clientId: o?.clientId ?? null, host: o?.host ?? null });
          }
        }
        if (flags.json) {
          console.log(JSON.stringify({ group, state: g.groupState, protocolType: g.protocolType, assignor: g.protocolData, generationId: g.generationId, leader: g.leader, members, partitions: rows }));
          return;
        }
        console.log(`Group ${group}: ${g.groupState}, assignor ${g.protocolData || '-'}, generation ${g.generationId}, ${members.length} member(s)`);
        if (rows.length > 0) {
          const s = (v: string | number | null) => (v === null ? '-' : String(v));
          console.log(table([['TOPIC', 'PARTITION', 'CURRENT-OFFSET', 'LOG-END-OFFSET', 'LAG', 'CONSUMER-ID', 'HOST', 'CLIENT-ID'], ...rows.map((r) => [r.topic, s(r.partition), s(r.committedOffset), s(r.logEndOffset), s(r.lag), s(r.memberId), s(r.host), s(r.clientId)])]));
        }
        if (members.length > 0) {
          console.log('');
          console.log(table([['CONSUMER-ID', 'GROUP-INSTANCE-ID', 'HOST', 'CLIENT-ID', 'ASSIGNMENT'], ...members.map((m) => [m.memberId, m.groupInstanceId ?? '-', m.host || '-', m.clientId || '-', m.assignment.map((tp) => `${tp.topic}:${tp.partitions.join(',')}`).join(' ') || '-'])]));
        }
      });
    }),
  );

  oneLineErrors(bootstrapOption(groups.command('delete').description('delete empty groups and their committed offsets').argument('<group...>', 'group ids')), 'groups delete').action(
    action('groups delete', async (ids: string[], flags: Flags) => {
      for (const group of ids) {
        await withGroup(flags.bootstrap, group, async (rpc) => {
          const r = await rpc.call('DeleteGroups', { groups: [group] });
          if (r.errorCode !== 0) throw new CliError(codeLine(r.errorCode, r.errorMessage));
          const res = r.results.find((x) => x.groupId === group);
          if (res && res.errorCode !== 0) {
            const name = errorByCode(res.errorCode);
            if (name === 'GROUP_ID_NOT_FOUND') throw new CliError(`group ${JSON.stringify(group)} does not exist`);
            if (name === 'NON_EMPTY_GROUP') throw new CliError(`group ${JSON.stringify(group)} has active members; stop them first`);
            throw new CliError(`group ${JSON.stringify(group)}: ${codeLine(res.errorCode, res.errorMessage)}`);
          }
          console.log(`Deleted group ${group}`);
        });
      }
    }),
  );

  oneLineErrors(
    bootstrapOption(
      groups
        .command('reset-offsets')
        .description("rewrite a group's committed offsets for a topic (the group must have no members)")
        .argument('<group>', 'group id')
        .requiredOption('--topic <topic>', 'the topic')
        .option('-p, --partition <n[,n...]>', 'only these partitions (default: all)')
        .option('--to-earliest', 'the log start offset')
        .option('--to-latest', 'the log end offset')
        .option('--to-offset <n>', 'this offset (clamped to the partition range, as Kafka)', intArg(0))
        .option('--to-datetime <iso>', 'the first offset at or after this time, e.g. 2026-01-01T00:00:00Z')
        .option('--dry-run', 'show the new offsets without committing them')
        .option('--json', 'one JSON array'),
    ),
    'groups reset-offsets',
  ).action(
    action('groups reset-offsets', async (group: string, flags: Flags & { topic: string; partition?: string; toEarliest?: boolean; toLatest?: boolean; toOffset?: number; toDatetime?: string; dryRun?: boolean }) => {
      const modes = [flags.toEarliest, flags.toLatest, flags.toOffset !== undefined, flags.toDatetime !== undefined].filter(Boolean).length;
      if (modes !== 1) throw new CliError('give exactly one of --to-earliest, --to-latest, --to-offset N, --to-datetime ISO');
      let datetime: number | undefined;
      if (flags.toDatetime !== undefined) {
        datetime = Date.parse(flags.toDatetime);
        if (!Number.isFinite(datetime) || datetime < 0) throw new CliError(`--to-datetime: ${JSON.stringify(flags.toDatetime)} is not an ISO-8601 date-time`);
      }
      await withGroup(flags.bootstrap, group, async (rpc, cluster) => {
        const g = await describeGroup(rpc);
        if (g.groupState !== 'Empty' && g.groupState !== 'Dead') throw new CliError(`group ${JSON.stringify(group)} is ${g.groupState} with ${g.members.length} member(s); offsets can only be reset while it has none`);
        await cluster.ensure([flags.topic]).catch(() => {
          throw new CliError(`topic ${JSON.stringify(flags.topic)} does not exist`);
        });
        const all = cluster.topic(flags.topic)!.partitions.map((p) => p.partition);
        let partitions = all;
        if (flags.partition !== undefined) {
          partitions = flags.partition.split(',').map((s) => {
            if (!/^\s*\d+\s*$/.test(s)) throw new CliError(`--partition expects a comma-separated list of partitions, got ${JSON.stringify(flags.partition)}`);
            const p = Number(s);
            if (!all.includes(p)) throw new CliError(`topic ${JSON.stringify(flags.topic)} has no partition ${p}`);
            return p;
          });
        }
        const earliest = await listOffsets(cluster, flags.topic, partitions, EARLIEST_TIMESTAMP);
        const latest = await listOffsets(cluster, flags.topic, partitions, LATEST_TIMESTAMP);
        let target: Map<number, number>;
        if (flags.toEarliest) target = earliest;
        else if (flags.toLatest) target = latest;
        else if (flags.toOffset !== undefined) target = new Map(partitions.map((p) => [p, Math.min(Math.max(flags.toOffset!, earliest.get(p)!), latest.get(p)!)]));
        else {
          const byTime = await listOffsets(cluster, flags.topic, partitions, datetime!);
          // No record at or after the time: the log end (Kafka does the same).
          target = new Map(partitions.map((p) => [p, byTime.get(p)! >= 0 ? byTime.get(p)! : latest.get(p)!]));
        }
        const before = await fetchCommitted(rpc, [{ topic: flags.topic, partitions }], TIMEOUT_MS);
        const rows = partitions.map((p) => ({ topic: flags.topic, partition: p, previousOffset: (before.get(`${flags.topic}:${p}`) ?? -1) >= 0 ? before.get(`${flags.topic}:${p}`)! : null, newOffset: target.get(p)! }));
        if (!flags.dryRun) {
          const r = await rpc.call('OffsetCommit', { groupId: group, generationId: -1, memberId: '', topics: [{ name: flags.topic, partitions: rows.map((x) => ({ partition: x.partition, committedOffset: x.newOffset, committedLeaderEpoch: -1, committedMetadata: '' })) }] });
          if (r.errorCode !== 0) throw new CliError(errorByCode(r.errorCode) === 'UNKNOWN_MEMBER_ID' ? `group ${JSON.stringify(group)} has members again; offsets not reset` : codeLine(r.errorCode, r.errorMessage));
          for (const t of r.topics) for (const p of t.partitions) if (p.errorCode !== 0) throw new CliError(`${t.name}-${p.partition}: ${codeLine(p.errorCode, p.errorMessage)}`);
        }
        if (flags.json) console.log(JSON.stringify(rows));
        else console.log(table([['TOPIC', 'PARTITION', 'PREVIOUS-OFFSET', 'NEW-OFFSET'], ...rows.map((r) => [r.topic, String(r.partition), r.previousOffset === null ? '-' : String(r.previousOffset), String(r.newOffset)])]) + (flags.dryRun ? '\n(dry run: nothing committed)' : ''));
      });
    }),
  );
}
