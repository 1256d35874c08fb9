import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);

const eventIds = (text: string): string[] =>
  text
    .split('\n')
    .filter(Boolean)
    .map((line) => (JSON.parse(line) as { eventID: string }).eventID);

describe('npm run demo', () => {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it('runs the worker end to end on DynamoDB Local and s3rver and accounts for every change', async () => {
    // Prepare
    const out = await mkdtemp(join(tmpdir(), 'dynamo-cdc-demo-'));
    dirs.push(out);

    // Act: as a user would, in a child process, with a small workload.
    const { stdout, stderr } = await run(process.execPath, ['--import', 'tsx', 'src/cli/demo.ts', '--users', '2', '--tasks-per-user', '3', '--out', out], {
      timeout: 80_000,
      env: { ...process.env, LOG_LEVEL: 'error' },
    });

    // Assess: the last line is the machine-readable summary. Before dynamo-cdc: per user an earlier
    // user and one task, so 4 items, backfilled, and in the stream too. Then per user: a profile and
    // 3 tasks created, 6 status changes (1 stale writer refused), 1 delete and 1 expired task
    // deleted, so 12; plus the one item that breaks the Task schema: 4 + 25 changes.
    const last = JSON.parse(stdout.trim().split('\n').at(-1) as string) as Record<string, number | string>;
    expect(last).toEqual({ demo: 'ok', changes: 29, delivered: 28, deadLettered: 1, backfilled: 4 });
    expect(Number(last['delivered']) + Number(last['deadLettered'])).toBe(last['changes']);
    expect(stderr).toMatch(/summary/);
    expect(stderr).toMatch(/backfilling[\s\S]*backfill \w+: 4 items delivered[\s\S]*worker \w* ?started/);

    // Every delivered change and backfilled item is in the all-changes file ...
    const lines = (await readFile(join(out, 'changes.ndjson'), 'utf8')).split('\n').filter(Boolean).map((l) => JSON.parse(l) as { eventID: string; kind: string });
    const inFile = new Set(lines.map((l) => l.eventID));
    expect(inFile.size).toBe(32);
    expect(new Set(lines.filter((l) => l.kind === 'backfill').map((l) => l.eventID)).size).toBe(4);

    // ... and in the S3 export, downloaded under --out, in Hive partitions of gzip NDJSON.
    const exportRoot = join(out, 's3', 'taskapp-lake');
    const objects = (await readdir(exportRoot, { recursive: true })).filter((f) => f.endsWith('.ndjson.gz'));
    expect(objects.length).toBeGreaterThan(0);
    for (const key of objects) expect(key.split(/[\\/]/).slice(0, 4).join('/')).toMatch(/^cdc\/table=TaskApp\/dt=\d{4}-\d{2}-\d{2}\/hr=\d{2}$/);
    const inLake = new Set<string>();
    for (const key of objects) for (const id of eventIds(gunzipSync(await readFile(join(exportRoot, key))).toString('utf8'))) inLake.add(id);
    expect([...inLake].sort()).toEqual([...inFile].sort());

    // The item that breaks its schema is the one dead letter; status changes became domain events.
    const letters = (await readFile(join(out, 'dead-letters.ndjson'), 'utf8')).split('\n').filter(Boolean);
    expect(letters).toHaveLength(1);
    expect(JSON.parse(letters[0] as string)).toMatchObject({ error: { name: 'SchemaValidationError' }, record: { dynamodb: { Keys: { SK: { S: 'TASK#bad' } } } } });
    // A route with .on('modify') does not take backfill events.
    const statusEvents = new Set(eventIds(await readFile(join(out, 'task-status.ndjson'), 'utf8')));
    expect(statusEvents.size).toBe(12);
  }, 90_000);
});
