/**
 * `dynamo-cdc/s3`: the S3 data-lake export and the S3 claim-check store. Kept out of the main
 * entry point so that apps that do not use them do not load `@aws-sdk/client-s3`.
 */
export { readClaimCheck, s3ClaimCheck } from './claim-check.js';
export type { S3ClaimCheckOptions, S3ClaimCheckStore } from './claim-check.js';
export { s3Export } from './export.js';
export type { S3ExportOptions, S3ExportRollover, S3ExportSink } from './export-types.js';
