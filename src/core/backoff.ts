import type { FailureClass } from '../errors.js';
import type { RetryOptions } from '../app.js';

/**
 * Delay before attempt `attempt + 1`: exponential backoff with full jitter, a random pause in
 * [0, min(maxDelay, base * 2^(attempt - 1))]. Full jitter spreads retries of many lanes that failed
 * together, so they do not come back as one burst.
 */
export const backoffDelay = (attempt: number, failure: FailureClass, retry: Required<RetryOptions>, random: () => number): number => {
  const base = failure === 'THROTTLING' ? Math.max(retry.throttlingBaseDelayMs, retry.baseDelayMs) : retry.baseDelayMs;
  const ceiling = Math.min(retry.maxDelayMs, base * 2 ** Math.min(attempt - 1, 30));
  return Math.floor(random() * ceiling);
};
