// fast-check with a printed, replayable seed. Set FC_SEED to replay a run and FC_RUNS to
// change the number of runs; a failure prints the seed, the path and the shrunk case.
import fc from 'fast-check';

export function propertySeed(): number {
  const env = process.env['FC_SEED'];
  return env !== undefined ? Number(env) : (Math.random() * 2 ** 31) | 0;
}

export function numRuns(defaultRuns: number): number {
  const env = process.env['FC_RUNS'];
  return env !== undefined ? Number(env) : defaultRuns;
}

export async function assertProperty<Ts>(
  name: string,
  property: fc.IAsyncProperty<Ts> | fc.IProperty<Ts>,
  params: fc.Parameters<Ts> = {},
): Promise<void> {
  const seed = params.seed ?? propertySeed();
  process.stdout.write(`# property "${name}": seed=${seed} (replay with --seed ${seed} or FC_SEED=${seed})\n`);
  await fc.assert(property, { ...params, numRuns: numRuns(params.numRuns ?? 100), seed });
}
