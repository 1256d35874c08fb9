export { createStreamHandler } from './handler.js';
export type { BatchResponse, LambdaContextLike, StreamEventLike, StreamHandlerOptions } from './handler.js';
