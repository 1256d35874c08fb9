/**
 * `dynamo-cdc/opensearch`: the OpenSearch sink. Kept out of the main entry point so that apps that
 * do not use it do not load `@opensearch-project/opensearch`, an optional peer dependency: when it
 * is missing, importing this subpath fails with one line naming it.
 */
import { importWithPeers } from '../../optional-peer.js';

const implementation = await importWithPeers('dynamo-cdc/opensearch', ['@opensearch-project/opensearch'], () => import('./open-search.js'));

export const { openSearch } = implementation;
export { keyDocumentId, MAX_DOCUMENT_ID_BYTES } from './document-id.js';
export { changeVersion, MAX_EXTERNAL_VERSION } from './version.js';
export { bulkItemErrorClasses, classifyBulkItem } from './item-result.js';
export type { BulkItemOutcome } from './item-result.js';
export { OpenSearchRequestError, OversizedDocumentError } from './errors.js';
export type { OpenSearchAwsCredentials, OpenSearchAwsOptions, OpenSearchSink, OpenSearchSinkOptions } from './types.js';
