import type { Engine } from '../core/engine.js';
import { isDone } from '../core/engine.js';
import { describeError } from '../errors.js';
import { compareSequenceNumbers, sequenceOf } from '../events.js';
import type { RawStreamRecord } from '../events.js';
import type { BatchOutcome } from '../core/engine.js';
import type { Clock, Logger } from '../ports.js';
import { isPastCheckpoint, isStartMark, pinnedAt, resumePosition } from './checkpoints.js';
import type { IteratorPosition, Lease, RecordsPage, StreamsApi } from './ports.js';

/**
 * What a reader is doing; `status()` reports it per shard. `fenced`: a batch is read but its
 * delivery waits for the lease to be renewed (time fencing).
 */
export type ReaderState = 'starting' | 'reading' | 'idle' | 'fenced' | 'blocked' | 'draining' | 'ended' | 'failed' | 'stopped';

/** What the reader needs from its worker. */
export interface ReaderHost {
  readonly engine: Engine;
  readonly streams: StreamsApi;
  readonly logger: Logger;
  readonly clock: Clock;
  readonly streamArn: string;
  readonly pollIntervalMs: number;
  readonly maxRecordsPerRead: number;
  /** Most records one engine call carries: consecutive GetRecords pages are gathered up to it. */
  readonly batchSize: number;
  /** Longest wait, from the first record of a batch, for more pages before the batch is delivered. */
  readonly batchWindowMs: number;
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

/** Shortest gap between two GetRecords calls of a shard (start to start): the service allows 5 a second per shard. */
const MIN_READ_GAP_MS = 200;
/** Longest pause between two looks at a lease that is not fresh. */
const FENCE_CHECK_MS = 100;

const DECIMAL = /^[0-9]+$/;

const errorName = (error: unknown) => (error as { name?: string } | undefined)?.name;

/** Records gathered for one engine call, and the iterator after them (`undefined`: the shard's end). */
interface Batch {
  readonly records: unknown[];
  readonly iterator: string | undefined;
}

/** One GetRecords answer, or its failure, and when it came back. */
type Read = { readonly page: RecordsPage; readonly at: number } | { readonly error: unknown; readonly at: number };

/** The GetRecords call made while the batch before it is in the engine (read-ahead). */
interface ReadAhead {
  readonly iterator: string;
  readonly limit: number;
  /** Never rejects. */
  readonly result: Promise<Read>;
  /** Aborts the call (or its wait for the 200 ms gap) when the page is dropped. */
  readonly drop: AbortController;
}

/**
 * Reads one leased shard. Its life is a loop of three steps, each a method:
 * - `#gather`: GetRecords from the iterator, page after page, until `batchSize` records,
 *   `batchWindowMs` after the first record, or the shard's end. A full page is followed by the
 *   next read 200 ms later at the earliest (5 calls a second per shard); a short or empty one (the
 *   reader caught up) by the next after `pollIntervalMs`, or when the window ends if sooner. An
 *   empty read with nothing gathered waits `pollIntervalMs` (`idle`).
 * - `#awaitFreshLease`: no delivery starts while the host says the lease is not fresh (`fenced`).
 * - `#deliver`: one engine call on the batch; its contiguous watermark becomes the checkpoint.
 *   A batch that is not all done (`blocked`) is read again from the checkpoint after a pause that
 *   grows while it stays blocked, skipping what was done (`doneAbove`), and delivered as soon as
 *   the re-read reaches the end of the blocked batch, without waiting out the window again.
 *
 * Read-ahead: as a delivery starts, one GetRecords call from the iterator after the batch is made
 * (`#readAhead`), so the engine and the service work at once: 200 ms after the previous call at
 * the earliest when the batch's last page was full, `pollIntervalMs` after it when it was short
 * (the reader caught up: as after a short page while gathering). Its answer (page or failure) is held, never looked at, until the next `#gather`,
 * which takes it as its first read: order, pins, checkpoints and failure handling are those of a
 * read made then, against the checkpoint the delivery left. It is dropped, unread, when the batch
 * is blocked (the re-read starts at the checkpoint), and when the reader stops or is aborted (lease
 * lost, fenced); `finished` waits for it to settle. Every GetRecords call of a shard, read-ahead or
 * not, starts 200 ms after the previous one at the earliest.
 *
 * At most `batchSize` records plus one page of a shard are held (backpressure). The first record read from a
 * start mark (`LATEST`, `TRIM_HORIZON`) or after a trimmed gap pins the checkpoint to itself
 * (`AT_SEQUENCE_NUMBER:<seq>`, see checkpoints.ts); from `LATEST` that is written under the lease
 * before anything is delivered, as no later iterator could find those records again.
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
  /**
   * Per sequence number past the checkpoint and not done, the sinks that acknowledged the record,
   * so a re-read sends it only to the others. In memory only: a new owner re-sends to every sink.
   */
  #acknowledged = new Map<string, ReadonlySet<string>>();
  #written: { checkpoint: string; doneAbove: string } | undefined;
  #lastCheckpointWrite = 0;
  #lastGetRecordsAt = -Infinity;
  /** The read made during the current delivery, until the next gather takes it or it is dropped. */
  #readAhead: ReadAhead | undefined;
  /** True when the last page read was full: more is likely waiting, so the next read need not wait for the poll interval. */
  #lastPageFull = false;
  /** Stops reading new pages; the batch in delivery finishes. */
  readonly #stop = new AbortController();
  /** Aborts the batch in delivery (drain timeout, lease lost). */
  readonly #abort = new AbortController();
  #blockedPauses = 0;
  /** Set while re-reading a blocked batch: its last sequence number, where the re-read batch ends. */
  #rereadThrough: string | undefined;
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

  /** Stop reading; the batch in delivery is finished and checkpointed. */
  stop(): void {
    this.#stop.abort();
  }

  /** Abort the batch in delivery too: its unfinished records are left for the next owner. */
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

  /** Where the checkpoint resumes; only called while the shard is open, so never at SHARD_END. */
  get #resume(): IteratorPosition {
    return resumePosition(this.checkpoint) ?? { type: 'TRIM_HORIZON' };
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
    let iterator: string | undefined = await this.#iterator(this.#resume);
    this.#lastCheckpointWrite = this.#host.clock.now();
    while (!this.#stopping && iterator) {
      const batch = await this.#gather(iterator);
      if (!batch) break;
      iterator = batch.iterator;
      if (batch.records.length === 0) continue; // the shard's end, with nothing more to read
      if (!(await this.#awaitFreshLease())) break;
      if (iterator) this.#startReadAhead(iterator, Math.min(this.#host.maxRecordsPerRead, this.#host.batchSize), this.#lastPageFull ? MIN_READ_GAP_MS : this.#host.pollIntervalMs);
      const outcome = await this.#deliver(batch.records);
      if (outcome.watermark < batch.records.length) {
        // Some lane is blocked or unfinished: read again from the watermark after a pause that
        // grows while it stays blocked; what was done after it is skipped then.
        await this.#dropReadAhead();
        if (this.#abort.signal.aborted || this.#stopping) break;
        this.state = 'blocked';
        this.#rereadThrough = sequenceOf(batch.records[batch.records.length - 1]);
        await this.#writeCheckpoint();
        const pause = Math.min(this.#host.pollIntervalMs * 2 ** this.#blockedPauses++, 30_000);
        this.#log.warn({ watermark: outcome.watermark, records: batch.records.length, pauseMs: pause }, 'batch not all done; reading it again from the checkpoint');
        await this.#sleep(pause);
        if (this.#stopping) break;
        iterator = await this.#iterator(this.#resume);
        continue;
      }
      this.#blockedPauses = 0;
      this.#rereadThrough = undefined;
      this.state = 'reading';
      if (this.#host.clock.now() - this.#lastCheckpointWrite >= this.#host.checkpointIntervalMs) await this.#writeCheckpoint();
    }
    // Stopping, aborted or at the shard's end: a page read ahead is never delivered.
    await this.#dropReadAhead();

    if (!iterator && !this.#stopping && !this.#abort.signal.aborted && this.state !== 'failed') {
      // Every record of the closed shard is done: its children may start.
      this.checkpoint = 'SHARD_END';
      this.#doneAbove.clear();
      // Until SHARD_END is written the children are not read: a write given up on (its answer may
      // still come, accepted or refused) is written again, until it is or the lease is lost.
      if (await this.#writeFinalCheckpoint()) {
        this.state = 'ended';
        this.#log.info({}, 'shard ended; checkpoint at SHARD_END');
        this.#host.shardEnded(this.shardId);
      }
      return;
    }
    if (this.state === 'failed') return;
    this.state = 'draining';
    await this.#writeFinalCheckpoint();
    this.state = 'stopped';
  }

  /**
   * Writes the checkpoint, trying again after the poll interval until it is written, the lease is
   * lost, or the reader is aborted (lease dropped, or the drain timed out). A write that failed or
   * was given up on says nothing about the lease: giving up would leave it held with an older
   * checkpoint (for SHARD_END: with children nobody reads). True when written.
   */
  async #writeFinalCheckpoint(): Promise<boolean> {
    const aborted = this.#abort.signal;
    for (;;) {
      if (await this.#writeCheckpoint()) return true;
      if (aborted.aborted) return false;
      // The stop signal is already aborted when draining: wait on the abort signal instead.
      await this.#host.clock.sleep(this.#host.pollIntervalMs, aborted).catch(() => {});
      if (aborted.aborted) return false;
    }
  }

  /**
   * Reads pages from `from` into one batch (see the class). `undefined` when stopping, or when the
   * trimmed-data policy stopped the shard. A read that fails with records gathered delivers them
   * first; the next gather meets the failure again with an empty batch and handles it then
   * (an expired iterator is renewed from the checkpoint, which the delivery moved).
   */
  async #gather(from: string): Promise<Batch | undefined> {
    const { clock, batchSize, batchWindowMs } = this.#host;
    const records: unknown[] = [];
    let iterator = from;
    let firstAt = 0;
    for (;;) {
      const limit = Math.min(this.#host.maxRecordsPerRead, batchSize - records.length);
      if (this.state !== 'blocked') this.state = 'reading';
      const read = await this.#read(iterator, limit);
      if (this.#stopping) return undefined;
      this.#lastPageFull = 'page' in read && read.page.records.length >= limit;
      if ('error' in read) {
        if (records.length > 0) return { records, iterator };
        const next = await this.#afterReadFailure(read.error, iterator);
        if (next === undefined) return undefined;
        iterator = next;
        continue;
      }
      const { page } = read;
      // A page read ahead counts from when it came back: the window, and the poll after an empty one.
      const now = read.at;
      this.lastReadAt = now;
      const nextIterator = page.nextIterator;
      if (page.records.length === 0) {
        if (!nextIterator) return { records, iterator: undefined };
        iterator = nextIterator;
        if (records.length > 0) {
          // A re-read delivers what came back at once; a first read waits out the window.
          const left = this.#rereadThrough === undefined ? firstAt + batchWindowMs - clock.now() : 0;
          if (left <= 0) return { records, iterator };
          await this.#sleep(Math.min(this.#host.pollIntervalMs, left));
          continue;
        }
        this.iteratorAgeMs = 0;
        this.state = 'idle';
        if (clock.now() - this.#lastCheckpointWrite >= this.#host.checkpointIntervalMs) await this.#writeCheckpoint();
        await this.#sleep(now + this.#host.pollIntervalMs - clock.now());
        continue;
      }
      if (!(await this.#pin(page.records[0]))) return undefined;
      this.#readRecords = true;
      if (this.#gapAfter !== undefined) {
        this.#log.error({ lostAfter: this.#gapAfter, resumedAt: sequenceOf(page.records[0]), policy: 'skip' }, 'trimmed records skipped: the records after lostAfter and before resumedAt were never delivered');
        this.#gapAfter = undefined;
      }
      if (records.length === 0) firstAt = now;
      for (const record of page.records) records.push(record);
      const newest = creationTimeOf(page.records[page.records.length - 1]);
      this.iteratorAgeMs = newest === undefined ? 0 : Math.max(0, clock.now() - newest);
      this.#host.count('records', this.shardId, page.records.length);
      if (!nextIterator || records.length >= batchSize) return { records, iterator: nextIterator };
      iterator = nextIterator;
      if (this.#rereadThrough !== undefined) {
        if (compareSequenceNumbers(sequenceOf(records[records.length - 1]), this.#rereadThrough) >= 0) return { records, iterator };
        continue;
      }
      const left = firstAt + batchWindowMs - clock.now();
      if (left <= 0) return { records, iterator };
      // A short page means the reader caught up: look again after the poll interval, not at once.
      if (page.records.length < limit) await this.#sleep(Math.min(this.#host.pollIntervalMs, left));
    }
  }

  /**
   * One GetRecords call, 200 ms after the previous one at the earliest; the read made ahead
   * instead when it was made from `iterator` with the same limit (any other is dropped first).
   */
  async #read(iterator: string, limit: number): Promise<Read> {
    const ahead = this.#readAhead;
    if (ahead) {
      this.#readAhead = undefined;
      if (ahead.iterator === iterator && ahead.limit === limit) return ahead.result;
      ahead.drop.abort();
      await ahead.result;
    }
    return this.#getRecords(iterator, limit, this.#stop.signal);
  }

  async #getRecords(iterator: string, limit: number, signal: AbortSignal, gapMs = MIN_READ_GAP_MS): Promise<Read> {
    const { clock } = this.#host;
    try {
      const gap = this.#lastGetRecordsAt + Math.max(MIN_READ_GAP_MS, gapMs) - clock.now();
      if (gap > 0) await clock.sleep(gap, signal);
      signal.throwIfAborted();
      this.#lastGetRecordsAt = clock.now();
      const page = await this.#host.streams.getRecords(iterator, limit, signal);
      return { page, at: clock.now() };
    } catch (error) {
      return { error, at: clock.now() };
    }
  }

  /**
   * Starts the read of the page after the batch going into the engine (see the class), `gapMs`
   * after the previous call: 200 ms after a full page, the poll interval after a short one.
   */
  #startReadAhead(iterator: string, limit: number, gapMs: number): void {
    if (this.#stopping || this.#readAhead) return;
    const drop = new AbortController();
    // Stopping drops it too; the listener goes with the call, so none pile up on the stop signal.
    const onStop = () => drop.abort();
    this.#stop.signal.addEventListener('abort', onStop, { once: true });
    const result = this.#getRecords(iterator, limit, drop.signal, gapMs).finally(() => this.#stop.signal.removeEventListener('abort', onStop));
    this.#readAhead = { iterator, limit, drop, result };
  }

  /** Drops the page read ahead, unread, once its call has settled. */
  async #dropReadAhead(): Promise<void> {
    const ahead = this.#readAhead;
    if (!ahead) return;
    this.#readAhead = undefined;
    ahead.drop.abort();
    await ahead.result;
  }

  /** The iterator to read with after a failed GetRecords; `undefined` when stopping or the shard stopped. */
  async #afterReadFailure(error: unknown, iterator: string): Promise<string | undefined> {
    if (errorName(error) === 'ExpiredIteratorException') {
      this.#host.count('iteratorRenewals', this.shardId);
      this.#log.info({ checkpoint: this.checkpoint }, 'shard iterator expired; renewed from the checkpoint');
      return this.#iterator(this.#resume);
    }
    if (errorName(error) === 'TrimmedDataAccessException') return this.#onTrimmed();
    this.#log.warn({ err: describeError(error) }, 'GetRecords failed; retrying after the poll interval');
    await this.#sleep(this.#host.pollIntervalMs);
    return this.#stopping ? undefined : iterator;
  }

  /**
   * Pins the checkpoint to the first record read from a start mark or after a trimmed gap (see
   * the class); from `LATEST` the pin is written under the lease before anything is delivered,
   * trying again until it is written or the reader stops. False when stopping.
   */
  async #pin(first: unknown): Promise<boolean> {
    if (!isStartMark(this.checkpoint) && this.#gapAfter === undefined) return true;
    const seq = sequenceOf(first);
    // A record without a sequence number gives nothing to resume at; the engine dead-letters it.
    if (!DECIMAL.test(seq)) return true;
    const fromLatest = this.checkpoint === 'LATEST';
    this.checkpoint = pinnedAt(seq);
    if (!fromLatest) return true;
    while (!(await this.#writeCheckpoint())) {
      if (this.#stopping) return false;
      await this.#sleep(this.#host.pollIntervalMs);
    }
    return !this.#stopping;
  }

  /** True once the lease is fresh; while it is not, no delivery starts. False when stopping first. */
  async #awaitFreshLease(): Promise<boolean> {
    if (this.#host.leaseFresh(this.shardId)) return true;
    const was = this.state;
    this.state = 'fenced';
    this.#log.warn({}, 'lease not renewed recently; no delivery starts until it is (time fencing)');
    while (!this.#stopping) {
      await this.#sleep(Math.min(this.#host.pollIntervalMs, FENCE_CHECK_MS));
      if (this.#stopping) break;
      if (this.#host.leaseFresh(this.shardId)) {
        this.state = was;
        this.#log.info({}, 'lease fresh again; delivering');
        return true;
      }
    }
    return false;
  }

  /** One engine call on the batch; the watermark becomes the checkpoint (in memory). */
  async #deliver(records: readonly unknown[]): Promise<BatchOutcome> {
    const outcome = await this.#host.engine.process(records, {
      streamArn: this.#host.streamArn,
      shardId: this.shardId,
      alreadyDone: this.#doneAbove,
      acknowledged: this.#acknowledged,
      signal: this.#abort.signal,
    });
    this.#host.count('delivered', this.shardId, outcome.counts.delivered);
    this.#host.count('deadLettered', this.shardId, outcome.counts['dead-lettered']);
    this.#advance(records, outcome.statuses, outcome.watermark);
    for (const record of records) this.#acknowledged.delete(sequenceOf(record));
    for (const [index, sinks] of outcome.acknowledged) {
      const seq = sequenceOf(records[index]);
      if (seq !== '' && isPastCheckpoint(seq, this.checkpoint)) this.#acknowledged.set(seq, sinks);
    }
    return outcome;
  }

  /** Moves the checkpoint to the watermark and remembers what is done above it. */
  #advance(records: readonly unknown[], statuses: readonly string[], watermark: number): void {
    if (watermark > 0) this.checkpoint = sequenceOf(records[watermark - 1]);
    const above = new Set<string>();
    for (const seq of this.#doneAbove) if (isPastCheckpoint(seq, this.checkpoint)) above.add(seq);
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
    this.#lastCheckpointWrite = this.lastCheckpointAt;
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
    return this.#iterator({ type: 'TRIM_HORIZON' });
  }
}
