import type { DescribeStreamCommandInput, Shard, ShardFilter } from '@aws-sdk/client-dynamodb-streams';
import { DescribeStreamCommand, DynamoDBStreamsClient, GetRecordsCommand, GetShardIteratorCommand } from '@aws-sdk/client-dynamodb-streams';
import { systemClock } from '../core/clock.js';
import type { Clock } from '../ports.js';
import type { IteratorPosition, RecordsPage, ShardDescription, StreamsApi } from './ports.js';

/** Options of {@link dynamoDbStreamsApi}. */
export interface DynamoDbStreamsApiOptions {
  /**
   * The client to use. Its own retries add to the adapter's: DescribeStream throttling
   * (`LimitExceededException`) is retried here as well, everything else is left to the worker.
   * @default a new `DynamoDBStreamsClient({ maxAttempts: 3, region, endpoint })`
   */
  readonly client?: DynamoDBStreamsClient;
  /** Region of the default client; ignored when `client` is given. @default the environment's region */
  readonly region?: string;
  /** Endpoint of the default client (DynamoDB Local, a VPC endpoint); ignored when `client` is given. @default the region's endpoint */
  readonly endpoint?: string;
  /** Paces DescribeStream calls and backs off after throttling. @default the system clock */
  readonly clock?: Clock;
}

/** DynamoDB Streams allows 10 DescribeStream calls per second. */
const DESCRIBE_CALLS_PER_WINDOW = 10;
const DESCRIBE_WINDOW_MS = 1000;
/** The largest DescribeStream page. */
const DESCRIBE_PAGE_SIZE = 100;
/** Retries of a throttled DescribeStream call, with doubling delays from the base. */
const LIMIT_EXCEEDED_RETRIES = 4;
const LIMIT_EXCEEDED_BASE_DELAY_MS = 200;

/** Errors a service answers with when it does not know `ShardFilter` (older endpoints and emulators). */
const FILTER_REJECTED_NAMES = new Set(['ValidationException', 'SerializationException', 'InvalidParameterException', 'UnknownOperationException']);

const nameOf = (error: unknown): unknown => (error !== null && typeof error === 'object' ? (error as { name?: unknown }).name : undefined);

const toDescription = (shard: Shard): ShardDescription | undefined =>
  shard.ShardId === undefined
    ? undefined
    : {
        shardId: shard.ShardId,
        parentShardId: shard.ParentShardId,
        startingSequenceNumber: shard.SequenceNumberRange?.StartingSequenceNumber,
        endingSequenceNumber: shard.SequenceNumberRange?.EndingSequenceNumber,
      };

/**
 * Admits at most `limit` calls in any `windowMs`: a call waits until the oldest of the last `limit`
 * calls is a window old. Unlike a token bucket it never lets a burst and the refill meet in one window.
 */
class SlidingWindowLimiter {
  readonly #starts: number[] = [];

  constructor(
    readonly limit: number,
    readonly windowMs: number,
    readonly clock: Clock,
  ) {}

  async acquire(signal?: AbortSignal): Promise<void> {
    for (;;) {
      signal?.throwIfAborted();
      const now = this.clock.now();
      while (this.#starts.length > 0 && (this.#starts[0] as number) <= now - this.windowMs) this.#starts.shift();
      if (this.#starts.length < this.limit) {
        this.#starts.push(now);
        return;
      }
      await this.clock.sleep((this.#starts[0] as number) + this.windowMs - now, signal);
    }
  }
}

/**
 * A {@link StreamsApi} over `@aws-sdk/client-dynamodb-streams`. DescribeStream calls (pages and
 * child lookups together) stay within the service's 10 calls per second per instance, and a
 * throttled one is retried a few times with a doubling delay; errors keep their SDK names
 * (`ExpiredIteratorException`, `TrimmedDataAccessException`, `ResourceNotFoundException`, ...).
 * `childShards` asks with `ShardFilter` CHILD_SHARDS and, on a service that rejects the filter,
 * describes the whole stream and keeps the shards whose parent is the given one.
 *
 * @example
 * import { dynamoDbStreamsApi } from 'dynamo-cdc/worker';
 * const streams = dynamoDbStreamsApi({ region: 'eu-west-1' });
 * const shards = await streams.describeShards(streamArn);
 */
export const dynamoDbStreamsApi = (options: DynamoDbStreamsApiOptions = {}): StreamsApi => {
  const client =
    options.client ??
    new DynamoDBStreamsClient({
      maxAttempts: 3,
      ...(options.region !== undefined ? { region: options.region } : {}),
      ...(options.endpoint !== undefined ? { endpoint: options.endpoint } : {}),
    });
  const clock = options.clock ?? systemClock;
  const limiter = new SlidingWindowLimiter(DESCRIBE_CALLS_PER_WINDOW, DESCRIBE_WINDOW_MS, clock);
  // Learnt from the first answer, so a service without the filter costs one wasted call, not one per lookup.
  let childFilter: 'unknown' | 'supported' | 'unsupported' = 'unknown';

  const describeStream = async (input: DescribeStreamCommandInput, signal: AbortSignal | undefined) => {
    for (let retry = 0; ; retry++) {
      await limiter.acquire(signal);
      try {
        return await client.send(new DescribeStreamCommand(input), { abortSignal: signal });
      } catch (error) {
        if (nameOf(error) !== 'LimitExceededException' || retry >= LIMIT_EXCEEDED_RETRIES) throw error;
        await clock.sleep(LIMIT_EXCEEDED_BASE_DELAY_MS * 2 ** retry, signal);
      }
    }
  };

  const describeAll = async (streamArn: string, filter: ShardFilter | undefined, signal: AbortSignal | undefined): Promise<ShardDescription[]> => {
    const shards: ShardDescription[] = [];
    let start: string | undefined;
    do {
      const { StreamDescription: page } = await describeStream(
        {
          StreamArn: streamArn,
          Limit: DESCRIBE_PAGE_SIZE,
          ...(start !== undefined ? { ExclusiveStartShardId: start } : {}),
          ...(filter ? { ShardFilter: filter } : {}),
        },
        signal,
      );
      for (const shard of page?.Shards ?? []) {
        const description = toDescription(shard);
        if (description) shards.push(description);
      }
      start = page?.LastEvaluatedShardId;
    } while (start !== undefined);
    return shards;
  };

  return {
    describeShards: (streamArn, signal) => describeAll(streamArn, undefined, signal),

    async childShards(streamArn, shardId, signal) {
      const isChild = (s: ShardDescription) => s.parentShardId === shardId;
      if (childFilter !== 'unsupported') {
        try {
          const shards = await describeAll(streamArn, { Type: 'CHILD_SHARDS', ShardId: shardId }, signal);
          childFilter = 'supported';
          // Kept to the children even so: a service that ignores the filter answers with every shard.
          return shards.filter(isChild);
        } catch (error) {
          // Once the filter has worked, the same error means the input is wrong, not the filter unknown.
          if (childFilter === 'supported' || !FILTER_REJECTED_NAMES.has(String(nameOf(error)))) throw error;
          childFilter = 'unsupported';
        }
      }
      return (await describeAll(streamArn, undefined, signal)).filter(isChild);
    },

    async getShardIterator(streamArn, shardId, position: IteratorPosition, signal) {
      const { ShardIterator: iterator } = await client.send(
        new GetShardIteratorCommand({
          StreamArn: streamArn,
          ShardId: shardId,
          ShardIteratorType: position.type,
          ...('sequenceNumber' in position ? { SequenceNumber: position.sequenceNumber } : {}),
        }),
        { abortSignal: signal },
      );
      if (iterator === undefined) throw new Error(`GetShardIterator returned no iterator for shard ${shardId} of ${streamArn}`);
      return iterator;
    },

    async getRecords(iterator, limit, signal): Promise<RecordsPage> {
      const page = await client.send(new GetRecordsCommand({ ShardIterator: iterator, Limit: limit }), { abortSignal: signal });
      return { records: page.Records ?? [], nextIterator: page.NextShardIterator };
    },
  };
};
