// The metadata module's public surface: records and their codec, the immutable image,
// deltas, snapshots and the Raft state machine.
export * from './records.ts';
export * from './codec.ts';
export * from './image.ts';
export * from './delta.ts';
export * from './snapshot.ts';
export * from './state-machine.ts';
export * from './topic-config.ts';
