/**
 * Replay from the live stream: reads the stream's shards itself (through the worker's
 * {@link StreamsApi} port), parents before children, from a time or a sequence number to a time or
 * the tip, with checkpoints of its own. It never takes, reads or writes a worker's lease.
 */
import { classify, describeError } from '../errors.js';
import { compareSequenceNumbers } from '../events.js';
import type { RawStreamRecord } from '../events.js';
import type { Clock, Logger } from '../ports.js';
import type { IteratorPosition, ShardDescription, StreamsApi } from '../worker/ports.js';
import { SHARD_DONE } from './checkpoints.js';
import type { ReplayCheckpointStore } from './checkpoints.js';
import type { Sender } from './sender.js';
import { placeOf } from './range.js';
import type { ReplayRange } from './range.js';

/** What became of one shard. */
export interface ShardReplay {
  readonly shardId: string;
  /** Records of the range read from it in this run. */
  records: number;
  /** Its checkpoint at the end: a sequence number, `END` (nothing left in the range), or `null` (none yet). */
  checkpoint: string | null;
  state: 'done' | 'stopped' | 'failed' | 'not-started';
}

export interface StreamReplayInput {
  readonly streams: StreamsApi;
  readonly streamArn: string;
  readonly range: ReplayRange;
  /** Where this replay stops: `range.to`, or the tip when the replay began. */
  readonly to: number;
  readonly checkpoints: { readonly store: ReplayCheckpointStore; readonly id: string; readonly runId: string; readonly saved: ReadonlyMap<string, string> } | undefined;
  readonly sender: Sender;
  readonly batchSize: number;
  readonly pollIntervalMs: number;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly signal: AbortSignal | undefined;
}

export interface StreamReplayResult {
  readonly shards: ShardReplay[];
  readonly problems: string[];
}

/** Shards read at once: bounds the memory and the GetRecords rate of one replay. */
const MAX_SHARDS_AT_ONCE = 8;
/**
 * When an open shard has nothing more of the range. GetRecords can answer an empty page in the
 * middle of a shard ("it might take multiple calls to get to a portion of the shard that contains
 * stream records", says the API), so one empty read is not the tip: it takes this many empty reads
 * in a row, spread over at least {@link TIP_QUIET_MS}, all made {@link TIP_GRACE_MS} or more after `to`.
 */
const EMPTY_READS_AT_TIP = 5;
const TIP_QUIET_MS = 3000;
/** Records can reach the stream a moment after their creation time: the tip is judged this long after `to`. */
const TIP_GRACE_MS = 2000;

const nameOf = (error: unknown): string | undefined => (error as { name?: string } | null)?.name;

/** Attempts of a stream call that failed with a retryable error (throttling, 5xx, the network). */
const STREAM_ATTEMPTS = 5;
/** The service's answers that mean the position, not the moment, is wrong: never retried. */
const POSITION_ERRORS = new Set(['ExpiredIteratorException', 'TrimmedDataAccessException', 'ResourceNotFoundException']);

const withRetries = async <T>(clock: Clock, signal: AbortSignal | undefined, call: () => Promise<T>): Promise<T> => {
  for (let attempt = 1; ; attempt++) {
    try {
      return await call();
    } catch (error) {
      if (attempt >= STREAM_ATTEMPTS || POSITION_ERRORS.has(nameOf(error) ?? '') || classify(error) === 'PERMANENT') throw error;
      await clock.sleep(Math.random() * 250 * 2 ** attempt, signal);
    }
  }
};

const timeOf = (record: unknown): number => {
  const t = (record as RawStreamRecord | undefined)?.dynamodb?.ApproximateCreationDateTime;
  if (t instanceof Date) return t.getTime();
  if (typeof t === 'number') return t * 1000;
  if (typeof t === 'string') return Date.parse(t);
  return Number.NaN;
};
const sequenceOf = (record: unknown): string => (record as RawStreamRecord | undefined)?.dynamodb?.SequenceNumber ?? '';

class ShardRun {
  readonly result: ShardReplay;
  #checkpoint: string | undefined;
  #emptyReads = 0;
  #emptySince = 0;

  constructor(
    readonly input: StreamReplayInput,
    readonly shard: ShardDescription,
    readonly problems: string[],
  ) {
    const saved = input.checkpoints?.saved.get(shard.shardId);
    this.#checkpoint = saved;
    this.result = { shardId: shard.shardId, records: 0, checkpoint: saved ?? null, state: 'not-started' };
  }

  /** Where reading starts, or `undefined` when the shard holds nothing of the range. */
  #start(): IteratorPosition | undefined {
    const { range } = this.input;
    const { startingSequenceNumber: first, endingSequenceNumber: last } = this.shard;
    if (this.#checkpoint === SHARD_DONE) return undefined;
    if (this.#checkpoint !== undefined) return { type: 'AFTER_SEQUENCE_NUMBER', sequenceNumber: this.#checkpoint };
    if (range.toSequence !== undefined && first !== undefined && compareSequenceNumbers(first, range.toSequence) > 0) return undefined;
    if (range.fromSequence !== undefined) {
      if (last !== undefined && compareSequenceNumbers(last, range.fromSequence) < 0) return undefined;
      if (first !== undefined && compareSequenceNumbers(first, range.fromSequence) <= 0) return { type: 'AT_SEQUENCE_NUMBER', sequenceNumber: range.fromSequence };
    }
    return { type: 'TRIM_HORIZON' };
  }

  async #save(checkpoint: string): Promise<boolean> {
    if (checkpoint === this.#checkpoint) return true;
    this.#checkpoint = checkpoint;
    this.result.checkpoint = checkpoint;
    const c = this.input.checkpoints;
    if (!c) return true;
    if (await c.store.save(c.id, c.runId, this.shard.shardId, checkpoint)) return true;
    this.problems.push(`another run of replay ${c.id} took it over; this run stopped without writing shard ${this.shard.shardId}'s checkpoint`);
    this.result.state = 'stopped';
    return false;
  }

  async #iterator(position: IteratorPosition): Promise<string | undefined> {
    const { streams, streamArn, signal } = this.input;
    try {
      return await withRetries(this.input.clock, signal, () => streams.getShardIterator(streamArn, this.shard.shardId, position, signal));
    } catch (error) {
      if (nameOf(error) === 'TrimmedDataAccessException') {
        const at = 'sequenceNumber' in position ? `sequence number ${position.sequenceNumber}` : 'its start';
        this.problems.push(`shard ${this.shard.shardId}: ${at} is past the stream's 24 h retention (trimmed); replay that range from the S3 export (--source s3)`);
      } else if (nameOf(error) === 'ResourceNotFoundException') {
        this.problems.push(`shard ${this.shard.shardId} is gone from the stream (trimmed past the 24 h retention) before it was read; replay its range from the S3 export (--source s3)`);
      } else throw error;
      this.result.state = 'failed';
      return undefined;
    }
  }

  /** Reads the shard through the range; resolves once it is done, stopped or failed. */
  async run(): Promise<ShardReplay> {
    const { streams, sender, range, to, signal, clock } = this.input;
    const shardRange: ReplayRange = { ...range, to };
    let position = this.#start();
    if (position === undefined) {
      this.result.state = 'done';
      await this.#save(SHARD_DONE);
      return this.result;
    }
    let iterator = await this.#iterator(position);
    while (iterator !== undefined) {
      signal?.throwIfAborted();
      let page;
      try {
        const current = iterator;
        page = await withRetries(clock, signal, () => streams.getRecords(current, this.input.batchSize, signal));
      } catch (error) {
        if (nameOf(error) !== 'ExpiredIteratorException') throw error;
        iterator = await this.#iterator(this.#checkpoint !== undefined ? { type: 'AFTER_SEQUENCE_NUMBER', sequenceNumber: this.#checkpoint } : position);
        continue;
      }
      const inRange: unknown[] = [];
      let passed: string | undefined; // the last record read and not to be sent (before the range)
      let reachedEnd = false;
      for (const record of page.records) {
        const place = placeOf(shardRange, timeOf(record), sequenceOf(record));
        if (place === 'after') {
          reachedEnd = true;
          break;
        }
        if (place === 'before') passed = sequenceOf(record);
        else inRange.push(record);
      }
      const outcome = await sender.send(inRange, { streamArn: this.input.streamArn, shardId: this.shard.shardId, ...(signal ? { signal } : {}) });
      this.result.records += inRange.length;
      if (outcome.watermark < inRange.length) {
        const stuck = inRange[outcome.watermark];
        const done = outcome.watermark > 0 ? sequenceOf(inRange[outcome.watermark - 1]) : passed;
        if (done !== undefined) await this.#save(done);
        this.problems.push(
          `shard ${this.shard.shardId}: record ${sequenceOf(stuck)} could not be delivered (no dead-letter queue, or it failed); its checkpoint stays before it. Fix the cause and run the replay again with the same --id to resume`,
        );
        this.result.state = 'stopped';
        return this.result;
      }
      const last = inRange.length > 0 ? sequenceOf(inRange[inRange.length - 1]) : passed;
      if (last !== undefined && !(await this.#save(last))) return this.result;
      if (last !== undefined) position = { type: 'AFTER_SEQUENCE_NUMBER', sequenceNumber: last };
      if (reachedEnd || page.nextIterator === undefined) break;
      if (page.records.length === 0) {
        const now = clock.now();
        if (now < to + TIP_GRACE_MS) this.#emptyReads = 0;
        else if (this.#emptyReads++ === 0) this.#emptySince = now;
        if (this.#emptyReads >= EMPTY_READS_AT_TIP && now - this.#emptySince >= TIP_QUIET_MS) break;
        await clock.sleep(this.input.pollIntervalMs, signal);
      } else this.#emptyReads = 0;
      iterator = page.nextIterator;
    }
    if (this.result.state === 'failed') return this.result;
    if (await this.#save(SHARD_DONE)) this.result.state = 'done';
    return this.result;
  }
}

/**
 * Replays the range from the stream. Shards are read in waves: a shard starts once its parent is
 * done (or is not in the stream any more), so an item's changes keep their order across a split;
 * up to {@link MAX_SHARDS_AT_ONCE} shards of one wave run concurrently. A closed shard's children are looked up when it ends, so
 * shards created during the replay are read too. A shard whose parent stopped or failed is not
 * read, and says so.
 */
export const replayFromStream = async (input: StreamReplayInput): Promise<StreamReplayResult> => {
  const { streams, streamArn, signal, logger } = input;
  const problems: string[] = [];
  const described = await streams.describeShards(streamArn, signal);
  const known = new Map(described.map((s) => [s.shardId, s]));
  const results = new Map<string, ShardReplay>();
  let pending = [...described];
  while (pending.length > 0) {
    const ready = pending
      .filter((s) => s.parentShardId === undefined || !known.has(s.parentShardId) || results.get(s.parentShardId)?.state === 'done')
      .slice(0, MAX_SHARDS_AT_ONCE);
    const orphaned = pending.filter((s) => s.parentShardId !== undefined && results.has(s.parentShardId) && results.get(s.parentShardId)?.state !== 'done');
    for (const s of orphaned) results.set(s.shardId, { shardId: s.shardId, records: 0, checkpoint: input.checkpoints?.saved.get(s.shardId) ?? null, state: 'not-started' });
    if (ready.length === 0) break;
    pending = pending.filter((s) => !ready.includes(s) && !orphaned.includes(s));
    const wave = await Promise.all(ready.map((s) => new ShardRun(input, s, problems).run()));
    for (const [i, r] of wave.entries()) {
      results.set(r.shardId, r);
      const shard = ready[i] as ShardDescription;
      logger.info({ shardId: r.shardId, records: r.records, state: r.state }, 'replay: shard finished');
      if (r.state !== 'done' || shard.endingSequenceNumber === undefined) continue;
      try {
        for (const child of await streams.childShards(streamArn, shard.shardId, signal)) {
          if (known.has(child.shardId)) continue;
          known.set(child.shardId, child);
          pending.push(child);
        }
      } catch (error) {
        problems.push(`shard ${shard.shardId}: its children could not be looked up (${describeError(error).message}); they were not read`);
      }
    }
  }
  const orphans = [...results.values()].filter((r) => r.state === 'not-started');
  if (orphans.length > 0) problems.push(`${orphans.length} shard${orphans.length === 1 ? '' : 's'} not read because a parent did not finish: ${orphans.map((o) => o.shardId).join(', ')}`);
  return { shards: [...results.values()], problems };
};
