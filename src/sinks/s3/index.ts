export { readClaimCheck, s3ClaimCheck } from './claim-check.js';
export type { S3ClaimCheckOptions, S3ClaimCheckStore } from './claim-check.js';
