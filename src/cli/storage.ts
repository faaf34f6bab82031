// `raftka storage`: format data directories and mint ids, like `kafka-storage`.
//   raftka storage random-uuid
//   raftka storage format --cluster-id X --config server.properties [--ignore-formatted]
//   raftka storage format --cluster-id X --node-id N --dir D [--dir D2] [--ignore-formatted]
// With --config, node.id comes from the file and the directories from metadata.log.dir
// and log.dirs (or log.dir), as Kafka reads them; flags given as well override the file.
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { RaftkaError } from '../common/errors.ts';
import { parseProperties } from '../common/config.ts';
import { randomUuid } from '../common/ids.ts';
import { formatDir, metaPropertiesPath } from '../io/meta-properties.ts';

interface FormatFlags {
  config?: string;
  clusterId: string;
  nodeId?: string;
  dir: string[];
  ignoreFormatted?: boolean;
}

function dirsFromProperties(props: Record<string, string>): string[] {
  const dirs = new Set<string>();
  const add = (v: string | undefined): void => {
    for (const d of (v ?? '').split(',')) if (d.trim() !== '') dirs.add(d.trim());
  };
  add(props['metadata.log.dir']);
  add(props['log.dirs'] ?? props['log.dir']);
  return [...dirs];
}

export function runFormat(flags: FormatFlags): string[] {
  let nodeIdText = flags.nodeId;
  let dirs = [...flags.dir];
  if (flags.config !== undefined) {
    let text: string;
    try {
      text = readFileSync(flags.config, 'utf8');
    } catch (e) {
      throw new RaftkaError('INVALID_CONFIG', `cannot read ${flags.config}: ${(e as Error).message}`);
    }
    const props = parseProperties(text);
    nodeIdText ??= props['node.id'];
    if (dirs.length === 0) dirs = dirsFromProperties(props);
  }
  if (nodeIdText === undefined) throw new RaftkaError('INVALID_CONFIG', 'node.id is required (--node-id or node.id in --config)');
  const nodeId = Number(nodeIdText);
  if (!/^\d+$/.test(nodeIdText) || !Number.isSafeInteger(nodeId)) {
    throw new RaftkaError('INVALID_CONFIG', `Invalid node id ${JSON.stringify(nodeIdText)}: expected a non-negative integer`);
  }
  if (dirs.length === 0) throw new RaftkaError('INVALID_CONFIG', 'no directory to format (--dir, or log.dirs in --config)');
  const lines: string[] = [];
  for (const dir of dirs) {
    const r = formatDir({ dir, clusterId: flags.clusterId, nodeId, ignoreFormatted: flags.ignoreFormatted ?? false });
    lines.push(
      r.formatted
        ? `Formatted ${dir} with cluster.id ${r.meta.clusterId}, node.id ${r.meta.nodeId}, directory.id ${r.meta.directoryId}`
        : `Skipped ${dir}: already formatted (${metaPropertiesPath(dir)}, cluster.id ${r.meta.clusterId})`,
    );
  }
  return lines;
}

export function registerStorageCommands(program: Command): void {
  const storage = program.command('storage').description('format data directories and mint cluster ids');
  storage
    .command('random-uuid')
    .description('print a new random UUID (use it as a cluster id)')
    .action(() => {
      console.log(randomUuid());
    });
  storage
    .command('format')
    .description('format data directories with a cluster id, the node id and a fresh directory id')
    .requiredOption('-t, --cluster-id <id>', 'the cluster id (see `raftka storage random-uuid`)')
    .option('-c, --config <file>', 'server properties file: node.id, log.dirs, metadata.log.dir')
    .option('--node-id <n>', 'node id (overrides node.id in --config)')
    .option('--dir <dir>', 'a directory to format; repeat for more (overrides the config)', (v: string, acc: string[]) => [...acc, v], [])
    .option('-g, --ignore-formatted', 'skip directories that are already formatted instead of failing')
    .action((flags: FormatFlags) => {
      for (const line of runFormat(flags)) console.log(line);
    });
}
