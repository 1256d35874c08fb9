import { randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { gzipSync } from 'node:zlib';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeRecord, defineApp, Engine, route, systemClock } from '../../src/index.js';
import type { ChangeEvent } from '../../src/index.js';
import { localS3ClientConfig, startS3rver } from '../../src/local/s3rver.js';
import type { LocalS3 } from '../../src/local/s3rver.js';
import { replay } from '../../src/replay/index.js';
import { defaultLine } from '../../src/sinks/s3/export-layout.js';
import { s3Export } from '../../src/sinks/s3/index.js';
import { MemorySink, silentLogger, streamRecords } from '../../src/testing/index.js';
import type { LambdaStreamRecord } from '../../src/testing/index.js';
import { lines, ROOT, runMain, SRC_INDEX } from '../support/cli.js';

const BUCKET = 'cdc-replay';
const S3_INDEX = pathToFileURL(join(ROOT, 'src/sinks/s3/index.ts')).href;
const S3RVER = pathToFileURL(join(ROOT, 'src/local/s3rver.ts')).href;

/** Two minutes either side of 01:00 on 2026-01-01, so the export has two hour partitions. */
const START = Date.UTC(2026, 0, 1, 0, 58);
const HOUR_1 = Date.UTC(2026, 0, 1, 1);

const task = (n: number, version: number) => ({ PK: `USER#${n}`, SK: `TASK#${n}`, Status: version % 2 ? 'OPEN' : 'DONE', Version: version });

/**
 * Changes to three items read from two shards (a split at 00:59:30: the parent's records before,
 * the child's after), written to the export by the engine in several deliveries, one of them twice
 * with another grouping (as a Lambda re-delivery would).
 */
const history = () => {
  const records = streamRecords({ startTime: START });
  const stream: { record: LambdaStreamRecord; shard: string }[] = [];
  let version = 0;
  // One change a second for 4 minutes: items 1..3 in turn.
  for (let t = 0; t < 240; t++) {
    const n = (t % 3) + 1;
    version++;
    const record = version <= 3 ? records.insert(task(n, version)) : records.modify(task(n, version - 3), task(n, version));
    const time = record.dynamodb.ApproximateCreationDateTime * 1000;
    stream.push({ record, shard: time < Date.UTC(2026, 0, 1, 0, 59, 30) ? 'shardId-parent' : 'shardId-child' });
  }
  return stream;
};

describe('replay from the S3 export (s3rver)', () => {
  let s3: LocalS3;
  let dir: string;

  beforeAll(async () => {
    s3 = await startS3rver({ buckets: [BUCKET, 'cdc-copy'] });
    dir = await mkdtemp(join(tmpdir(), 'dynamo-cdc-replay-s3-'));
  });

  afterAll(async () => {
    await s3?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  /** Writes the history to a fresh prefix with a real s3Export sink; the app to replay it with. */
  const exported = async (bucket = BUCKET, prefix = `replay-${randomUUID()}/`) => {
    const lake = s3Export({ bucket, prefix, client: s3.client, rollover: { maxAgeMs: 0, maxRecords: 25 } });
    const writer = new Engine({ app: defineApp({ table: 'TaskApp', routes: [route('*').to(lake)] }), logger: silentLogger, clock: systemClock });
    const stream = history();
    for (const shard of ['shardId-parent', 'shardId-child']) {
      const records = stream.filter((s) => s.shard === shard).map((s) => s.record);
      for (let i = 0; i < records.length; i += 40) {
        const outcome = await writer.process(records.slice(i, i + 40), { shardId: shard });
        expect(outcome.watermark).toBe(Math.min(40, records.length - i));
      }
    }
    // A re-delivery of some parent records, cut differently: the same rows in other objects.
    await writer.process(stream.filter((s) => s.shard === 'shardId-parent').slice(5, 33).map((s) => s.record), { shardId: 'shardId-parent' });
    const search = new MemorySink({ name: 'search', maxRecords: 10 });
    const app = defineApp({ table: 'TaskApp', routes: [route('*').to(lake), route('*').to(search)] });
    const originals = stream.map((s) => decodeRecord(s.record, { shardId: s.shard }));
    return { prefix, lake, app, search, originals };
  };

  const put = (prefix: string, key: string, body: Buffer | string) => s3.client.send(new PutObjectCommand({ Bucket: BUCKET, Key: `${prefix}table=TaskApp/${key}`, Body: body }));
  const lineOf = (e: ChangeEvent) => JSON.parse(JSON.stringify(defaultLine(e))) as unknown;

  it('sends every record of the range once, in order per item, with the JSON the export had', async () => {
    const { app, search, originals } = await exported();
    const report = await replay({ app, sinks: ['search'], source: { type: 's3' }, from: '2026-01-01T00:58:00Z', to: '2026-01-01T01:03:00Z' });
    expect(report.problems).toEqual([]);
    expect(report.complete).toBe(true);
    expect(report.duplicates).toBe(28);
    expect(report.records).toBe(240);
    expect(report.bySink).toEqual({ search: { insert: 3, modify: 237 } });
    // Each item's versions arrive in order, across objects, hours and the shard split.
    for (const n of [1, 2, 3]) {
      const versions = search.delivered.filter((e) => e.key['PK'] === `USER#${n}`).map((e) => e.newImage?.['Version']);
      expect(versions).toEqual(originals.filter((e) => e.key['PK'] === `USER#${n}`).map((e) => e.newImage?.['Version']));
    }
    expect(search.delivered.map(lineOf)).toEqual(originals.map(lineOf));
  });

  it('sends only the records between --from and --to', async () => {
    const { app, search, originals } = await exported();
    const from = Date.UTC(2026, 0, 1, 0, 59, 50);
    const to = Date.UTC(2026, 0, 1, 1, 0, 10);
    const report = await replay({ app, sinks: ['search'], source: { type: 's3' }, from, to });
    const expected = originals.filter((e) => e.meta.approximateCreationTime >= from && e.meta.approximateCreationTime < to);
    expect(expected).toHaveLength(20);
    expect(search.delivered.map((e) => e.eventID)).toEqual(expected.map((e) => e.eventID));
    expect(report.complete).toBe(true);
  });

  it("reads a copy of the export in another bucket with an app that has no s3Export sink, under the export's default prefix", async () => {
    const { originals } = await exported('cdc-copy', 'cdc/');
    const search = new MemorySink({ name: 'search' });
    const app = defineApp({ table: 'TaskApp', routes: [route('*').to(search)] });
    const report = await replay({ app, sinks: ['search'], source: { type: 's3', bucket: 'cdc-copy', client: s3.client }, from: START });
    expect(report.complete).toBe(true);
    expect(search.delivered.map((e) => e.eventID)).toEqual(originals.map((e) => e.eventID));
  });

  it('a dry run reads and counts, and sends nothing', async () => {
    const { app, search } = await exported();
    const report = await replay({ app, routes: ['1'], dryRun: true, source: { type: 's3' }, from: START });
    expect(report.byRoute).toEqual({ 'routes[1] (* -> search)': { insert: 3, modify: 237 } });
    expect(search.attempts).toHaveLength(0);
  });

  it('stops before the hour of an unreadable object with fail, and sends the rest with skip; each is reported', async () => {
    const { prefix, app, search, lake, originals } = await exported();
    await put(prefix, 'dt=2026-01-01/hr=01/zz-bad-gzip.ndjson.gz', 'not gzip at all');
    await put(prefix, 'dt=2026-01-01/hr=01/zz-bad-json.ndjson.gz', gzipSync('{"eventID": \n'));
    await put(prefix, 'dt=2026-01-01/hr=01/zz-denied.ndjson.gz', gzipSync(''));
    // A client that is refused one object, as S3 refuses a missing s3:GetObject permission.
    const client = new S3Client(localS3ClientConfig(s3.endpoint));
    client.middlewareStack.add(
      (next, context) => async (args) => {
        if (context.commandName === 'GetObjectCommand' && String((args.input as { Key?: string }).Key).endsWith('zz-denied.ndjson.gz')) {
          throw Object.assign(new Error('Access Denied'), { name: 'AccessDenied', $fault: 'client', $metadata: { httpStatusCode: 403 } });
        }
        return next(args);
      },
      { step: 'initialize', name: 'deny' },
    );
    const source = { type: 's3' as const, bucket: lake.bucket, prefix, client };

    const failed = await replay({ app, sinks: ['search'], source, from: START });
    expect(failed.complete).toBe(false);
    expect(failed.unreadable.map((u) => [u.object.replace(/^.*\//, ''), u.reason.replace(/ \(.*$/, '')])).toEqual([
      ['zz-bad-gzip.ndjson.gz', 'not valid gzip'],
      ['zz-bad-json.ndjson.gz', 'line 1 is not JSON'],
      ['zz-denied.ndjson.gz', 'cannot get it'],
    ]);
    expect(failed.unreadable[2]?.reason).toBe('cannot get it (AccessDenied: Access Denied)');
    expect(failed.problems).toEqual([expect.stringMatching(/^stopped before the hour 2026-01-01T01:00:00.000Z \(it holds 3 unreadable objects\); nothing from it on was sent/)]);
    expect(search.delivered.every((e) => e.meta.approximateCreationTime < HOUR_1)).toBe(true);
    expect(search.delivered.map((e) => e.eventID)).toEqual(originals.filter((e) => e.meta.approximateCreationTime < HOUR_1).map((e) => e.eventID));

    search.delivered.length = 0;
    const skipped = await replay({ app, sinks: ['search'], source: { ...source, onUnreadable: 'skip' }, from: START });
    expect(skipped.complete).toBe(false);
    expect(skipped.unreadable).toHaveLength(3);
    expect(skipped.problems).toEqual(['3 export objects could not be read; their records were not sent']);
    expect(search.delivered).toHaveLength(240);
    client.destroy();
  });

  it('dynamo-cdc replay --source s3: counts, sends, and names each unreadable object in one line', async () => {
    const { prefix } = await exported();
    await put(prefix, 'dt=2026-01-01/hr=00/aa-bad.ndjson.gz', 'not gzip');
    const out = join(dir, 'all.ndjson');
    const config = join(dir, 's3.config.ts');
    await writeFile(
      config,
      `import { S3Client } from '@aws-sdk/client-s3';
import { defineApp, fileSink, route } from ${JSON.stringify(SRC_INDEX)};
import { s3Export } from ${JSON.stringify(S3_INDEX)};
import { localS3ClientConfig } from ${JSON.stringify(S3RVER)};
export default defineApp({ table: 'TaskApp', routes: [
  route('*').to(s3Export({ bucket: ${JSON.stringify(BUCKET)}, prefix: ${JSON.stringify(prefix)}, client: new S3Client(localS3ClientConfig(${JSON.stringify(s3.endpoint)})) })),
  route('*').to(fileSink({ name: 'all', path: ${JSON.stringify(out)} })),
] });
`,
    );
    const cli = async (argv: string[]) => {
      const result = await runMain(argv, { env: { PATH: process.env['PATH'] }, cwd: dir });
      return { ...result, errLines: lines(result.stderr) };
    };
    const dry = await cli(['replay', '-c', config, '--source', 's3', '--sink', 'all', '--from', '2026-01-01T00:58:00Z', '--to', '2026-01-01T01:03:00Z', '--dry-run']);
    expect(dry.stdout).toMatch(/^all\s+3\s+237\s+0\s+240$/m);
    expect(dry.errLines).toEqual([expect.stringMatching(/^dynamo-cdc: cannot read s3:\/\/cdc-replay\/.*aa-bad\.ndjson\.gz: not valid gzip/), 'dynamo-cdc: 1 export object could not be read']);
    expect(dry.code).toBe(1);

    const sent = await cli(['replay', '-c', config, '--source', 's3', '--sink', 'all', '--from', '2026-01-01T00:58:00Z', '--on-unreadable', 'skip']);
    expect(sent.code).toBe(1);
    expect(sent.stdout).toContain('sent: 240 delivered, 0 dead-lettered');
    expect((await readFile(out, 'utf8')).trim().split('\n')).toHaveLength(240);
    expect(sent.errLines).toHaveLength(2);

    const bad = await cli(['replay', '-c', config, '--source', 's3', '--sink', 'all', '--lease-table', 'x']);
    expect(bad.errLines).toEqual(['dynamo-cdc: --lease-table applies to --source stream only.']);
    expect(bad.code).toBe(2);

    const noBucket = await cli(['replay', '-c', config, '--source', 's3', '--sink', 'all', '--bucket', 'no-such-bucket', '--from', '2026-01-01T00:58:00Z']);
    expect(noBucket.errLines).toEqual([expect.stringMatching(/^dynamo-cdc: the export's bucket does not exist \(.*\)\. Check the s3Export sink's bucket in s3\.config\.ts, or pass --bucket$/)]);
    expect(noBucket.code).toBe(1);
  });
});
