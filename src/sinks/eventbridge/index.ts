/**
 * `dynamo-cdc/eventbridge`: the EventBridge sink. Kept out of the main entry point so that apps
 * that do not use it do not load `@aws-sdk/client-eventbridge`.
 */
export { eventBridge } from './event-bridge.js';
export { putEventsEntrySize } from './entry-size.js';
export { classifyPutEventsError, putEventsErrorClasses } from './error-classes.js';
export type { EventBridgeSink, EventBridgeSinkOptions } from './types.js';
