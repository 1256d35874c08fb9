/**
 * Invocations the Lambda filter saves on the demo's workload: runs `npm run demo`'s workload
 * against DynamoDB Local, reads the table's whole stream in Lambda's record shape, and counts the
 * records the compiled `FilterCriteria` lets through (evaluated as Lambda does) for the demo's app
 * and for the same app without its two `'*'` routes. Each record is also routed by the library
 * itself, to check that no record a route takes is filtered out.
 *
 *   npm run bench:lambda-filter [-- --users 4 --tasks-per-user 6]
 *
 * Last line: {"bench":"lambda-filter","records":N,"variants":{...}}
 */
import { parseArgs } from 'node:util';
import { S3Client } from '@aws-sdk/client-s3';
import { DynamoDBStreamsClient } from '@aws-sdk/client-dynamodb-streams';
import { Writable } from 'node:stream';
import { defineApp, Engine, systemClock } from '../src/index.js';
import type { App } from '../src/index.js';
import { buildApp, TABLE } from '../src/cli/demo/app.js';
import { runWorkload } from '../src/cli/demo/workload.js';
import type { Tally } from '../src/cli/demo/workload.js';
import { compileLambdaFilter, lambdaFilterCriteria } from '../src/lambda/index.js';
import { localClientConfig, startDynamoDbLocal } from '../src/local/dynamodb-local.js';
import { readWholeStream } from '../src/local/read-stream.js';
import { createSourceTable } from '../src/local/tables.js';
import { passesFilterCriteria, silentLogger } from '../src/testing/index.js';
import type { LambdaStreamRecord } from '../src/testing/index.js';
import { routesWant } from '../test/support/route-oracle.js';

const { values } = parseArgs({ options: { users: { type: 'string', default: '4' }, 'tasks-per-user': { type: 'string', default: '6' } } });
const size = { users: Number(values.users), tasks: Number(values['tasks-per-user']) };

const measure = async (name: string, app: App, records: readonly LambdaStreamRecord[]) => {
  const criteria = lambdaFilterCriteria(app);
  const engine = new Engine({ app, logger: silentLogger, clock: systemClock });
  let passed = 0;
  let wanted = 0;
  let lost = 0;
  for (const record of records) {
    const passes = passesFilterCriteria(criteria, record);
    const takes = await routesWant(app, record, engine);
    if (passes) passed++;
    if (takes) wanted++;
    if (takes && !passes) lost++;
  }
  if (lost > 0) throw new Error(`${name}: the filter dropped ${lost} record(s) a route takes`);
  return {
    name,
    routes: app.routes.map((r) => r.description),
    filters: criteria?.Filters.map((f) => f.Pattern) ?? [],
    widenings: compileLambdaFilter(app).widenings,
    passed,
    dropped: records.length - passed,
    wanted,
  };
};

const main = async () => {
  const local = await startDynamoDbLocal();
  try {
    const streamArn = await createSourceTable(local.client, TABLE);
    const tally: Tally = { changes: 0, writtenAt: [], conflicts: 0, expired: 0 };
    await runWorkload(local.client, size, tally, new AbortController().signal);
    const streams = new DynamoDBStreamsClient(localClientConfig(local.endpoint));
    const records = await readWholeStream(streams, streamArn, tally.changes);
    streams.destroy();

    const quiet = new Writable({ write: (_chunk, _encoding, done) => done() });
    const paths = { changes: '/dev/null', taskStatus: '/dev/null', deadLetters: '/dev/null', s3: '/dev/null' };
    const s3 = new S3Client({ region: 'us-east-1' });
    const demo = buildApp(paths, s3, quiet, () => {});
    const withoutStar = defineApp({ table: TABLE, routes: demo.routes.filter((r) => r.entity !== '*'), deadLetter: demo.deadLetter });
    const variants = [await measure("demo app (two '*' routes)", demo, records), await measure("demo app without its '*' routes", withoutStar, records)];
    s3.destroy();

    for (const v of variants) {
      console.error(`${v.name}: ${v.passed} of ${records.length} records reach the function, ${v.dropped} dropped (${((100 * v.dropped) / records.length).toFixed(1)}%); routes take ${v.wanted}`);
      for (const w of v.widenings) console.error(`  widened: ${w}`);
    }
    console.log(JSON.stringify({ bench: 'lambda-filter', users: size.users, tasksPerUser: size.tasks, records: records.length, variants }));
  } finally {
    await local.stop();
  }
};

await main();
