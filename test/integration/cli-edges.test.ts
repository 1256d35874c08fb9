import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import type { Server } from 'node:net';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSourceTable } from '../../src/local/tables.js';
import type { DeadLetter } from '../../src/ports.js';
import { toJson } from '../../src/serialize.js';
import { streamRecords } from '../../src/testing/index.js';
import type { LambdaStreamRecord } from '../../src/testing/index.js';
import { deleteTable, localClient, uniqueTableName } from '../support/dynamo.js';
import { lines, localEnv, ROOT, runMain, SRC_INDEX } from '../support/cli.js';
import type { CliResult } from '../support/cli.js';

// The command's rough edges, run in-process through `main` (no child process per case).

const env = localEnv;

/** Runs `dynamo-cdc ...argv` in this process and collects what it wrote. */
const cli = (argv: string[], cwd = ROOT) => runMain(argv, { cwd });

const letterOf = (record: LambdaStreamRecord, sink: string | undefined): DeadLetter => ({
  record,
  sink,
  error: { name: 'ThrottlingException', message: 'Rate exceeded', class: 'THROTTLING' },
  attempts: 6,
  firstAttemptAt: Date.UTC(2026, 0, 1, 12),
  lastAttemptAt: Date.UTC(2026, 0, 1, 12, 0, 20),
  position: { streamArn: record.eventSourceARN, shardId: undefined, sequenceNumber: record.dynamodb.SequenceNumber, eventID: record.eventID },
});

const readLines = async (path: string): Promise<Record<string, unknown>[]> => {
  try {
    return lines(await readFile(path, 'utf8')).map((l) => JSON.parse(l) as Record<string, unknown>);
  } catch {
    return [];
  }
};

let counter = 0;

/** A config whose app routes every change to file sinks `status` and `all` in `dir`; `failing` makes `all` throw. */
const writeConfig = async (dir: string, table: string, failing = false): Promise<string> => {
  const path = join(dir, `cdc-${process.pid}-${++counter}.config.ts`);
  const all = failing
    ? `{ name: 'all', limits: { maxRecords: 10, maxBytes: Infinity }, send: async () => { throw new Error('all is down'); } }`
    : `fileSink({ name: 'all', path: ${JSON.stringify(join(dir, 'all.ndjson'))} })`;
  await writeFile(
    path,
    `import { defineApp, fileDeadLetterQueue, fileSink, route } from ${JSON.stringify(SRC_INDEX)};

export default defineApp({
  table: ${JSON.stringify(table)},
  routes: [
    route('*').to(fileSink({ name: 'status', path: ${JSON.stringify(join(dir, 'status.ndjson'))} })),
    route('*').to(${all}),
  ],
  retry: { maxAttempts: 1, baseDelayMs: 1, maxDelayMs: 1 },
  deadLetter: fileDeadLetterQueue({ path: ${JSON.stringify(join(dir, 'dead-letters.ndjson'))} }),
});
`,
  );
  return path;
};

describe('dynamo-cdc command edges', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dynamo-cdc-edges-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reads a negative number as a value and rejects it with the range', async () => {
    const result = await cli(['run', '--lease-table', 'leases', '--poll-interval-ms', '-5']);

    expect(result.code).toBe(2);
    expect(lines(result.stderr)).toEqual(['dynamo-cdc: --poll-interval-ms must be an integer from 1 to 9007199254740991, got `-5`.']);
  });

  it('rejects an endpoint that is not a URL in one line naming the flag and the fix', async () => {
    const result = await cli(['status', '--lease-table', 'leases', '--endpoint', 'not-a-url']);

    expect(result.code).toBe(2);
    expect(lines(result.stderr)).toEqual(['dynamo-cdc: --endpoint must be a URL such as http://127.0.0.1:8000, got `not-a-url`.']);
  });

  it('parses the flags of demo like every other command: one line for a bad flag', async () => {
    const [bogus, bad, help] = await Promise.all([cli(['demo', '--bogus']), cli(['demo', '--users', '-1']), cli(['demo', '--help'])]);

    expect(bogus.code).toBe(2);
    expect(lines(bogus.stderr)).toEqual(['dynamo-cdc: unknown flag --bogus for `dynamo-cdc demo`. Run `dynamo-cdc demo --help` for its flags.']);
    expect(bad.code).toBe(2);
    expect(lines(bad.stderr)).toEqual(['dynamo-cdc: --users must be an integer from 1 to 10000, got `-1`.']);
    expect(help.code).toBe(0);
    for (const flag of ['--users', '--tasks-per-user', '--batch-size', '--out', '--help']) expect(help.stdout).toContain(flag);
  });

  it('npm run demo (src/cli/demo.ts run as a script) goes through the same parser: one line for a bad flag', async () => {
    // A child process: the script's own entry point is what is tested.
    const result = await new Promise<Pick<CliResult, 'code' | 'stdout' | 'stderr'>>((resolve) => {
      execFile(process.execPath, ['--import', 'tsx', 'src/cli/demo.ts', '--bogus'], { cwd: ROOT, env: env(), timeout: 20_000 }, (error, stdout, stderr) => {
        resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr });
      });
    });

    expect(result.code, result.stderr).toBe(2);
    expect(lines(result.stderr)).toEqual(['dynamo-cdc: unknown flag --bogus for `dynamo-cdc demo`. Run `dynamo-cdc demo --help` for its flags.']);
  });

  it('run takes --checkpoint-interval-ms, and its help lists every accepted log level', async () => {
    const [bad, help] = await Promise.all([cli(['run', '--lease-table', 'leases', '--checkpoint-interval-ms', 'soon']), cli(['run', '--help'])]);

    expect(bad.code).toBe(2);
    expect(lines(bad.stderr)).toEqual(['dynamo-cdc: --checkpoint-interval-ms must be an integer from 1 to 9007199254740991, got `soon`.']);
    expect(help.stdout).toContain('--checkpoint-interval-ms');
    const logLevel = help.stdout.slice(help.stdout.indexOf('--log-level'));
    for (const level of ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']) expect(logLevel).toContain(level);
  });

  describe('dlq redrive from a file', () => {
    let letters: DeadLetter[];

    beforeAll(() => {
      const records = streamRecords({ table: 'TaskApp' });
      letters = [
        letterOf(records.insert({ PK: 'USER#1', SK: 'TASK#1', Status: 'OPEN' }), 'status'),
        letterOf(records.insert({ PK: 'USER#2', SK: 'TASK#1', Status: 'OPEN' }), 'gone'),
        letterOf(records.insert({ PK: 'USER#3', SK: 'TASK#1', Status: 'OPEN' }), 'all'),
      ];
    });

    const writeLetters = async (work: string): Promise<string> => {
      const file = join(work, 'dead-letters-in.ndjson');
      await writeFile(file, letters.map((l) => `${toJson(l)}\n`).join(''));
      return file;
    };

    it('--dry-run exits 1 and names the letter that would fail', async () => {
      const work = await mkdtemp(join(dir, 'dry-'));
      const file = await writeLetters(work);
      const config = await writeConfig(work, 'TaskApp');

      const result = await cli(['dlq', 'redrive', '--file', file, '--config', config, '--dry-run']);

      expect(result.code).toBe(1);
      expect(lines(result.stdout).at(-1)).toBe('dry run: 2 of 3 letters would be sent; nothing was sent');
      expect(lines(result.stderr)).toEqual([
        `dynamo-cdc: 1 of 3 letters would fail: ${letters[1]?.position.eventID} (line 2, sink gone). Fix the cause before the redrive`,
      ]);
      expect(await readLines(join(work, 'status.ndjson'))).toEqual([]);
    });

    it('records the letters it delivered, so a re-run sends nothing twice', async () => {
      const work = await mkdtemp(join(dir, 'again-'));
      const file = await writeLetters(work);
      const failing = await writeConfig(work, 'TaskApp', true);

      // First run: `status` delivers, `gone` is not in the routes, `all` is down.
      const first = await cli(['dlq', 'redrive', '--file', file, '--config', failing]);
      expect(first.code).toBe(1);
      expect(lines(first.stdout), first.stderr).toEqual([`redrove 1 of 3 letters from ${file}; 2 failed`]);

      // Second run with `all` back: only the letter for `all` goes out; `status` is not sent again.
      const fixed = await writeConfig(work, 'TaskApp');
      const second = await cli(['dlq', 'redrive', '--file', file, '--config', fixed]);
      expect(second.code).toBe(1);
      expect(lines(second.stdout)).toEqual([`redrove 1 of 2 letters from ${file}; 1 failed (1 redriven before, skipped)`]);

      const status = await readLines(join(work, 'status.ndjson'));
      const all = await readLines(join(work, 'all.ndjson'));
      expect(status.map((e) => e['eventID'])).toEqual([letters[0]?.position.eventID]);
      expect(all.map((e) => e['eventID'])).toEqual([letters[2]?.position.eventID]);
      // The input file itself is unchanged.
      expect(lines(await readFile(file, 'utf8'))).toHaveLength(3);

      // A third run sends nothing; only the letter whose sink is gone is left.
      const third = await cli(['dlq', 'redrive', '--file', file, '--config', fixed]);
      expect(lines(third.stdout)).toEqual([`redrove 0 of 1 letters from ${file}; 1 failed (2 redriven before, skipped)`]);
      expect(await readLines(join(work, 'status.ndjson'))).toHaveLength(1);
      expect(await readLines(join(work, 'all.ndjson'))).toHaveLength(1);
    });
  });

  describe('run', () => {
    let client: DynamoDBClient;
    let server: Server;
    const tables: string[] = [];
    const saved = { id: process.env['AWS_ACCESS_KEY_ID'], secret: process.env['AWS_SECRET_ACCESS_KEY'] };

    beforeAll(async () => {
      // The worker's SDK clients read credentials from the process, not from the command's io.env.
      process.env['AWS_ACCESS_KEY_ID'] ??= 'x';
      process.env['AWS_SECRET_ACCESS_KEY'] ??= 'x';
      client = localClient();
      server = createServer();
      await new Promise<void>((resolve) => server.listen(0, resolve));
    });
    afterAll(async () => {
      for (const t of tables) await deleteTable(client, t);
      client.destroy();
      await new Promise((resolve) => server.close(resolve));
      if (saved.id === undefined) delete process.env['AWS_ACCESS_KEY_ID'];
      if (saved.secret === undefined) delete process.env['AWS_SECRET_ACCESS_KEY'];
    });

    it('a busy metrics port is one line that names the flag to change', async () => {
      const source = uniqueTableName('edges-src');
      await createSourceTable(client, source);
      tables.push(source);
      const leaseTable = uniqueTableName('edges-leases');
      tables.push(leaseTable);
      const work = await mkdtemp(join(dir, 'run-'));
      const config = await writeConfig(work, source);
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;

      const result = await cli(['run', '--config', config, '--lease-table', leaseTable, '--create-lease-table', '--metrics-port', String(port), '--log-level', 'silent']);

      expect(result.code).toBe(1);
      expect(lines(result.stderr)).toEqual([
        `dynamo-cdc: metrics port ${port} is already in use on this host (another worker?). Pass --metrics-port <n> for another port, --metrics-port 0 for a free one, or --metrics-port false for none`,
      ]);
    }, 30_000);
  });
});
