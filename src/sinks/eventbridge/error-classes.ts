import type { FailureClass } from '../../errors.js';

/**
 * How a failed PutEvents entry is handled, by its `ErrorCode`. AWS documents `InternalFailure` and
 * `ThrottlingException` as retryable and the rest of the listed codes as not; `ResourceNotFoundException`
 * means the bus does not exist. A code not listed here is TRANSIENT (see {@link classifyPutEventsError}).
 */
export const putEventsErrorClasses: ReadonlyMap<string, FailureClass> = new Map<string, FailureClass>([
  ['ThrottlingException', 'THROTTLING'],
  ['InternalFailure', 'TRANSIENT'],
  ['InternalException', 'TRANSIENT'],
  ['ServiceUnavailable', 'TRANSIENT'],
  ['MalformedDetail', 'PERMANENT'],
  ['InvalidArgument', 'PERMANENT'],
  ['ValidationException', 'PERMANENT'],
  ['AccessDeniedException', 'PERMANENT'],
  ['InvalidAccountIdException', 'PERMANENT'],
  ['RedactionFailure', 'PERMANENT'],
  ['NotAuthorizedForSourceException', 'PERMANENT'],
  ['NotAuthorizedForDetailTypeException', 'PERMANENT'],
  ['ResourceNotFoundException', 'PERMANENT'],
]);

/**
 * The class of a PutEvents entry's `ErrorCode`: from {@link putEventsErrorClasses}; an unlisted code
 * that speaks of throttling is THROTTLING, any other TRANSIENT, so it is retried a bounded number of
 * times and then dead-lettered rather than dropped.
 */
export const classifyPutEventsError = (code: string): FailureClass => putEventsErrorClasses.get(code) ?? (/throttl/i.test(code) ? 'THROTTLING' : 'TRANSIENT');
