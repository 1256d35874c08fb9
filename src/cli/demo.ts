/**
 * `dynamo-cdc demo` (and `npm run demo`): the whole pipeline on this machine, no AWS account.
 *
 * DynamoDB Local and s3rver start in this process's care; the TaskApp table (users and their tasks,
 * from DynamoDB's getting-started lab) gets a stream of new and old images; a worker leases its
 * shard and routes typed events to an S3 data-lake export, NDJSON files and the console while a
 * realistic workload runs against the table. Once every change is delivered or dead-lettered the
 * worker stops gracefully, the outputs are read back and checked against the stream, and the last
 * line on stdout is machine-readable:
 *   {"demo":"ok","changes":N,"delivered":N,"deadLettered":N}
 *
 * Usage: npm run demo [-- --users N --tasks-per-user N --out DIR]
 *
 * The parts: demo/app.ts (the app a user would write), demo/workload.ts (the writes to the table),
 * demo/run.ts (the services, the worker and the progress), demo/report.ts (reading the outputs back).
 */
import { realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

export { DEMO_SPEC, demoCommand } from './demo/run.js';

const isEntryPoint = (): boolean => {
  const script = process.argv[1];
  if (!script) return false;
  try {
    return import.meta.url === pathToFileURL(realpathSync(script)).href;
  } catch {
    return false;
  }
};

// `npm run demo` runs this file: through `main`, so its flags and errors read as `dynamo-cdc demo`'s.
if (isEntryPoint()) process.exitCode = await (await import('./main.js')).main(['demo', ...process.argv.slice(2)]);
