/**
 * Lambda cold start benchmark. Prints one JSON object as its last line:
 *   {"bench":"coldstart","bundleBytes":N,"bundleVsPowertools":R,"initMs":N,"initVsPowertools":R}
 *
 * Two handlers that put each changed item on an EventBridge bus are bundled as the CDK's
 * NodejsFunction does (esbuild, minified, platform node, ESM, target node20, every dependency
 * bundled in, the AWS SDK included):
 * - ours: `createStreamHandler` with a one-route app and the `eventBridge` sink;
 * - the reference: the usual hand-written handler, Powertools' `BatchProcessor` +
 *   `processPartialResponse` (DynamoDB Streams) calling `PutEvents` through `@aws-sdk/client-eventbridge`.
 *
 * Cold init time is from the start of a fresh Node process (`performance.now()` counts from it) to
 * the result of its first invocation with one record: importing the bundle, building the clients
 * and one PutEvents call to a local HTTP server answering as EventBridge does. The median of RUNS (BENCH_RUNS, default 31)
 * runs each, interleaved so that load on the machine falls on both alike. Ratios are ours over
 * the reference's.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { build } from 'esbuild';
import { streamRecords } from '../src/testing/index.js';

const RUNS = Number(process.env['BENCH_RUNS'] ?? 31);
const repo = resolve(import.meta.dirname, '..');
const src = (path: string) => JSON.stringify(join(repo, 'src', path));

const oursEntry = `
import { createStreamHandler } from ${src('lambda/index.ts')};
import { defineApp, route } from ${src('index.ts')};
import { eventBridge } from ${src('sinks/eventbridge/index.ts')};

const app = defineApp({ table: 'TaskApp', routes: [route('*').to(eventBridge({ busName: 'bench-bus' }))] });
export const handler = createStreamHandler(app);
`;

const powertoolsEntry = `
import { BatchProcessor, EventType, processPartialResponse } from '@aws-lambda-powertools/batch';
import { EventBridgeClient, PutEventsCommand } from '@aws-sdk/client-eventbridge';
import { unmarshall } from '@aws-sdk/util-dynamodb';

const processor = new BatchProcessor(EventType.DynamoDBStreams);
const client = new EventBridgeClient({});

const recordHandler = async (record) => {
  const image = record.dynamodb?.NewImage ? unmarshall(record.dynamodb.NewImage) : undefined;
  const detail = { eventID: record.eventID, eventName: record.eventName, keys: unmarshall(record.dynamodb.Keys), newImage: image };
  const result = await client.send(new PutEventsCommand({
    Entries: [{ EventBusName: 'bench-bus', Source: 'dynamo-cdc.TaskApp', DetailType: 'TaskApp.' + record.eventName, Detail: JSON.stringify(detail) }],
  }));
  if (result.FailedEntryCount) throw new Error('PutEvents failed: ' + JSON.stringify(result.Entries));
};

export const handler = async (event, context) => processPartialResponse(event, recordHandler, processor, { context });
`;

const runner = (bundle: string) => `
const { handler } = await import(${JSON.stringify(bundle)});
const event = JSON.parse(process.env.BENCH_EVENT);
const context = { awsRequestId: 'bench', getRemainingTimeInMillis: () => 60_000 };
const result = await handler(event, context);
const at = performance.now();
process.stdout.write('\\nCOLDSTART ' + JSON.stringify({ at, result }) + '\\n');
`;

const median = (values: readonly number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

const round = (n: number, digits = 2) => Math.round(n * 10 ** digits) / 10 ** digits;

const main = async () => {
  const dir = mkdtempSync(join(tmpdir(), 'dynamo-cdc-coldstart-'));
  let puts = 0;
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      puts += 1;
      res.writeHead(200, { 'content-type': 'application/x-amz-json-1.1' });
      res.end('{"FailedEntryCount":0,"Entries":[{"EventId":"1"}]}');
    });
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  try {
    const bundle = async (name: string, entry: string) => {
      const entryFile = join(dir, `${name}-entry.mjs`);
      writeFileSync(entryFile, entry);
      const outfile = join(dir, `${name}.mjs`);
      await build({
        entryPoints: [entryFile],
        outfile,
        bundle: true,
        minify: true,
        platform: 'node',
        format: 'esm',
        target: 'node20',
        // The bundle's CommonJS dependencies need require(); the CDK adds the same banner for ESM.
        banner: { js: "import { createRequire as __cdcCreateRequire } from 'node:module'; const require = __cdcCreateRequire(import.meta.url);" },
        nodePaths: [join(repo, 'node_modules')],
        logLevel: 'error',
      });
      const runnerFile = join(dir, `${name}-run.mjs`);
      writeFileSync(runnerFile, runner(outfile));
      return { name, bytes: statSync(outfile).size, runnerFile };
    };
    const ours = await bundle('ours', oursEntry);
    const theirs = await bundle('powertools', powertoolsEntry);

    const event = JSON.stringify({ Records: [streamRecords().insert({ PK: 'USER#1', SK: 'TASK#1', Status: 'OPEN', Version: 1 })] });
    const endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const env = {
      PATH: process.env['PATH'] ?? '',
      AWS_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: 'bench',
      AWS_SECRET_ACCESS_KEY: 'bench',
      AWS_ENDPOINT_URL: endpoint,
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
      LOG_LEVEL: 'warn',
      BENCH_EVENT: event,
    };

    const once = (runnerFile: string) =>
      new Promise<number>((done, fail) => {
        const child = spawn(process.execPath, [runnerFile], { env, stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        let err = '';
        child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
        child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
        child.on('error', fail);
        child.on('close', (code) => {
          const line = out.split('\n').find((l) => l.startsWith('COLDSTART '));
          if (code !== 0 || !line) return fail(new Error(`${runnerFile} exited ${code}: ${err || out}`));
          const { at, result } = JSON.parse(line.slice('COLDSTART '.length)) as { at: number; result: { batchItemFailures: unknown[] } };
          if (result.batchItemFailures.length !== 0) return fail(new Error(`${runnerFile}: the record failed: ${out}`));
          done(at);
        });
      });

    const times = { ours: [] as number[], powertools: [] as number[] };
    // One unmeasured run each warms the file system cache.
    await once(ours.runnerFile);
    await once(theirs.runnerFile);
    const putsBefore = puts;
    for (let i = 0; i < RUNS; i++) {
      const pair = i % 2 ? [theirs, ours] : [ours, theirs];
      for (const side of pair) times[side.name as keyof typeof times].push(await once(side.runnerFile));
    }
    if (puts - putsBefore !== 2 * RUNS) throw new Error(`expected ${2 * RUNS} PutEvents calls, got ${puts - putsBefore}`);

    const oursMs = median(times.ours);
    const theirsMs = median(times.powertools);
    console.log(`bundle: ours ${ours.bytes} B, Powertools reference ${theirs.bytes} B`);
    console.log(`cold init (median of ${RUNS}): ours ${round(oursMs, 1)} ms, Powertools reference ${round(theirsMs, 1)} ms`);
    console.log(
      JSON.stringify({
        bench: 'coldstart',
        bundleBytes: ours.bytes,
        bundleVsPowertools: round(ours.bytes / theirs.bytes),
        initMs: round(oursMs, 1),
        initVsPowertools: round(oursMs / theirsMs),
      }),
    );
  } finally {
    server.close();
    rmSync(dir, { recursive: true, force: true });
  }
};

await main();
