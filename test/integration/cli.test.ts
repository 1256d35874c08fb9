import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { PutItemCommand } from '@aws-sdk/client-dynamodb';
import { DescribeStreamCommand, DynamoDBStreamsClient } from '@aws-sdk/client-dynamodb-streams';
import {
  ChangeMessageVisibilityBatchCommand,
  DeleteMessageBatchCommand,
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
  SQSClient,
} from '@aws-sdk/client-sqs';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { localClientConfig } from '../../src/local/dynamodb-local.js';
import type { DeadLetter } from '../../src/ports.js';
import { toJson } from '../../src/serialize.js';
import { streamRecords } from '../../src/testing/index.js';
import type { LambdaStreamRecord } from '../../src/testing/index.js';
import { dynamoDbLeaseStore } from '../../src/worker/index.js';
import { createLeaseTable, createSourceTable } from '../../src/local/tables.js';
import { deleteTable, localClient, uniqueTableName } from '../support/dynamo.js';
import { lines, ROOT, runBin, SRC_INDEX, userEnv } from '../support/cli.js';

/** Runs `node bin/dynamo-cdc.js ...args` from the repository root, as a user would. Never rejects. */
const cli = (args: readonly string[], env: NodeJS.ProcessEnv = userEnv()) => runBin(args, { env });

const readLines = async (path: string): Promise<Record<string, unknown>[]> => {
  try {
    return lines(await readFile(path, 'utf8')).map((l) => JSON.parse(l) as Record<string, unknown>);
  } catch {
    return [];
  }
};

/** A config file whose app routes every change to two file sinks, `status` and `all`, in `dir`. */
const writeConfig = async (dir: string, table: string): Promise<string> => {
  const path = join(dir, `cdc-${randomSuffix()}.config.ts`);
  await writeFile(
    path,
    `import { defineApp, fileDeadLetterQueue, fileSink, route } from ${JSON.stringify(SRC_INDEX)};

export default defineApp({
  table: ${JSON.stringify(table)},
  routes: [
    route('*').to(fileSink({ name: 'status', path: ${JSON.stringify(join(dir, 'status.ndjson'))} })),
    route('*').to(fileSink({ name: 'all', path: ${JSON.stringify(join(dir, 'all.ndjson'))} })),
  ],
  retry: { maxAttempts: 2, baseDelayMs: 10, maxDelayMs: 50 },
  deadLetter: fileDeadLetterQueue({ path: ${JSON.stringify(join(dir, 'dead-letters.ndjson'))} }),
});
`,
  );
  return path;
};

let counter = 0;
const randomSuffix = () => `${process.pid}-${++counter}`;

/** A dead letter as the engine writes it, for a realistic stream record. */
const letterOf = (record: LambdaStreamRecord, sink: string | undefined, attempts = 6): DeadLetter => ({
  record,
  sink,
  error: sink ? { name: 'ThrottlingException', message: 'Rate exceeded', class: 'THROTTLING' } : { name: 'SchemaValidationError', message: 'Item does not match', class: 'PERMANENT' },
  attempts,
  firstAttemptAt: Date.UTC(2026, 0, 1, 12),
  lastAttemptAt: Date.UTC(2026, 0, 1, 12, 0, 20),
  position: { streamArn: record.eventSourceARN, shardId: undefined, sequenceNumber: record.dynamodb.SequenceNumber, eventID: record.eventID },
});

/** A TCP port that nothing listens on. */
const closedPort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });

/** Polls `check` every 100 ms until it returns a value, or fails after `ms`. */
const eventually = async <T>(what: string, ms: number, check: () => Promise<T | undefined>): Promise<T> => {
  const until = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
};

describe('dynamo-cdc command', () => {
  let client: DynamoDBClient;
  let dir: string;
  const tables: string[] = [];

  beforeAll(async () => {
    client = localClient();
    dir = await mkdtemp(join(tmpdir(), 'dynamo-cdc-cli-'));
  });

  afterAll(async () => {
    for (const t of tables) await deleteTable(client, t);
    client.destroy();
    await rm(dir, { recursive: true, force: true });
  });

  describe('help and usage', () => {
    it('prints help for the command and for every subcommand, exit 0, naming their flags', async () => {
      // Act
      const [top, run, status, dlq, list, redrive, viaHelp, demo] = await Promise.all([
        cli(['--help']),
        cli(['run', '--help']),
        cli(['status', '--help']),
        cli(['dlq', '--help']),
        cli(['dlq', 'list', '--help']),
        cli(['dlq', 'redrive', '--help']),
        cli(['help', 'status']),
        cli(['demo', '--help']),
      ]);

      // Assess
      for (const r of [top, run, status, dlq, list, redrive, viaHelp, demo]) expect(r.code, r.stderr).toBe(0);
      expect(top.stdout).toMatch(/run[\s\S]*status[\s\S]*dlq list[\s\S]*dlq redrive[\s\S]*demo/);
      expect(top.stdout).toContain('--verbose');
      for (const flag of ['--config', '--lease-table', '--stream-arn', '--create-lease-table', '--region', '--endpoint', '--poll-interval-ms', '--lease-duration-ms', '--initial-position', '--on-trimmed-data', '--metrics-port', 'LEASE_TABLE', 'STREAM_ARN', 'DYNAMODB_ENDPOINT', 'METRICS_PORT']) {
        expect(run.stdout).toContain(flag);
      }
      for (const flag of ['--lease-table', '--stream-arn', '--lag', '--json', 'updatedAt']) expect(status.stdout).toContain(flag);
      expect(dlq.stdout).toMatch(/dlq list[\s\S]*dlq redrive/);
      for (const flag of ['--file', '--queue-url', '--json']) expect(list.stdout).toContain(flag);
      for (const flag of ['--file', '--queue-url', '--config', '--dry-run', '--only-failed-sink', '--all-routes']) expect(redrive.stdout).toContain(flag);
      expect(viaHelp.stdout).toBe(status.stdout);
      expect(`${demo.stdout}${demo.stderr}`).toMatch(/demo/);
    });

    it('rejects an unknown flag with one line and exit code 2, without a stack trace', async () => {
      // Act
      const result = await cli(['status', '--lease-table', 'leases', '--bogus']);

      // Assess
      expect(result.code).toBe(2);
      expect(lines(result.stderr)).toEqual(['dynamo-cdc: unknown flag --bogus for `dynamo-cdc status`. Run `dynamo-cdc status --help` for its flags.']);
      expect(result.stdout).toBe('');
    });

    it('rejects a bad flag value and a missing required flag with exit code 2', async () => {
      // Act
      const [badNumber, missing, unknownCommand] = await Promise.all([
        cli(['run', '--lease-table', 'leases', '--poll-interval-ms', 'soon']),
        cli(['status']),
        cli(['statsu']),
      ]);

      // Assess
      expect(badNumber.code).toBe(2);
      expect(lines(badNumber.stderr)).toEqual(['dynamo-cdc: --poll-interval-ms must be an integer from 1 to 9007199254740991, got `soon`.']);
      expect(missing.code).toBe(2);
      expect(lines(missing.stderr)).toEqual(['dynamo-cdc: `dynamo-cdc status` needs --lease-table (or LEASE_TABLE). Run `dynamo-cdc status --help` for its flags.']);
      expect(unknownCommand.code).toBe(2);
      expect(lines(unknownCommand.stderr)[0]).toMatch(/^dynamo-cdc: unknown command `statsu`/);
    });

    it('says in one line that a config file is missing and how to fix it; --verbose adds the stack', async () => {
      // Act
      const [plain, verbose] = await Promise.all([
        cli(['run', '--config', 'missing.config.ts', '--lease-table', 'leases']),
        cli(['run', '--config', 'missing.config.ts', '--lease-table', 'leases', '--verbose']),
      ]);

      // Assess
      expect(plain.code).toBe(1);
      expect(lines(plain.stderr)).toEqual(['dynamo-cdc: config file not found: missing.config.ts. Create one whose default export is defineApp(...), or pass --config']);
      expect(verbose.code).toBe(1);
      expect(lines(verbose.stderr)[0]).toBe(lines(plain.stderr)[0]);
      expect(verbose.stderr).toMatch(/\n\s+at .*config\.ts/);
    });

    it('says which config file does not export an app', async () => {
      // Prepare
      const path = join(dir, 'not-an-app.config.ts');
      await writeFile(path, "export default { table: 'TaskApp', routes: [] };\n");

      // Act
      const result = await cli(['run', '--config', path, '--lease-table', 'leases']);

      // Assess
      expect(result.code).toBe(1);
      expect(lines(result.stderr)).toHaveLength(1);
      expect(result.stderr).toContain(`config file ${path} exports a plain object, not an app. Wrap it: \`export default defineApp({ ... })\``);
    });
  });

  describe('failures of the environment', () => {
    it('reports an unreachable endpoint in one line, fast', async () => {
      // Prepare
      const port = await closedPort();

      // Act
      const result = await cli(['status', '--lease-table', 'leases', '--stream-arn', streamRecords().streamArn, '--endpoint', `http://127.0.0.1:${port}`]);

      // Assess
      expect(result.code).toBe(1);
      expect(lines(result.stderr)).toEqual([
        `dynamo-cdc: cannot reach DynamoDB at http://127.0.0.1:${port}: ECONNREFUSED. Check --endpoint / --region, or that DynamoDB Local is running`,
      ]);
      expect(result.ms).toBeLessThan(10_000);
    });

    it('reports a missing lease table and a missing source table, each in one line', async () => {
      // Prepare
      const missing = uniqueTableName('missing');
      const config = await writeConfig(dir, missing);
      const endpoint = inject('dynamoEndpoint');

      // Act
      const [leaseTable, sourceTable] = await Promise.all([
        cli(['status', '--lease-table', missing, '--stream-arn', streamRecords().streamArn]),
        cli(['run', '--config', config, '--lease-table', 'leases', '--metrics-port', 'off']),
      ]);

      // Assess
      expect(leaseTable.code).toBe(1);
      expect(lines(leaseTable.stderr)).toEqual([
        `dynamo-cdc: lease table ${missing} does not exist in ${endpoint}. Check --lease-table (and --region / --endpoint), or start a worker with --create-lease-table`,
      ]);
      expect(sourceTable.code).toBe(1);
      expect(lines(sourceTable.stderr)).toHaveLength(1);
      expect(sourceTable.stderr).toContain(`dynamo-cdc: table ${missing} does not exist in ${endpoint}. Check the table in `);
    });
  });

  describe('status', () => {
    let streamArn: string;
    let realShard: string;
    let leaseTable: string;
    const parent = 'shardId-00000001700000000000-parent00';
    const sibling = 'shardId-00000001700000000001-sibling0';

    beforeAll(async () => {
      // A parent shard (gone from the stream, finished) that split into the table's real shard and a sibling.
      const source = uniqueTableName('status-src');
      streamArn = await createSourceTable(client, source);
      tables.push(source);
      const streams = new DynamoDBStreamsClient(localClientConfig(inject('dynamoEndpoint')));
      const { StreamDescription: description } = await streams.send(new DescribeStreamCommand({ StreamArn: streamArn }));
      streams.destroy();
      realShard = description?.Shards?.[0]?.ShardId as string;
      leaseTable = await createLeaseTable(client, uniqueTableName('status-leases'));
      tables.push(leaseTable);
      const store = dynamoDbLeaseStore({ tableName: leaseTable, client });
      await store.create({ streamArn, shardId: parent, parents: [], checkpoint: 'SHARD_END' });
      await store.create({ streamArn, shardId: realShard, parents: [parent], checkpoint: 'TRIM_HORIZON' });
      await store.create({ streamArn, shardId: sibling, parents: [parent], checkpoint: 'TRIM_HORIZON' });
      const leases = await store.list(streamArn);
      const real = await store.take(leases.find((l) => l.shardId === realShard) as (typeof leases)[number], 'worker-a');
      const other = await store.take(leases.find((l) => l.shardId === sibling) as (typeof leases)[number], 'worker-b');
      if (!real || !other) throw new Error('leases not taken');
      await store.checkpoint(other, '49039552900000000000000000137', []);
      for (const n of [1, 2, 3]) {
        await client.send(new PutItemCommand({ TableName: source, Item: { PK: { S: `USER#${n}` }, SK: { S: 'PROFILE' } } }));
      }
    });

    it('prints shards, owners, checkpoints, lag and the lineage as JSON', async () => {
      // Act
      const result = await cli(['status', '--lease-table', leaseTable, '--stream-arn', streamArn, '--lag', '--json']);

      // Assess
      expect(result.code, result.stderr).toBe(0);
      const report = JSON.parse(result.stdout) as {
        leaseTable: string;
        streams: { streamArn: string; described: boolean; shards: Record<string, unknown>[]; lineage: unknown[]; owners: unknown[] }[];
      };
      expect(report.leaseTable).toBe(leaseTable);
      expect(report.streams).toHaveLength(1);
      const stream = report.streams[0];
      expect(stream?.streamArn).toBe(streamArn);
      expect(stream?.described).toBe(true);
      const shard = (id: string) => stream?.shards.find((s) => s['shardId'] === id);
      expect(shard(parent)).toMatchObject({ lease: 'free', owner: null, checkpoint: 'SHARD_END', finished: true, shard: 'gone', parents: [] });
      expect(shard(realShard)).toMatchObject({ lease: 'held', owner: 'worker-a', checkpoint: 'TRIM_HORIZON', shard: 'open', parents: [parent] });
      expect(shard(realShard)?.['lag']).toMatchObject({ from: 'TRIM_HORIZON', records: 3, more: false });
      expect(typeof shard(realShard)?.['updatedAt']).toBe('string');
      expect(shard(sibling)).toMatchObject({ lease: 'held', owner: 'worker-b', checkpoint: '49039552900000000000000000137', parents: [parent] });
      expect(stream?.lineage).toEqual([
        {
          shardId: parent,
          children: [realShard, sibling].sort().map((shardId) => ({ shardId, children: [] })),
        },
      ]);
      expect(stream?.owners).toEqual([
        { owner: 'worker-a', shards: 1 },
        { owner: 'worker-b', shards: 1 },
      ]);
    });

    it('prints the lineage as a tree with owners and checkpoints', async () => {
      // Act
      const result = await cli(['status', '--lease-table', leaseTable, '--stream-arn', streamArn]);

      // Assess
      expect(result.code, result.stderr).toBe(0);
      const out = lines(result.stdout);
      expect(out[0]).toBe(`stream       ${streamArn}`);
      const [first, second] = [realShard, sibling].sort();
      const row = (prefix: string, id: string | undefined) => out.find((l) => l.startsWith(`${prefix}${id ?? '?'} `));
      expect(row('', parent)).toMatch(/\(free\)\s+SHARD_END\s+\S+ ago\s+gone/);
      expect(row('├── ', first)).toBeDefined();
      expect(row('└── ', second)).toBeDefined();
      expect(row('├── ', realShard) ?? row('└── ', realShard)).toMatch(/worker-a\s+TRIM_HORIZON\s+\S+ ago\s+open/);
      expect(row('├── ', sibling) ?? row('└── ', sibling)).toMatch(/worker-b\s+49039552900000000000000000137/);
    });
  });

  describe('dlq', () => {
    let letters: DeadLetter[];
    let file: string;
    let workDir: string;

    beforeAll(async () => {
      workDir = await mkdtemp(join(dir, 'dlq-'));
      const records = streamRecords({ table: 'TaskApp' });
      letters = [
        letterOf(records.insert({ PK: 'USER#1', SK: 'TASK#1', TaskId: '1', Status: 'OPEN', Version: 1 }), 'status'),
        letterOf(records.modify({ PK: 'USER#1', SK: 'TASK#1', TaskId: '1', Status: 'OPEN', Version: 1 }, { PK: 'USER#1', SK: 'TASK#1', TaskId: '1', Status: 'DONE', Version: 2 }), 'status'),
        letterOf(records.insert({ PK: 'USER#2', SK: 'PROFILE', Name: 'Ada' }), 'all', 3),
      ];
      file = join(workDir, 'dead-letters.ndjson');
      await writeFile(file, letters.map((l) => `${toJson(l)}\n`).join(''));
    });

    it('lists the letters of a file as a table and as JSON', async () => {
      // Act
      const [text, json] = await Promise.all([cli(['dlq', 'list', '--file', file]), cli(['dlq', 'list', '--file', file, '--json'])]);

      // Assess
      expect(text.code, text.stderr).toBe(0);
      const rows = lines(text.stdout);
      expect(rows[0]).toMatch(/^ID\s+EVENT ID\s+SINK\s+ERROR\s+ATTEMPTS\s+LAST ATTEMPT$/);
      letters.forEach((l, i) => {
        expect(rows[i + 1]).toMatch(new RegExp(`^line ${i + 1}\\s+${l.position.eventID}\\s+${l.sink ?? ''}\\s+ThrottlingException \\(THROTTLING\\)\\s+${l.attempts}\\s+2026-01-01T12:00:20.000Z$`));
      });
      expect(rows.at(-1)).toBe(`3 dead letters in ${file}`);
      expect(json.code, json.stderr).toBe(0);
      const parsed = JSON.parse(json.stdout) as { count: number; letters: { id: string; sink: string; position: { eventID: string }; record: { eventID: string } }[] };
      expect(parsed.count).toBe(3);
      expect(parsed.letters.map((l) => l.position.eventID)).toEqual(letters.map((l) => l.position.eventID));
      expect(parsed.letters.map((l) => l.record.eventID)).toEqual(letters.map((l) => l.position.eventID));
    });

    it('--dry-run shows where each letter would go and sends nothing', async () => {
      // Prepare
      const config = await writeConfig(workDir, 'TaskApp');

      // Act
      const result = await cli(['dlq', 'redrive', '--file', file, '--config', config, '--dry-run']);

      // Assess
      expect(result.code, result.stderr).toBe(0);
      const out = lines(result.stdout);
      letters.forEach((l) => expect(out.find((row) => row.includes(l.position.eventID))).toMatch(new RegExp(`${l.sink ?? ''}$`)));
      expect(out.at(-1)).toBe('dry run: 3 of 3 letters would be sent; nothing was sent');
      expect(await readLines(join(workDir, 'status.ndjson'))).toEqual([]);
      expect(await readLines(join(workDir, 'all.ndjson'))).toEqual([]);
    });

    it('redrives each letter to the sink that failed it, keeping its eventID', async () => {
      // Prepare
      const config = await writeConfig(workDir, 'TaskApp');

      // Act
      const result = await cli(['dlq', 'redrive', '--file', file, '--config', config]);

      // Assess
      expect(result.code, result.stderr).toBe(0);
      expect(lines(result.stdout)).toEqual([`redrove 3 of 3 letters from ${file}`]);
      expect(result.stderr).toMatch(/redrive \[#+\] 3\/3/);
      const status = await readLines(join(workDir, 'status.ndjson'));
      const all = await readLines(join(workDir, 'all.ndjson'));
      expect(status.map((e) => e['eventID'])).toEqual([letters[0]?.position.eventID, letters[1]?.position.eventID]);
      expect(status.map((e) => e['kind'])).toEqual(['insert', 'modify']);
      expect(all.map((e) => e['eventID'])).toEqual([letters[2]?.position.eventID]);
    });

    it('deletes the SQS messages it redrove and leaves the ones that failed', async () => {
      // Prepare: one letter for a sink of the config, one for a sink it no longer has.
      const out = await mkdtemp(join(dir, 'sqs-'));
      const config = await writeConfig(out, 'TaskApp');
      const gone = { ...letters[2], sink: 'removed-sink' } as DeadLetter;
      const sqs = mockClient(SQSClient);
      sqs.on(GetQueueAttributesCommand).resolves({ Attributes: { ApproximateNumberOfMessages: '2' } });
      sqs
        .on(ReceiveMessageCommand)
        .resolvesOnce({
          Messages: [
            { MessageId: 'm-1', ReceiptHandle: 'r-1', Body: toJson(letters[0]) },
            { MessageId: 'm-2', ReceiptHandle: 'r-2', Body: toJson(gone) },
          ],
        })
        .resolves({ Messages: [] });
      sqs.on(DeleteMessageBatchCommand).resolves({ Successful: [{ Id: '0' }], Failed: [] });
      sqs.on(ChangeMessageVisibilityBatchCommand).resolves({ Successful: [{ Id: '0' }], Failed: [] });
      const stdout = new PassThrough();
      const stderr = new PassThrough();
      let said = '';
      stderr.on('data', (c: Buffer) => (said += c.toString('utf8')));
      stdout.resume();

      // Act
      const code = await main(['dlq', 'redrive', '--queue-url', 'https://sqs.us-east-1.amazonaws.com/123456789012/tasks-dlq', '--config', config], {
        stdout,
        stderr,
        env: { AWS_REGION: 'us-east-1', AWS_ACCESS_KEY_ID: 'x', AWS_SECRET_ACCESS_KEY: 'x' },
        cwd: ROOT,
      });
      sqs.restore();

      // Assess
      expect(code).toBe(1);
      const deletes = sqs.commandCalls(DeleteMessageBatchCommand).map((c) => c.args[0].input.Entries?.map((e) => e.ReceiptHandle));
      expect(deletes).toEqual([['r-1']]);
      const released = sqs.commandCalls(ChangeMessageVisibilityBatchCommand).map((c) => c.args[0].input.Entries?.map((e) => [e.ReceiptHandle, e.VisibilityTimeout]));
      expect(released).toEqual([[['r-2', 0]]]);
      expect(sqs.commandCalls(ReceiveMessageCommand)[0]?.args[0].input).toMatchObject({ MaxNumberOfMessages: 10, VisibilityTimeout: 300 });
      expect((await readLines(join(out, 'status.ndjson'))).map((e) => e['eventID'])).toEqual([letters[0]?.position.eventID]);
      expect(said).toContain('sink `removed-sink` is not in the routes of');
      expect(said).toContain('1 of 2 letters were not redriven; they stay in https://sqs.us-east-1.amazonaws.com/123456789012/tasks-dlq');
    });
  });

  describe('run', () => {
    let child: ChildProcessWithoutNullStreams | undefined;

    afterAll(() => {
      child?.kill('SIGKILL');
    });

    it('runs a worker that delivers a written item to a file sink, and exits 0 on SIGTERM', async () => {
      // Prepare
      const source = uniqueTableName('run-src');
      await createSourceTable(client, source);
      tables.push(source);
      const leaseTable = uniqueTableName('run-leases');
      tables.push(leaseTable);
      const out = await mkdtemp(join(dir, 'run-'));
      const config = await writeConfig(out, source);

      // Act: start it as a user would, write an item, wait for it in the sink, then SIGTERM.
      const worker = spawn(
        process.execPath,
        ['bin/dynamo-cdc.js', 'run', '--config', config, '--lease-table', leaseTable, '--create-lease-table', '--poll-interval-ms', '100', '--metrics-port', '0', '--log-level', 'warn'],
        { cwd: ROOT, env: userEnv() },
      );
      child = worker;
      let stderr = '';
      worker.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
      worker.stdout.resume();
      const exited = new Promise<number | null>((resolve) => worker.once('exit', (code) => resolve(code)));
      await eventually('the worker to start', 30_000, async () => {
        if (worker.exitCode !== null) throw new Error(`worker exited: ${stderr}`);
        return stderr.includes('is reading') ? true : undefined;
      });
      await client.send(new PutItemCommand({ TableName: source, Item: { PK: { S: 'USER#7' }, SK: { S: 'TASK#1' }, Status: { S: 'OPEN' } } }));
      const delivered = await eventually('the change in the sink', 20_000, async () => {
        const events = await readLines(join(out, 'all.ndjson'));
        return events.length > 0 ? events : undefined;
      });
      worker.kill('SIGTERM');
      const code = await exited;

      // Assess
      expect(delivered).toHaveLength(1);
      expect(delivered[0]).toMatchObject({ kind: 'insert', key: { PK: 'USER#7', SK: 'TASK#1' } });
      expect(code, stderr).toBe(0);
      expect(stderr).toContain('SIGTERM: draining');
      const leases = await dynamoDbLeaseStore({ tableName: leaseTable, client }).list((delivered[0]?.['meta'] as { streamArn: string }).streamArn);
      expect(leases).toHaveLength(1);
      expect(leases[0]?.owner).toBeUndefined();
      expect(leases[0]?.checkpoint).toBe((delivered[0]?.['meta'] as { sequenceNumber: string }).sequenceNumber);
    }, 45_000);
  });
});
