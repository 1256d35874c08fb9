import { compareSequenceNumbers } from '../events.js';
import type { Progress, ProgressKey } from '../ports.js';

/** The longest sequence number DynamoDB Streams hands out; stored keys are padded to it. */
export const SEQUENCE_NUMBER_DIGITS = 40;

const CANONICAL = new RegExp(`^(0|[1-9][0-9]{0,${SEQUENCE_NUMBER_DIGITS - 1}})$`);

/** True for a sequence number a progress record can hold: a canonical decimal of at most 40 digits. */
export const isTrackable = (sequenceNumber: string): boolean => CANONICAL.test(sequenceNumber);

const DECIMAL = /^[0-9]+$/;

/**
 * The canonical form of a record's sequence number (leading zeros dropped: DynamoDB Local pads
 * them to 21 digits, DynamoDB does not), or `''` when it has none a progress record can hold.
 */
export const canonicalSequenceNumber = (sequenceNumber: string): string => {
  if (!DECIMAL.test(sequenceNumber)) return '';
  const canonical = sequenceNumber.replace(/^0+(?=.)/, '');
  return isTrackable(canonical) ? canonical : '';
};

/**
 * Left-pads to 40 digits, so that stored keys sort as the numbers they are: unpadded, `'9'` would
 * sort after `'10'` and a look-up across a digit-length boundary would miss its record.
 */
export const padSequenceNumber = (sequenceNumber: string): string => sequenceNumber.padStart(SEQUENCE_NUMBER_DIGITS, '0');

const atLeast = (a: string, b: string): boolean => compareSequenceNumbers(a, b) >= 0;
const max = (a: string, b: string): string => (atLeast(a, b) ? a : b);

/** The highest sequence number a record mentions, its key included: it knows nothing past that. */
export const highestOf = (progress: Progress): string => {
  let high = progress.sequenceNumber;
  for (const s of progress.done) high = max(high, s);
  for (const s of progress.acknowledged.keys()) high = max(high, s);
  return high;
};

/** True when a record holds a done record or an acknowledgement: one without is not worth a write. */
export const knowsSomething = (progress: Progress): boolean => progress.done.size > 0 || [...progress.acknowledged.values()].some((sinks) => sinks.size > 0);

/** How many sequence numbers a record holds: the measure of its size. */
export const sizeOf = (progress: Progress): number => progress.done.size + progress.acknowledged.size;

/**
 * True when `progress` may know about records at or after `position`: keyed at or before it and
 * mentioning something at or after it. What {@link ProgressStore.load} returns.
 */
export const mayKnowAbout = (position: ProgressKey, progress: Progress, highest = highestOf(progress)): boolean =>
  progress.streamArn === position.streamArn && atLeast(position.sequenceNumber, progress.sequenceNumber) && atLeast(highest, position.sequenceNumber);

const addAll = (to: Map<string, Set<string>>, seq: string, sinks: Iterable<string>): void => {
  const set = to.get(seq) ?? new Set<string>();
  for (const sink of sinks) set.add(sink);
  to.set(seq, set);
};

/**
 * What the loaded records say about one batch, for the engine: the records done, and the sinks
 * that acknowledged each record not done. Records of other shards or parallel batches are
 * harmless here: their sequence numbers are not in this batch.
 */
export const knownAbout = (loaded: readonly Progress[], batch: ReadonlySet<string>): { alreadyDone: Set<string>; acknowledged: Map<string, Set<string>> } => {
  const alreadyDone = new Set<string>();
  const acknowledged = new Map<string, Set<string>>();
  for (const progress of loaded) {
    for (const s of progress.done) if (batch.has(s)) alreadyDone.add(s);
    for (const [s, sinks] of progress.acknowledged) if (sinks.size > 0 && batch.has(s)) addAll(acknowledged, s, sinks);
  }
  for (const s of alreadyDone) acknowledged.delete(s);
  return { alreadyDone, acknowledged };
};

/** What one batch got done: its sequence numbers by index, whether each is done, and the sinks that acknowledged each record not done. */
export interface BatchProgress {
  readonly streamArn: string;
  /** By index; `''` for a record without a usable sequence number. */
  readonly sequenceNumbers: readonly string[];
  readonly done: (index: number) => boolean;
  readonly acknowledged: ReadonlyMap<number, ReadonlySet<string>>;
}

/**
 * The record a partly failed batch leaves, keyed at the batch's first record: the batch's own
 * progress (every record of it: done, or not done with the sinks that acknowledged it, maybe none)
 * merged with what the loaded records knew at or after that first record (a retry may have been
 * shorter than what an earlier batch got done).
 *
 * Only loaded records that mention one of this batch's records are carried over. Those are this
 * shard's: a record mentions every record of the batch that wrote it, and any later batch of the
 * shard starts at one of them or past them all. Their knowledge reaches at most one batch ahead, so
 * a record stays bounded by the largest batch (10,000 records) however many retries pass. Another
 * shard's record stays where it is; copying it along would make records grow with every shard
 * that fails at the same time.
 */
export const nextProgress = (batch: BatchProgress, loaded: readonly Progress[]): Progress | undefined => {
  const inBatch = new Set(batch.sequenceNumbers.filter(isTrackable));
  let first: string | undefined;
  for (const s of inBatch) if (first === undefined || !atLeast(s, first)) first = s;
  if (first === undefined) return undefined;
  const done = new Set<string>();
  const acknowledged = new Map<string, Set<string>>();
  for (const progress of loaded) {
    if (!mentionsAny(progress, inBatch)) continue;
    for (const s of progress.done) if (atLeast(s, first)) done.add(s);
    for (const [s, sinks] of progress.acknowledged) if (atLeast(s, first)) addAll(acknowledged, s, sinks);
  }
  batch.sequenceNumbers.forEach((s, i) => {
    if (!isTrackable(s)) return;
    if (batch.done(i)) done.add(s);
    else addAll(acknowledged, s, batch.acknowledged.get(i) ?? []);
  });
  for (const s of done) acknowledged.delete(s);
  return { streamArn: batch.streamArn, sequenceNumber: first, done, acknowledged };
};

const mentionsAny = (progress: Progress, batch: ReadonlySet<string>): boolean => {
  if (batch.has(progress.sequenceNumber)) return true;
  for (const s of progress.done) if (batch.has(s)) return true;
  for (const s of progress.acknowledged.keys()) if (batch.has(s)) return true;
  return false;
};

interface Remembered {
  readonly progress: Progress;
  readonly highest: string;
  readonly size: number;
}

/**
 * Progress records kept in process memory, at most `capacity` sequence numbers in all, the
 * oldest written dropped first. Lives as long as the Lambda container (lost on a cold start), so
 * a warm container avoids re-sends even without a store, or when the store failed.
 */
export class ProgressMemory {
  readonly #capacity: number;
  /** Insertion order is write order: a re-write moves a record to the end. */
  readonly #records = new Map<string, Remembered>();
  #size = 0;

  constructor(capacity: number) {
    this.#capacity = capacity;
  }

  /** Every remembered record that may know about records at or after `position`, newest key first. */
  load(position: ProgressKey): Progress[] {
    const found: Remembered[] = [];
    for (const r of this.#records.values()) if (mayKnowAbout(position, r.progress, r.highest)) found.push(r);
    return found.sort((a, b) => compareSequenceNumbers(b.progress.sequenceNumber, a.progress.sequenceNumber)).map((r) => r.progress);
  }

  save(progress: Progress): void {
    const id = `${progress.streamArn}\n${progress.sequenceNumber}`;
    const previous = this.#records.get(id);
    if (previous) {
      this.#records.delete(id);
      this.#size -= previous.size;
    }
    const size = sizeOf(progress);
    if (size > this.#capacity) return;
    this.#records.set(id, { progress, highest: highestOf(progress), size });
    this.#size += size;
    for (const [oldest, r] of this.#records) {
      if (this.#size <= this.#capacity) break;
      this.#records.delete(oldest);
      this.#size -= r.size;
    }
  }
}
