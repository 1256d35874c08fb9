import { DynamoCdcError } from '../errors.js';

/**
 * A backfill ran longer than the stream's retention: the changes made at its start may be trimmed
 * before a worker reads them, so the hand-off is no longer gap-free. The backfill stops.
 */
export class BackfillRetentionError extends DynamoCdcError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, 'PERMANENT', options);
  }
}
