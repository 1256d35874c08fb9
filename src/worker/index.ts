export { dynamoDbLeaseStore, ensureLeaseTable, leaseTableDefinition } from './dynamodb-lease-store.js';
export type { DynamoDbLeaseStoreOptions, EnsureLeaseTableOptions, EnsureLeaseTableResult } from './dynamodb-lease-store.js';
export { dynamoDbStreamsApi } from './dynamodb-streams-api.js';
export type { DynamoDbStreamsApiOptions } from './dynamodb-streams-api.js';
export { Worker } from './worker.js';
export type { ShardStatus, WorkerCounters, WorkerOptions } from './worker.js';
export type { ReaderState } from './shard-reader.js';
export type { CheckpointMark, IteratorPosition, Lease, LeaseStore, NewLease, RecordsPage, ShardDescription, StreamsApi } from './ports.js';
