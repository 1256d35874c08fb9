import type { IteratorPosition, RecordsPage, ShardDescription, StreamsApi } from '../worker/ports.js';
import { toGetRecordsShape } from './records.js';
import type { LambdaStreamRecord } from './records.js';

/** Options of {@link ScriptedStreams}. */
export interface ScriptedStreamsOptions {
  /** The only stream ARN the fake answers for; any other is a `ResourceNotFoundException`. */
  readonly streamArn: string;
  /** Shards per DescribeStream page, which `calls.describeStream` counts. @default 100 (the service's) */
  readonly pageSize?: number;
}

/** What {@link ScriptedStreams} counts: one per request the real service would have served. */
export interface ScriptedStreamsCalls {
  /** DescribeStream requests: one per page of `describeShards`, one per `childShards`. */
  describeStream: number;
  childShards: number;
  getShardIterator: number;
  getRecords: number;
}

interface StoredRecord {
  readonly sequenceNumber: bigint;
  readonly record: unknown;
}

interface ShardState {
  readonly shardId: string;
  readonly parentShardId: string | undefined;
  startingSequenceNumber: string | undefined;
  endingSequenceNumber: string | undefined;
  records: StoredRecord[];
  /** The highest sequence number trimmed away, if any. */
  trimmedThrough: bigint | undefined;
}

/** An iterator's content: the shard, the position (records above `after` are next) and its generation. */
interface IteratorState {
  readonly shardId: string;
  readonly after: string;
  readonly generation: number;
}

const ITERATOR_PREFIX = 'scripted:';
/** Below every real sequence number: an iterator at the very start of a shard. */
const BEFORE_START = -1n;
const MAX_LIMIT = 1000;

const serviceError = (name: string, message: string): Error =>
  Object.assign(new Error(message), { name, $fault: 'client', $metadata: { httpStatusCode: 400 } });

const DECIMAL = /^[0-9]+$/;

const toSequence = (value: unknown, what: string): bigint => {
  if (typeof value !== 'string' || !DECIMAL.test(value)) {
    throw serviceError('ValidationException', `Expected ${what} to be a decimal sequence number, got \`${String(value)}\` (${typeof value})`);
  }
  return BigInt(value);
};

const isLambdaShape = (record: unknown): record is LambdaStreamRecord => {
  const r = record as { eventSourceARN?: unknown; dynamodb?: { ApproximateCreationDateTime?: unknown } } | null;
  return r !== null && typeof r === 'object' && (typeof r.eventSourceARN === 'string' || typeof r.dynamodb?.ApproximateCreationDateTime === 'number');
};

const sequenceOf = (record: unknown): unknown => (record as { dynamodb?: { SequenceNumber?: unknown } } | null)?.dynamodb?.SequenceNumber;

/**
 * An in-memory DynamoDB stream, scripted by the test: shards that split, close, lose old records to
 * the 24 h trim and vanish, iterators that expire. It keeps the service's semantics that the worker
 * relies on: TRIM_HORIZON / LATEST / AT_ / AFTER_SEQUENCE_NUMBER positions (sequence numbers compare
 * as integers), `limit`, `nextIterator` undefined once a closed shard is read to its end, and errors
 * named as the service names them (`TrimmedDataAccessException`, `ExpiredIteratorException`,
 * `ResourceNotFoundException`, `ValidationException`). Every request is counted in `calls`.
 *
 * @example
 * const records = streamRecords();
 * const streams = new ScriptedStreams({ streamArn: records.streamArn })
 *   .addShard({ shardId: 'shard-1' })
 *   .append('shard-1', [records.insert({ PK: 'USER#1', SK: 'TASK#1' })])
 *   .split('shard-1', ['shard-2', 'shard-3'])
 *   .append('shard-2', [records.modify({ PK: 'USER#1', SK: 'TASK#1' }, { PK: 'USER#1', SK: 'TASK#1', Status: 'DONE' })]);
 */
export class ScriptedStreams implements StreamsApi {
  readonly streamArn: string;
  readonly calls: ScriptedStreamsCalls = { describeStream: 0, childShards: 0, getShardIterator: 0, getRecords: 0 };
  readonly #pageSize: number;
  readonly #shards = new Map<string, ShardState>();
  readonly #failures: { method: keyof StreamsApi; error: () => unknown }[] = [];
  #generation = 0;

  constructor(options: ScriptedStreamsOptions) {
    this.streamArn = options.streamArn;
    this.#pageSize = options.pageSize ?? 100;
    if (!Number.isInteger(this.#pageSize) || this.#pageSize < 1) {
      throw new TypeError(`Expected \`pageSize\` to be an integer >= 1, got \`${String(this.#pageSize)}\` (${typeof this.#pageSize})`);
    }
  }

  /** Adds an open shard; `startingSequenceNumber` defaults to the first record appended. */
  addShard(shard: { shardId: string; parentShardId?: string; startingSequenceNumber?: string }): this {
    if (this.#shards.has(shard.shardId)) throw new Error(`Shard ${shard.shardId} exists already`);
    this.#shards.set(shard.shardId, {
      shardId: shard.shardId,
      parentShardId: shard.parentShardId,
      startingSequenceNumber: shard.startingSequenceNumber,
      endingSequenceNumber: undefined,
      records: [],
      trimmedThrough: undefined,
    });
    return this;
  }

  /**
   * Appends records (GetRecords shape, or Lambda shape from `streamRecords()`, converted) to an open
   * shard. Their sequence numbers must rise above the shard's last one.
   */
  append(shardId: string, records: readonly unknown[]): this {
    const shard = this.#shard(shardId);
    if (shard.endingSequenceNumber !== undefined) throw new Error(`Shard ${shardId} is closed; append to its children instead`);
    for (const raw of records) {
      const record = isLambdaShape(raw) ? toGetRecordsShape(raw) : raw;
      const sequenceNumber = toSequence(sequenceOf(record), 'dynamodb.SequenceNumber of an appended record');
      const last = shard.records.at(-1)?.sequenceNumber ?? shard.trimmedThrough;
      if (last !== undefined && sequenceNumber <= last) {
        throw new Error(`Sequence number ${sequenceNumber} of shard ${shardId} must be above its last one, ${last}`);
      }
      shard.records.push({ sequenceNumber, record });
      shard.startingSequenceNumber ??= sequenceNumber.toString();
    }
    return this;
  }

  /** Closes a shard at its last record: readers reach its end and get no `nextIterator`. */
  closeShard(shardId: string): this {
    const shard = this.#shard(shardId);
    shard.endingSequenceNumber ??= (shard.records.at(-1)?.sequenceNumber ?? shard.trimmedThrough)?.toString() ?? shard.startingSequenceNumber ?? '0';
    return this;
  }

  /** Closes `parentId` and adds the children, whose parent it is. */
  split(parentId: string, children: readonly [string, string]): this {
    this.closeShard(parentId);
    for (const shardId of children) this.addShard({ shardId, parentShardId: parentId });
    return this;
  }

  /** Drops the records up to `upToSequenceNumber`, as the 24 h retention does; reading them throws `TrimmedDataAccessException`. */
  trim(shardId: string, upToSequenceNumber: string): this {
    const shard = this.#shard(shardId);
    const upTo = toSequence(upToSequenceNumber, '`upToSequenceNumber`');
    const trimmed = shard.records.filter((r) => r.sequenceNumber <= upTo);
    const last = trimmed.at(-1);
    if (last) {
      shard.records = shard.records.slice(trimmed.length);
      shard.trimmedThrough = last.sequenceNumber;
    }
    return this;
  }

  /** Every iterator handed out so far throws `ExpiredIteratorException`, as after 15 minutes. */
  expireIterators(): this {
    this.#generation++;
    return this;
  }

  /** The shard leaves the stream, as 24 h after it closed: calls that name it throw `ResourceNotFoundException`. */
  removeShard(shardId: string): this {
    this.#shard(shardId);
    this.#shards.delete(shardId);
    return this;
  }

  /** The next `times` calls of `method` reject with `error()` (a `LimitExceededException`, say); they are counted, nothing else happens. */
  failNext(method: keyof StreamsApi, error: () => unknown, times = 1): this {
    for (let i = 0; i < times; i++) this.#failures.push({ method, error });
    return this;
  }

  async describeShards(streamArn: string, signal?: AbortSignal): Promise<ShardDescription[]> {
    this.#enter('describeShards', 'describeStream', signal);
    this.#checkStream(streamArn);
    const shards = [...this.#shards.values()].map(toDescription);
    // The first page was counted on entry; the service would be asked once more for each further page.
    this.calls.describeStream += Math.max(0, Math.ceil(shards.length / this.#pageSize) - 1);
    return shards;
  }

  async childShards(streamArn: string, shardId: string, signal?: AbortSignal): Promise<ShardDescription[]> {
    this.calls.describeStream++;
    this.#enter('childShards', 'childShards', signal);
    this.#checkStream(streamArn);
    return [...this.#shards.values()].filter((s) => s.parentShardId === shardId).map(toDescription);
  }

  async getShardIterator(streamArn: string, shardId: string, position: IteratorPosition, signal?: AbortSignal): Promise<string> {
    this.#enter('getShardIterator', 'getShardIterator', signal);
    this.#checkStream(streamArn);
    const shard = this.#readable(shardId);
    let after: bigint;
    switch (position.type) {
      case 'TRIM_HORIZON':
        after = shard.trimmedThrough ?? BEFORE_START;
        break;
      case 'LATEST':
        after = shard.records.at(-1)?.sequenceNumber ?? shard.trimmedThrough ?? BEFORE_START;
        break;
      case 'AT_SEQUENCE_NUMBER':
        after = toSequence(position.sequenceNumber, '`sequenceNumber`') - 1n;
        break;
      case 'AFTER_SEQUENCE_NUMBER':
        after = toSequence(position.sequenceNumber, '`sequenceNumber`');
        break;
    }
    this.#checkNotTrimmed(shard, after);
    return this.#iterator(shardId, after);
  }

  async getRecords(iterator: string, limit: number, signal?: AbortSignal): Promise<RecordsPage> {
    this.#enter('getRecords', 'getRecords', signal);
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIMIT) {
      throw serviceError('ValidationException', `Expected \`limit\` to be an integer from 1 to ${MAX_LIMIT}, got \`${String(limit)}\` (${typeof limit})`);
    }
    const state = decodeIterator(iterator);
    if (state.generation < this.#generation) throw serviceError('ExpiredIteratorException', 'Iterator expired. The iterator was created more than 15 minutes ago.');
    const shard = this.#readable(state.shardId);
    const after = BigInt(state.after);
    this.#checkNotTrimmed(shard, after);
    const page = shard.records.filter((r) => r.sequenceNumber > after).slice(0, limit);
    const position = page.at(-1)?.sequenceNumber ?? after;
    const atEnd = shard.endingSequenceNumber !== undefined && !shard.records.some((r) => r.sequenceNumber > position);
    return { records: page.map((r) => r.record), nextIterator: atEnd ? undefined : this.#iterator(shard.shardId, position) };
  }

  #enter(method: keyof StreamsApi, counter: keyof ScriptedStreamsCalls, signal: AbortSignal | undefined): void {
    signal?.throwIfAborted();
    this.calls[counter]++;
    const index = this.#failures.findIndex((f) => f.method === method);
    if (index === -1) return;
    const [failure] = this.#failures.splice(index, 1);
    if (failure) throw failure.error();
  }

  #checkStream(streamArn: string): void {
    if (streamArn !== this.streamArn) throw serviceError('ResourceNotFoundException', `Requested resource not found: Stream: ${streamArn} not found`);
  }

  #shard(shardId: string): ShardState {
    const shard = this.#shards.get(shardId);
    if (!shard) throw new Error(`No shard ${shardId} in the script; add it with addShard() first`);
    return shard;
  }

  #readable(shardId: string): ShardState {
    const shard = this.#shards.get(shardId);
    if (!shard) throw serviceError('ResourceNotFoundException', `Requested resource not found: Shard ${shardId} does not exist`);
    return shard;
  }

  #checkNotTrimmed(shard: ShardState, after: bigint): void {
    if (shard.trimmedThrough !== undefined && after < shard.trimmedThrough) {
      throw serviceError(
        'TrimmedDataAccessException',
        `The operation attempted to read past the oldest stream record in shard ${shard.shardId}: records up to ${shard.trimmedThrough} are trimmed`,
      );
    }
  }

  #iterator(shardId: string, after: bigint): string {
    const state: IteratorState = { shardId, after: after.toString(), generation: this.#generation };
    return ITERATOR_PREFIX + Buffer.from(JSON.stringify(state)).toString('base64url');
  }
}

const toDescription = (s: ShardState): ShardDescription => ({
  shardId: s.shardId,
  parentShardId: s.parentShardId,
  startingSequenceNumber: s.startingSequenceNumber,
  endingSequenceNumber: s.endingSequenceNumber,
});

const decodeIterator = (iterator: string): IteratorState => {
  const invalid = () => serviceError('ValidationException', 'Invalid ShardIterator');
  if (!iterator.startsWith(ITERATOR_PREFIX)) throw invalid();
  try {
    const state = JSON.parse(Buffer.from(iterator.slice(ITERATOR_PREFIX.length), 'base64url').toString('utf8')) as Partial<IteratorState>;
    if (typeof state.shardId !== 'string' || typeof state.after !== 'string' || !/^-?[0-9]+$/.test(state.after) || typeof state.generation !== 'number') throw invalid();
    return { shardId: state.shardId, after: state.after, generation: state.generation };
  } catch {
    throw invalid();
  }
};
