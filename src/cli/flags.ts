import type { FlagSpec } from './args.js';

/** Flags several commands share, so their help reads the same everywhere. */
export const CONFIG_FLAG: FlagSpec = {
  name: 'config',
  type: 'string',
  short: 'c',
  value: '<file>',
  default: 'dynamo-cdc.config.ts, then .mts, .js, .mjs',
  help: 'Configuration file whose default export is defineApp(...). TypeScript or JavaScript; relative to the working directory.',
};

export const STREAM_ARN_FLAG: FlagSpec = {
  name: 'stream-arn',
  type: 'string',
  value: '<arn>',
  env: 'STREAM_ARN',
  help: "The stream to read. Without it, the config's table's latest stream (DescribeTable's LatestStreamArn).",
};

export const LEASE_TABLE_FLAG: FlagSpec = {
  name: 'lease-table',
  type: 'string',
  value: '<name>',
  env: 'LEASE_TABLE',
  help: 'DynamoDB table holding the shard leases and checkpoints (one per stream). Required.',
};

export const JSON_FLAG: FlagSpec = { name: 'json', type: 'boolean', help: 'Print JSON for scripts instead of a table.' };
