import { ConfigError } from '../../errors.js';
import { backfillVersion } from '../../events.js';
import type { ChangeEvent } from '../../events.js';

/** The largest external version OpenSearch accepts: a Java long, 2^63 - 1. */
export const MAX_EXTERNAL_VERSION = 9_223_372_036_854_775_807n;

/**
 * The default external version of a change: when DynamoDB made it, in epoch milliseconds
 * (`meta.approximateCreationTime`; DynamoDB gives it to the second, so it is a multiple of 1000).
 * Written with `version_type: external_gte`, so OpenSearch keeps a document unless the write
 * carries the same or a later time. See docs/opensearch.md for why not the sequence number.
 */
export const changeVersion = (event: ChangeEvent<unknown>): number =>
  event.kind === 'backfill' ? backfillVersion(event.meta.backfill.startedAt) : event.meta.approximateCreationTime;

export { backfillVersion };

const describe = (value: unknown): string => (typeof value === 'bigint' ? `${value}n (bigint)` : `\`${String(value)}\` (${value === null ? 'null' : typeof value})`);

/**
 * The version as the digits that go into the bulk action line. Throws a PERMANENT
 * {@link ConfigError} naming `openSearch.version` for anything OpenSearch would not take as an
 * external version, or that would lose digits on the way (a number beyond 2^53).
 */
export const versionDigits = (value: unknown, eventID: string): string => {
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return String(value);
  if (typeof value === 'bigint' && value >= 0n && value <= MAX_EXTERNAL_VERSION) return value.toString();
  throw new ConfigError(
    'openSearch.version',
    `returned ${describe(value)} for event ${eventID}; it must return an integer from 0 to 2^63 - 1 (a bigint above 2^53), that never decreases for later changes of the same item.`,
  );
};
