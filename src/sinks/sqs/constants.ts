/** Largest message SQS accepts, and the largest `SendMessageBatch` request (the sum of its messages): 1 MiB. */
export const SQS_MAX_MESSAGE_BYTES = 1_048_576;

/** Smallest `MaximumMessageSize` a queue can be configured with. */
export const SQS_MIN_MESSAGE_BYTES = 1_024;

/** Entries one `SendMessageBatch` request may carry. */
export const SQS_MAX_BATCH_ENTRIES = 10;

/** Longest per-message delay SQS allows (15 minutes). */
export const SQS_MAX_DELAY_SECONDS = 900;
