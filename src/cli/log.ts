import type { Command } from 'commander';

export function registerLogCommands(program: Command): void {
  program.command('log').description('inspect partition log directories');
}
