// The controller module's public surface: the QuorumController, its request and
// response types, and the pure pieces (placement, partition-change planning, names).
export * from './types.ts';
export * from './controller.ts';
export * from './partition-change.ts';
export * from './placement.ts';
export * from './names.ts';
