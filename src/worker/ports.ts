/**
 * Ports of the worker shape: the stream it reads and the lease table it shares with its peers.
 * Types only; `dynamoDbStreamsApi` and `dynamoDbLeaseStore` implement them, and
 * `dynamo-cdc/testing` has a scripted streams fake for shard splits and lineage.
 */

/** One shard as DescribeStream reports it. */
export interface ShardDescription {
  readonly shardId: string;
  readonly parentShardId: string | undefined;
  readonly startingSequenceNumber: string | undefined;
  /** Set once the shard is closed: no record after it will ever be added. */
  readonly endingSequenceNumber: string | undefined;
}

/** Where to start reading a shard. */
export type IteratorPosition =
  | { readonly type: 'TRIM_HORIZON' | 'LATEST' }
  | { readonly type: 'AFTER_SEQUENCE_NUMBER' | 'AT_SEQUENCE_NUMBER'; readonly sequenceNumber: string };

/** One GetRecords page. */
export interface RecordsPage {
  /** Records in the GetRecords shape of `@aws-sdk/client-dynamodb-streams`, in stream order. */
  readonly records: readonly unknown[];
  /** `undefined` when the shard is closed and every record of it was returned. */
  readonly nextIterator: string | undefined;
}

/**
 * The DynamoDB Streams calls the worker makes. Errors keep the service's names, which the worker
 * branches on: `ExpiredIteratorException`, `TrimmedDataAccessException`, `ResourceNotFoundException`,
 * `LimitExceededException`.
 */
export interface StreamsApi {
  /** Every shard of the stream (all DescribeStream pages). */
  describeShards(streamArn: string, signal?: AbortSignal): Promise<ShardDescription[]>;
  /** The children of a closed shard (DescribeStream with ShardFilter CHILD_SHARDS, or the equivalent). */
  childShards(streamArn: string, shardId: string, signal?: AbortSignal): Promise<ShardDescription[]>;
  getShardIterator(streamArn: string, shardId: string, position: IteratorPosition, signal?: AbortSignal): Promise<string>;
  getRecords(iterator: string, limit: number, signal?: AbortSignal): Promise<RecordsPage>;
}

/** Checkpoint values that are not sequence numbers. */
export type CheckpointMark = 'TRIM_HORIZON' | 'LATEST' | 'SHARD_END';

/** One shard's lease. */
export interface Lease {
  readonly streamArn: string;
  readonly shardId: string;
  /** The worker holding it, or `undefined` when free. */
  readonly owner: string | undefined;
  /**
   * Fencing counter: every take and release adds one, and every write is conditional on it. A
   * lease is held while its owner's heartbeat (see {@link FleetState}) moves; the counter itself
   * moves only when the lease changes hands.
   */
  readonly counter: number;
  /**
   * Where reading resumes: a sequence number up to which every record is done;
   * `AT_SEQUENCE_NUMBER:<seq>`, resume at that record (a reader that started at a start mark pins
   * its position to the first record it read); or a {@link CheckpointMark}. See checkpoints.ts.
   */
  readonly checkpoint: string;
  /** Parent shard ids: the shard is read only after each parent reached SHARD_END (or is gone). */
  readonly parents: readonly string[];
  /** Sequence numbers done after the checkpoint (a small bounded set), skipped when re-read. */
  readonly doneAbove: readonly string[];
}

/** What a new lease starts with. */
export interface NewLease {
  readonly streamArn: string;
  readonly shardId: string;
  readonly parents: readonly string[];
  readonly checkpoint: string;
}

/**
 * The fleet of one stream: one small item in the lease table with every registered worker's
 * heartbeat and a change marker. Workers read it every coordination round (cheap) and the whole
 * lease list only when the marker moved (or rarely); see docs/lease-table.md.
 */
export interface FleetState {
  /** The heartbeat of each registered worker: a token that changes with every beat. */
  readonly beats: ReadonlyMap<string, string>;
  /** Moves with every change of ownership a peer should see: takes, releases, new and removed leases, joins, leaves, expiries. */
  readonly version: number;
}

/** The lease table. Every lease write but `create` is conditional on the owner and the counter. */
export interface LeaseStore {
  /** Creates the lease unless it exists (conditional put); true when this call created it. */
  create(lease: NewLease): Promise<boolean>;
  /** Every lease of the stream (all Scan pages, eventually consistent: every decision taken on it is a conditional write). */
  list(streamArn: string): Promise<Lease[]>;
  /** Takes the lease for `owner` if its counter is still `lease.counter`; the new lease, or `undefined` when someone moved first. */
  take(lease: Lease, owner: string): Promise<Lease | undefined>;
  /** The fleet item; `consistent` for a strongly consistent read. An absent item is an empty fleet at version 0. */
  fleet(streamArn: string, consistent: boolean): Promise<FleetState>;
  /**
   * Sets `workerId`'s heartbeat to `next` if it is `previous` now (`undefined`: if the worker has
   * none). With `join`, the version moves too (a worker registering, or taking over the id of a
   * process that went quiet). False when the condition failed: a peer expired this worker, or
   * another process registered under its id.
   */
  beat(streamArn: string, workerId: string, previous: string | undefined, next: string, join?: boolean): Promise<boolean>;
  /** Removes `workerId`'s heartbeat if it is still `token` and moves the version (a peer that expired, or this worker leaving); false when it moved. */
  unregister(streamArn: string, workerId: string, token: string): Promise<boolean>;
  /** Moves the version, so that peers read the lease list again. */
  touch(streamArn: string): Promise<void>;
  /** Writes the checkpoint if `lease.owner` still holds it at `lease.counter`; false when lost. */
  checkpoint(lease: Lease, checkpoint: string, doneAbove: readonly string[]): Promise<boolean>;
  /** Frees the lease (no owner, counter + 1) if still held at `lease.counter`; false when lost. */
  release(lease: Lease): Promise<boolean>;
  /** Removes a lease whose shard is gone from the stream (trimmed) and whose children are started. */
  remove(lease: Lease): Promise<void>;
}
