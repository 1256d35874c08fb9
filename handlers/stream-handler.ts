/**
 * Composition root of the Lambda shape: builds the logger and the progress store, and exports the
 * handler for the DynamoDB stream event source mapping (with ReportBatchItemFailures on).
 *
 * Environment:
 * - PROGRESS_TABLE: the progress table for re-delivery dedupe (see progressTableDefinition);
 *   without it, re-delivered records are sent again (still at least once, in order).
 * - LOG_LEVEL: trace, debug, info (default), warn, error, fatal or silent. LOG_IMAGES=true lets item images into the log.
 *
 * Metrics go to stdout as CloudWatch Embedded Metric Format lines (namespace DynamoCdc, see docs/metrics.md).
 */
import app from '../dynamo-cdc.config.js';
import { createJsonLogger, emfObserver } from '../src/index.js';
import { createStreamHandler, dynamoDbProgressStore } from '../src/lambda/index.js';

const logger = createJsonLogger({ logImages: process.env['LOG_IMAGES'] === 'true' });
const progressTable = process.env['PROGRESS_TABLE'];

export const handler = createStreamHandler(app, {
  logger,
  observer: emfObserver(),
  ...(progressTable ? { progressStore: dynamoDbProgressStore({ tableName: progressTable }) } : {}),
});
