import type { Engine } from '../core/engine.js';
import { isDone } from '../core/engine.js';
import { describeError } from '../errors.js';
import { sequenceOf } from '../events.js';
import type { RawStreamRecord } from '../events.js';
import type { Clock, Logger } from '../ports.js';
import type { IteratorPosition, Lease, StreamsApi } from './ports.js';

/** What a reader is doing; `status()` reports it per shard. */
export type ReaderState = 'starting' | 'reading' | 'idle' | 'blocked' | 'draining' | 'ended' | 'failed' | 'stopped';

/** What the reader needs from its worker. */
export interface ReaderHost {
  readonly engine: Engine;
  readonly streams: StreamsApi;
  readonly logger: Logger;
  readonly clock: Clock;
  readonly streamArn: string;
  readonly pollIntervalMs: number;
  readonly maxRecordsPerRead: number;
  readonly checkpointIntervalMs: number;
  readonly maxDoneAbove: number;
  readonly onTrimmedData: 'fail' | 'skip';
  /**
   * True while this worker's lease on the shard was renewed recently enough for a new delivery to
   * start (time fencing: see docs/lease-table.md). Checked before every engine call.
   */
  leaseFresh(shardId: string): boolean;
  /** Writes the checkpoint under the lease; false when the lease was lost. */
  checkpoint(shardId: string, checkpoint: string, doneAbove: readonly string[]): Promise<boolean>;
  /** The shard reached its end and every record of it is done. */
  shardEnded(shardId: string): void;
  /** Counts, for metrics. */
  count(event: 'records' | 'delivered' | 'deadLettered' | 'trimmedGaps' | 'iteratorRenewals', shardId: string, n?: number): void;
}

const creationTimeOf = (record: unknown): number | undefined => {
  const t = (record as RawStreamRecord | undefined)?.dynamodb?.ApproximateCreationDateTime;
  if (t instanceof Date) return t.getTime();
  if (typeof t === 'number') return t * 1000;
  return undefined;
};

const isMark = (checkpoint: string) => checkpoint === 'TRIM_HORIZON' || checkpoint === 'LATEST' || checkpoint === 'SHARD_END';

const positionAfter = (checkpoint: string): IteratorPosition =>
  checkpoint === 'TRIM_HORIZON' || checkpoint === 'LATEST' ? { type: checkpoint } : { type: 'AFTER_SEQUENCE_NUMBER', sequenceNumber: checkpoint };

const errorName = (error: unknown) => (error as { name?: string } | undefined)?.name;

/**
 * Reads one leased shard: GetRecords from the checkpoint, the engine on each page, the contiguous
 * watermark as the checkpoint. One page is in flight at a time, so at most `maxRecordsPerRead`
 * records of a shard are held (backpressure). A page that is not all done is read again from the
 * watermark after a pause, skipping what was done (`doneAbove`).
 */
export class ShardReader {
  readonly shardId: string;
  state: ReaderState = 'starting';
  checkpoint: string;
  lastReadAt: number | undefined;
  lastCheckpointAt: number | undefined;
  /** Age of the newest record read, against now; 0 when caught up. */
  iteratorAgeMs = 0;
  readonly #host: ReaderHost;
  readonly #log: Logger;
  #doneAbove: Set<string>;
  #written: { checkpoint: string; doneAbove: string } | undefined;
  /** Stops reading new pages; the page in hand finishes. */
  readonly #stop = new AbortController();
  /** Aborts the page in hand (drain timeout, lease lost). */
  readonly #abort = new AbortController();
  #blockedPauses = 0;
  /** Set after skipping trimmed records: the checkpoint the gap starts after. */
  #gapAfter: string | undefined;
  /** True once a page with records came back: from then on a trimmed position can mean lost records. */
  #readRecords = false;
  readonly finished: Promise<void>;

  constructor(host: ReaderHost, lease: Lease, startDelayMs = 0) {
    this.#host = host;
    this.shardId = lease.shardId;
    this.checkpoint = lease.checkpoint;
    this.#doneAbove = new Set(lease.doneAbove);
    this.#log = host.logger.child({ shardId: lease.shardId });
    this.finished = this.#run(startDelayMs).catch((error: unknown) => {
      this.state = 'failed';
      this.#log.error({ err: describeError(error) }, 'shard reader stopped by an unexpected error');
    });
  }

  /** Stop reading; the page in hand is finished and checkpointed. */
  stop(): void {
    this.#stop.abort();
  }

  /** Abort the page in hand too: its unfinished records are left for the next owner. */
  abort(): void {
    this.#stop.abort();
    this.#abort.abort(new Error('shard reader aborted'));
  }

  get #stopping(): boolean {
    return this.#stop.signal.aborted;
  }

  async #sleep(ms: number): Promise<void> {
    await this.#host.clock.sleep(ms, this.#stop.signal).catch(() => {});
  }

  /**
   * An iterator at `position`; after trimmed records, whatever the trimmed-data policy gives;
   * `undefined` when stopping or when the policy stopped the shard. Other failures are retried.
   */
  async #iterator(position: IteratorPosition): Promise<string | undefined> {
    for (;;) {
      try {
        return await this.#host.streams.getShardIterator(this.#host.streamArn, this.shardId, position, this.#stop.signal);
      } catch (error) {
        if (this.#stopping) return undefined;
        if (errorName(error) === 'TrimmedDataAccessException') return this.#onTrimmed();
        this.#log.warn({ err: describeError(error) }, 'GetShardIterator failed; retrying after the poll interval');
        await this.#sleep(this.#host.pollIntervalMs);
      }
    }
  }

  async #run(startDelayMs: number): Promise<void> {
    if (startDelayMs > 0) await this.#sleep(startDelayMs);
    if (this.#stopping) {
      this.state = 'stopped';
      return;
    }
    if (this.checkpoint === 'SHARD_END') {
      this.state = 'ended';
      this.#host.shardEnded(this.shardId);
      return;
    }
    let iterator: string | undefined = await this.#iterator(positionAfter(this.checkpoint));
    let lastCheckpointWrite = this.#host.clock.now();
    while (!this.#stopping && iterator) {
      let page;
      try {
        this.state = this.state === 'blocked' ? 'blocked' : 'reading';
        page = await this.#host.streams.getRecords(iterator, this.#host.maxRecordsPerRead, this.#stop.signal);
      } catch (error) {
        if (this.#stopping) break;
        if (errorName(error) === 'ExpiredIteratorException') {
          this.#host.count('iteratorRenewals', this.shardId);
          this.#log.info({ checkpoint: this.checkpoint }, 'shard iterator expired; renewed from the checkpoint');
          iterator = await this.#iterator(positionAfter(this.checkpoint));
          continue;
        }
        if (errorName(error) === 'TrimmedDataAccessException') {
          iterator = await this.#onTrimmed();
          continue;
        }
        this.#log.warn({ err: describeError(error) }, 'GetRecords failed; retrying after the poll interval');
        await this.#sleep(this.#host.pollIntervalMs);
        continue;
      }
      const now = this.#host.clock.now();
      this.lastReadAt = now;
      const records = page.records;
      if (records.length === 0) {
        this.iteratorAgeMs = 0;
        iterator = page.nextIterator;
        if (!iterator) break;
        this.state = 'idle';
        if (now - lastCheckpointWrite >= this.#host.checkpointIntervalMs) {
          await this.#writeCheckpoint();
          lastCheckpointWrite = now;
        }
        await this.#sleep(this.#host.pollIntervalMs);
        continue;
      }
      this.#readRecords = true;
      if (this.#gapAfter !== undefined) {
        this.#log.error({ lostAfter: this.#gapAfter, resumedAt: sequenceOf(records[0]), policy: 'skip' }, 'trimmed records skipped: the records after lostAfter and before resumedAt were never delivered');
        this.#gapAfter = undefined;
      }
      const newest = creationTimeOf(records[records.length - 1]);
      this.iteratorAgeMs = newest === undefined ? 0 : Math.max(0, now - newest);
      this.#host.count('records', this.shardId, records.length);

      const outcome = await this.#host.engine.process(records, {
        streamArn: this.#host.streamArn,
        shardId: this.shardId,
        alreadyDone: this.#doneAbove,
        signal: this.#abort.signal,
      });
      this.#host.count('delivered', this.shardId, outcome.counts.delivered);
      this.#host.count('deadLettered', this.shardId, outcome.counts['dead-lettered']);
      this.#advance(records, outcome.statuses, outcome.watermark);

      if (outcome.watermark < records.length) {
        // Some lane is blocked or unfinished: read again from the watermark after a pause that
        // grows while it stays blocked; what was done after it is skipped then.
        if (this.#abort.signal.aborted || this.#stopping) break;
        this.state = 'blocked';
        await this.#writeCheckpoint();
        lastCheckpointWrite = this.#host.clock.now();
        const pause = Math.min(this.#host.pollIntervalMs * 2 ** this.#blockedPauses++, 30_000);
        this.#log.warn({ watermark: outcome.watermark, records: records.length, pauseMs: pause }, 'page not all done; reading it again from the checkpoint');
        await this.#sleep(pause);
        if (this.#stopping) break;
        iterator = await this.#iterator(positionAfter(this.checkpoint));
        continue;
      }
      this.#blockedPauses = 0;
      iterator = page.nextIterator;
      if (this.#host.clock.now() - lastCheckpointWrite >= this.#host.checkpointIntervalMs) {
        await this.#writeCheckpoint();
        lastCheckpointWrite = this.#host.clock.now();
      }
    }

    if (!iterator && !this.#stopping && !this.#abort.signal.aborted && this.state !== 'failed') {
      // Every record of the closed shard is done: its children may start.
      this.checkpoint = 'SHARD_END';
      this.#doneAbove.clear();
      if (await this.#writeCheckpoint()) {
        this.state = 'ended';
        this.#log.info({}, 'shard ended; checkpoint at SHARD_END');
        this.#host.shardEnded(this.shardId);
      }
      return;
    }
    if (this.state === 'failed') return;
    this.state = 'draining';
    await this.#writeCheckpoint();
    this.state = 'stopped';
  }

  /** Moves the checkpoint to the watermark and remembers what is done above it. */
  #advance(records: readonly unknown[], statuses: readonly string[], watermark: number): void {
    if (watermark > 0) this.checkpoint = sequenceOf(records[watermark - 1]);
    const above = new Set<string>();
    const floor = isMark(this.checkpoint) ? undefined : BigInt(this.checkpoint);
    for (const seq of this.#doneAbove) if (floor === undefined || BigInt(seq) > floor) above.add(seq);
    for (let i = watermark + 1; i < records.length && above.size < this.#host.maxDoneAbove; i++) {
      if (isDone(statuses[i] as Parameters<typeof isDone>[0])) above.add(sequenceOf(records[i]));
    }
    this.#doneAbove = above;
  }

  async #writeCheckpoint(): Promise<boolean> {
    const doneAbove = [...this.#doneAbove];
    const key = { checkpoint: this.checkpoint, doneAbove: doneAbove.join(',') };
    if (this.#written && this.#written.checkpoint === key.checkpoint && this.#written.doneAbove === key.doneAbove) return true;
    let ok: boolean;
    try {
      ok = await this.#host.checkpoint(this.shardId, this.checkpoint, doneAbove);
    } catch (error) {
      this.#log.warn({ err: describeError(error), checkpoint: this.checkpoint }, 'checkpoint write failed; will try again');
      return false;
    }
    if (!ok) {
      this.#log.warn({ checkpoint: this.checkpoint }, 'lease lost; shard reader stops');
      this.abort();
      return false;
    }
    this.#written = key;
    this.lastCheckpointAt = this.#host.clock.now();
    return true;
  }

  /** The records past the checkpoint were trimmed (24 h retention): fail loudly, or skip and report the gap. */
  async #onTrimmed(): Promise<string | undefined> {
    if (this.checkpoint === 'TRIM_HORIZON' && !this.#readRecords) {
      // Nothing read yet, and the start is the oldest record kept anyway: a new TRIM_HORIZON
      // iterator skips nothing. (DynamoDB Local fails an iterator taken while the shard was empty
      // once the first record arrives, as its sequence numbers are shared by all tables.)
      this.#log.info({}, 'TRIM_HORIZON iterator refused before any record was read; taking a new one');
      await this.#sleep(this.#host.pollIntervalMs);
      return this.#stopping ? undefined : this.#iterator({ type: 'TRIM_HORIZON' });
    }
    this.#host.count('trimmedGaps', this.shardId);
    if (this.#host.onTrimmedData === 'fail') {
      this.state = 'failed';
      this.#log.error(
        { checkpoint: this.checkpoint, policy: 'fail' },
        "records after the checkpoint were trimmed from the stream (past its 24 h retention); reading of this shard stopped. Set onTrimmedData: 'skip' to continue from the oldest record kept, losing the gap",
      );
      this.stop();
      return undefined;
    }
    this.#gapAfter = this.checkpoint;
    this.#log.warn({ lostAfter: this.checkpoint, policy: 'skip' }, 'records after the checkpoint were trimmed from the stream; skipping to the oldest record kept');
    return this.#host.streams.getShardIterator(this.#host.streamArn, this.shardId, { type: 'TRIM_HORIZON' }, this.#stop.signal);
  }
}
