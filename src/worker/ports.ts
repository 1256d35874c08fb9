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
   * Fencing counter: every take, renewal and release adds one, and every write is conditional on
   * it. Peers judge a lease expired when its counter has not moved for a lease duration on their
   * own clock, so clock skew between hosts cannot give one shard two owners.
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

/** The lease table. Every write but `create` is conditional on the owner and the counter. */
export interface LeaseStore {
  /** Creates the lease unless it exists (conditional put); true when this call created it. */
  create(lease: NewLease): Promise<boolean>;
  /** Every lease of the stream, read consistently. */
  list(streamArn: string): Promise<Lease[]>;
  /** Takes the lease for `owner` if its counter is still `lease.counter`; the new lease, or `undefined` when someone moved first. */
  take(lease: Lease, owner: string): Promise<Lease | undefined>;
  /** Adds one to the counter if `lease.owner` still holds it at `lease.counter`; `undefined` when lost. */
  renew(lease: Lease): Promise<Lease | undefined>;
  /** Writes the checkpoint if `lease.owner` still holds it at `lease.counter`; false when lost. */
  checkpoint(lease: Lease, checkpoint: string, doneAbove: readonly string[]): Promise<boolean>;
  /** Frees the lease (no owner, counter + 1) if still held at `lease.counter`; false when lost. */
  release(lease: Lease): Promise<boolean>;
  /** Removes a lease whose shard is gone from the stream (trimmed) and whose children are started. */
  remove(lease: Lease): Promise<void>;
}
