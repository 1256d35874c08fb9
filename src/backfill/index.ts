/**
 * `dynamo-cdc/backfill`: send a table's current items through the app's routes as `backfill`
 * events, resumably, handing off to the stream with no gap. See docs/backfill.md.
 */
export { backfill } from './backfill.js';
export type { BackfillEstimate, BackfillOptions, BackfillProgress, BackfillResult } from './backfill.js';
export { BackfillRetentionError } from './errors.js';
export { backfillEventId, backfillRecord } from './records.js';
export type { BackfillRecordContext, ScannedItem } from './records.js';
export { BACKFILL_KEY_PREFIX } from './state-store.js';
export type { BackfillState, BackfillStatus, SegmentState } from './state-store.js';
