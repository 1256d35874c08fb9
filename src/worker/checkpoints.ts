import { compareSequenceNumbers } from '../events.js';
import type { IteratorPosition } from './ports.js';

/**
 * A lease's `checkpoint` is one of:
 * - a sequence number `S`: every record up to and including `S` is done; reading resumes after it;
 * - `AT_SEQUENCE_NUMBER:S`: nothing from `S` on is known done (bar `doneAbove`), and nothing
 *   before `S` is to be read; reading resumes at `S`. A reader that started at `LATEST` or
 *   `TRIM_HORIZON`, or skipped trimmed records, pins its position this way to the first record it
 *   read, because the record before it has no sequence number the reader knows (and the service
 *   rejects made-up ones);
 * - `TRIM_HORIZON`, `LATEST`: nothing read yet; reading starts at the oldest record kept, or at
 *   the records written after the iterator is taken;
 * - `SHARD_END`: every record of the closed shard is done.
 */
export const AT_SEQUENCE_PREFIX = 'AT_SEQUENCE_NUMBER:';

/** The checkpoint that resumes at the record `sequenceNumber`. */
export const pinnedAt = (sequenceNumber: string): string => `${AT_SEQUENCE_PREFIX}${sequenceNumber}`;

/** A start mark: the reader has no sequence number yet. */
export const isStartMark = (checkpoint: string): checkpoint is 'TRIM_HORIZON' | 'LATEST' => checkpoint === 'TRIM_HORIZON' || checkpoint === 'LATEST';

/** Where reading resumes from a checkpoint; `undefined` for `SHARD_END`. */
export const resumePosition = (checkpoint: string): IteratorPosition | undefined => {
  if (checkpoint === 'SHARD_END') return undefined;
  if (isStartMark(checkpoint)) return { type: checkpoint };
  if (checkpoint.startsWith(AT_SEQUENCE_PREFIX)) return { type: 'AT_SEQUENCE_NUMBER', sequenceNumber: checkpoint.slice(AT_SEQUENCE_PREFIX.length) };
  return { type: 'AFTER_SEQUENCE_NUMBER', sequenceNumber: checkpoint };
};

/** True when the record `sequenceNumber` is not covered by the checkpoint: it may still need work. */
export const isPastCheckpoint = (sequenceNumber: string, checkpoint: string): boolean => {
  const position = resumePosition(checkpoint);
  if (position === undefined) return false;
  if (!('sequenceNumber' in position)) return true;
  const order = compareSequenceNumbers(sequenceNumber, position.sequenceNumber);
  return position.type === 'AT_SEQUENCE_NUMBER' ? order >= 0 : order > 0;
};
