import type { FailureClass } from '../../errors.js';

/** Codes of a failed batch entry that mean "slow down", with or without the legacy `AWS.SimpleQueueService.` prefix. */
const THROTTLING_CODES: ReadonlySet<string> = new Set([
  'ThrottlingException',
  'Throttling',
  'RequestThrottled',
  'KmsThrottled',
  'KmsThrottlingException',
  'KMS.ThrottlingException',
]);

/**
 * How one failed `SendMessageBatch` entry is handled, from its `Code` and `SenderFault`: a throttle
 * code is THROTTLING whoever's fault it is; otherwise a sender fault (a message SQS will never
 * accept as it is) is PERMANENT and anything else TRANSIENT.
 *
 * @example
 * sqsEntryFailureClass('InvalidParameterValue', true) // 'PERMANENT'
 * sqsEntryFailureClass('KmsThrottled', true)          // 'THROTTLING'
 * sqsEntryFailureClass('InternalError', false)        // 'TRANSIENT'
 */
export const sqsEntryFailureClass = (code: string | undefined, senderFault: boolean | undefined): FailureClass => {
  const bare = (code ?? '').replace(/^AWS\.SimpleQueueService\./, '');
  if (THROTTLING_CODES.has(bare) || /throttl/i.test(bare)) return 'THROTTLING';
  return senderFault === true ? 'PERMANENT' : 'TRANSIENT';
};
