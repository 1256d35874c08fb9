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

const HIGHEST_SEQUENCE_NUMBER = '9'.repeat(SEQUENCE_NUMBER_DIGITS);

/**
 * The highest sequence number a record mentions, its key included: it knows nothing past that. A
 * `blind` record reaches every later one: it voids what older records know.
 */
export const highestOf = (progress: Progress): string => {
  if (progress.blind) return HIGHEST_SEQUENCE_NUMBER;
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

const mentionsAny = (progress: Progress, batch: ReadonlySet<string>): boolean => {
  if (batch.has(progress.sequenceNumber)) return true;
  for (const s of progress.done) if (batch.has(s)) return true;
  for (const s of progress.acknowledged.keys()) if (batch.has(s)) return true;
  return false;
};

/**
 * The one loaded record that speaks for this batch: the newest (highest key) that mentions one of
 * its records, unless a newer `blind` record voids it. A record mentions every record of the
 * batch that wrote it, and any later batch of the same shard starts at one of them or past them
 * all, so mentioning tells this shard's records from other shards' (sequence numbers are unique in
 * a stream). Only the newest counts, not the union: a newer record carries what the older ones
 * knew, unless the invocation that wrote it could not read them and sent again, unknowingly,
 * records done before. Then an older record's "done" is stale: skipping a change on it could put
 * the item's older change, just sent again, last at the sink.
 */
export const latestFor = (loaded: readonly Progress[], batch: ReadonlySet<string>): Progress | undefined => {
  const newestFirst = [...loaded].sort((a, b) => compareSequenceNumbers(b.sequenceNumber, a.sequenceNumber));
  for (const progress of newestFirst) {
    if (mentionsAny(progress, batch)) return progress;
    if (progress.blind) return undefined;
  }
  return undefined;
};

/**
 * What the record that speaks for a batch says about it, for the engine: the records done, and
 * the sinks that acknowledged each record not done.
 */
export const knownAbout = (latest: Progress, batch: ReadonlySet<string>): { alreadyDone: Set<string>; acknowledged: Map<string, ReadonlySet<string>> } => {
  const alreadyDone = new Set<string>();
  const acknowledged = new Map<string, ReadonlySet<string>>();
  for (const s of latest.done) if (batch.has(s)) alreadyDone.add(s);
  for (const [s, sinks] of latest.acknowledged) if (sinks.size > 0 && batch.has(s) && !alreadyDone.has(s)) acknowledged.set(s, sinks);
  return { alreadyDone, acknowledged };
};

/** What one batch got done: its sequence numbers by index, whether each is done, and the sinks that acknowledged each record not done. */
export interface BatchProgress {
  readonly streamArn: string;
  /** By index; `''` for a record without a usable sequence number. */
  readonly sequenceNumbers: readonly string[];
  readonly done: (index: number) => boolean;
  readonly acknowledged: ReadonlyMap<number, ReadonlySet<string>>;
  /** True when the store could not be read: the batch may have sent done records again. */
  readonly blind: boolean;
}

/**
 * The record a batch leaves, keyed at its first record: its own progress (every record of it:
 * done, or not done with the sinks that acknowledged it, maybe none) merged with what the record
 * that spoke for it knew at or after that first record (a retry may have been shorter than what
 * an earlier batch got done). It stays bounded by the largest batch (10,000 records): a shard's
 * knowledge reaches at most one batch past the batch's first record, and other shards' records
 * are never copied in.
 */
export const nextProgress = (batch: BatchProgress, latest: Progress | undefined): Progress | undefined => {
  let first: string | undefined;
  for (const s of batch.sequenceNumbers) if (s !== '' && (first === undefined || !atLeast(s, first))) first = s;
  if (first === undefined) return undefined;
  const done = new Set<string>();
  const acknowledged = new Map<string, Set<string>>();
  if (latest) {
    for (const s of latest.done) if (atLeast(s, first)) done.add(s);
    for (const [s, sinks] of latest.acknowledged) if (atLeast(s, first)) acknowledged.set(s, new Set(sinks));
  }
  batch.sequenceNumbers.forEach((s, i) => {
    if (s === '') return;
    if (batch.done(i)) {
      done.add(s);
      return;
    }
    const set = acknowledged.get(s) ?? new Set<string>();
    for (const sink of batch.acknowledged.get(i) ?? []) set.add(sink);
    acknowledged.set(s, set);
  });
  for (const s of done) acknowledged.delete(s);
  return { streamArn: batch.streamArn, sequenceNumber: first, done, acknowledged, ...(batch.blind ? { blind: true } : {}) };
};
