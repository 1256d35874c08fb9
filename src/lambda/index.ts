export { createStreamHandler } from './handler.js';
export type { BatchResponse, LambdaContextLike, StreamEventLike, StreamHandlerOptions } from './handler.js';
export { dynamoDbProgressStore, progressTableDefinition } from './dynamodb-progress-store.js';
export type { DynamoDbProgressStoreOptions } from './dynamodb-progress-store.js';
export { compileLambdaFilter, lambdaFilterCriteria } from './filter-criteria.js';
export type { CompiledLambdaFilter, FilterCriteria, LambdaFilterOptions } from './filter-criteria.js';
