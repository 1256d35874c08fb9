/**
 * `dynamo-cdc/s3`: the S3 data-lake export and the S3 claim-check store. Kept out of the main
 * entry point so that apps that do not use them do not load `@aws-sdk/client-s3` and
 * `@aws-sdk/lib-storage`, optional peer dependencies: when one is missing, importing this subpath
 * fails with one line naming it.
 */
import { importWithPeers } from '../../optional-peer.js';

const [claimCheck, exporter] = await importWithPeers('dynamo-cdc/s3', ['@aws-sdk/client-s3', '@aws-sdk/lib-storage'], () =>
  Promise.all([import('./claim-check.js'), import('./export.js')]),
);

export const { readClaimCheck, s3ClaimCheck } = claimCheck;
export type { S3ClaimCheckOptions, S3ClaimCheckStore } from './claim-check.js';
export const { s3Export } = exporter;
export type { S3ExportOptions, S3ExportRollover, S3ExportSink } from './export-types.js';
