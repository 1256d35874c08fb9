export { createStreamHandler } from './handler.js';
export type { BatchResponse, LambdaContextLike, StreamEventLike, StreamHandlerOptions } from './handler.js';
export { dynamoDbProgressStore, progressTableDefinition } from './dynamodb-progress-store.js';
export type { DynamoDbProgressStoreOptions } from './dynamodb-progress-store.js';
