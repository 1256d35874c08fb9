/**
 * Amazon SQS: a sink that sends one message per event with `SendMessageBatch`, and a dead-letter
 * queue that sends one message per dead letter. Exposed as `dynamo-cdc/sqs`; it needs
 * `@aws-sdk/client-sqs`, an optional peer dependency: when it is missing, importing this subpath
 * fails with one line naming it.
 */
import { importWithPeers } from '../../optional-peer.js';

const [sink, deadLetterQueue] = await importWithPeers('dynamo-cdc/sqs', ['@aws-sdk/client-sqs'], () =>
  Promise.all([import('./sqs-sink.js'), import('./sqs-dead-letter-queue.js')]),
);

export const { sqs } = sink;
export type { SqsSink, SqsSinkOptions } from './sqs-sink.js';
export const { sqsDeadLetterQueue } = deadLetterQueue;
export type { ClaimCheckedDeadLetter, SqsDeadLetterQueue, SqsDeadLetterQueueOptions } from './sqs-dead-letter-queue.js';
export { sqsEntryFailureClass } from './entry-failure-class.js';
export { toSqsId } from './message.js';
export { DeadLetterRejectedError, OversizedDeadLetterError } from './errors.js';
export type { RejectedLetter } from './errors.js';
export { SQS_MAX_BATCH_ENTRIES, SQS_MAX_DELAY_SECONDS, SQS_MAX_MESSAGE_BYTES, SQS_MIN_MESSAGE_BYTES } from './constants.js';
