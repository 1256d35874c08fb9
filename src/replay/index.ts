/**
 * `dynamo-cdc/replay`: send a range of changes again to chosen sinks or routes, from the S3 export
 * or from the live stream (see docs/replay.md). The S3 source loads `@aws-sdk/client-s3` (an
 * optional peer) only when used.
 */
export { replay, exportSinkOf, STREAM_RETENTION_MS } from './replay.js';
export type { ReplayOptions, ReplayReport, S3ReplaySource, StreamReplaySource } from './replay.js';
export { dynamoDbReplayCheckpoints, MemoryReplayCheckpoints, replayKey, SHARD_DONE } from './checkpoints.js';
export type { DynamoDbReplayCheckpointsOptions, ReplayCheckpointStore, ReplayPlan, ReplayState } from './checkpoints.js';
export type { KindCounts, ReplayCounts } from './sender.js';
export { parseTime, resolveRange } from './range.js';
export type { ReplayRange, TimeInput } from './range.js';
export { selectRoutes, routeName } from './select-routes.js';
export type { RouteSelection } from './select-routes.js';
export type { UnreadableObject } from './s3-source.js';
export type { ShardReplay } from './stream-source.js';
