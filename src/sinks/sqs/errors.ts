import { classify, describeError, DynamoCdcError, OversizedEventError } from '../../errors.js';
import type { FailureClass } from '../../errors.js';

/**
 * A dead letter larger than its queue accepts, with no claim-check store to put it in. A dead letter
 * is the last copy of a record, so it is never truncated; the hand-off fails instead (PERMANENT).
 */
export class OversizedDeadLetterError extends OversizedEventError {
  constructor(queue: string, eventID: string, size: number, maxBytes: number) {
    super(queue, size, maxBytes);
    this.message = `Dead letter of record ${eventID || '(no eventID)'} is ${size} bytes, more than the ${maxBytes}-byte message limit of dead-letter queue ${queue}; it is not truncated. Set \`claimCheck: s3ClaimCheck({ bucket })\` on sqsDeadLetterQueue to store large letters in S3 and send a pointer instead`;
  }
}

/** One dead letter that SQS did not accept. */
export interface RejectedLetter {
  readonly eventID: string;
  readonly error: unknown;
}

const worstRetryable = (failures: readonly RejectedLetter[]): FailureClass => {
  const classes = failures.map((f) => classify(f.error));
  // Retrying helps unless every failure is one that retrying cannot fix.
  if (classes.every((c) => c === 'PERMANENT')) return 'PERMANENT';
  return classes.includes('THROTTLING') ? 'THROTTLING' : 'TRANSIENT';
};

/**
 * SQS did not accept every dead letter of a hand-off. The hand-off is retried whole; a letter that
 * was accepted and is sent again is a duplicate that carries the same `eventID`.
 */
export class DeadLetterRejectedError extends DynamoCdcError {
  /** The letters that failed, with SQS's reason for each. */
  readonly rejected: readonly RejectedLetter[];
  /** Letters in the hand-off. */
  readonly total: number;

  constructor(queue: string, total: number, rejected: readonly RejectedLetter[]) {
    const first = rejected[0];
    const more = rejected.length > 1 ? ` (+${rejected.length - 1} more)` : '';
    super(
      `${rejected.length} of ${total} dead letters were not accepted by ${queue}; first: record ${first?.eventID || '(no eventID)'}, ${describeError(first?.error).name}: ${describeError(first?.error).message}${more}`,
      worstRetryable(rejected),
      { cause: first?.error },
    );
    this.rejected = rejected;
    this.total = total;
  }
}
