/**
 * `dynamo-cdc/eventbridge`: the EventBridge sink. Kept out of the main entry point so that apps
 * that do not use it do not load `@aws-sdk/client-eventbridge`, an optional peer dependency: when
 * it is missing, importing this subpath fails with one line naming it.
 */
import { importWithPeers } from '../../optional-peer.js';

const implementation = await importWithPeers('dynamo-cdc/eventbridge', ['@aws-sdk/client-eventbridge'], () => import('./event-bridge.js'));

export const { eventBridge } = implementation;
export { putEventsEntrySize } from './entry-size.js';
export { classifyPutEventsError, putEventsErrorClasses } from './error-classes.js';
export type { EventBridgeSink, EventBridgeSinkOptions } from './types.js';
