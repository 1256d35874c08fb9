/**
 * `dynamo-cdc/dynamodb`: a sink that materialises change events into another DynamoDB table, each
 * write guarded by the change's stream position. `@aws-sdk/client-dynamodb` is a dependency of the
 * package (the worker and the progress store use it), so this subpath has no optional peer.
 */
export { dynamoDb } from './dynamo-db.js';
export { ItemTooLargeError, NotAttemptedError } from './errors.js';
export { attributeValueSize, DYNAMODB_MAX_ITEM_BYTES, itemSize } from './item-size.js';
export type { DynamoDbSink, DynamoDbSinkOptions, TombstoneTtl } from './types.js';
