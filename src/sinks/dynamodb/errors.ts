import { DynamoCdcError } from '../../errors.js';
import { DYNAMODB_MAX_ITEM_BYTES } from './item-size.js';

/** A target item larger than DynamoDB's 400 KB item limit: no write can store it, so it is PERMANENT. */
export class ItemTooLargeError extends DynamoCdcError {
  /** The item's size as DynamoDB counts it (names and values). */
  readonly size: number;

  constructor(sink: string, tableName: string, eventID: string, size: number) {
    super(
      `The item that event ${eventID || '(no eventID)'} makes for table ${tableName} is ${size} bytes, more than DynamoDB's 400 KB item limit (${DYNAMODB_MAX_ITEM_BYTES} bytes, names and values); sink ${sink} cannot write it. Keep less of the item with the sink's \`item\` option`,
      'PERMANENT',
    );
    this.size = size;
  }
}

/**
 * A write the sink did not attempt because an earlier change of the same target item in the same
 * request failed: writing it first would only be undone or refused later. TRANSIENT: the engine
 * sends it again once the earlier one is settled.
 */
export class NotAttemptedError extends DynamoCdcError {
  constructor(sink: string) {
    super(`Sink ${sink} did not write this change: an earlier change of the same item in the same request failed`, 'TRANSIENT');
  }
}
