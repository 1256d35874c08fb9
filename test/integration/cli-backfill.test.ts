import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { BatchWriteItemCommand } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backfillRecord } from '../../src/backfill/records.js';
import { createLeaseTable, createSourceTable } from '../../src/local/tables.js';
import { deleteTable, localClient, uniqueTableName } from '../support/dynamo.js';
import { lines, ROOT, runBin, SRC_INDEX, userEnv } from '../support/cli.js';

const cli = (args: readonly string[]) => runBin(args, { timeoutMs: 60_000 });

const keysIn = async (path: string): Promise<string[]> => {
  try {
    return lines(await readFile(path, 'utf8')).map((l) => String((JSON.parse(l) as { key: { PK: string } }).key.PK));
  } catch {
    return [];
  }
};

describe('dynamo-cdc backfill', () => {
  let client: DynamoDBClient;
  let dir: string;
  const tables: string[] = [];
  let n = 0;

  /** A source table with `items` items, a lease table, and a config routing everything to a file sink. */
  const setup = async (items: number) => {
    const table = uniqueTableName('cli-bf');
    await createSourceTable(client, table);
    const leaseTable = await createLeaseTable(client, uniqueTableName('cli-bf-leases'));
    tables.push(table, leaseTable);
    for (let start = 0; start < items; start += 25) {
      const puts = Array.from({ length: Math.min(25, items - start) }, (_, i) => ({ PutRequest: { Item: { PK: { S: `USER#${start + i}` }, SK: { S: 'TASK#1' }, Body: { S: 'x'.repeat(300) } } } }));
      await client.send(new BatchWriteItemCommand({ RequestItems: { [table]: puts } }));
    }
    const out = join(dir, `out-${++n}.ndjson`);
    const config = join(dir, `cdc-${n}.config.ts`);
    await writeFile(config, `import { defineApp, fileSink, route } from ${JSON.stringify(SRC_INDEX)};\nexport default defineApp({ table: ${JSON.stringify(table)}, routes: [route('*').to(fileSink({ name: 'all', path: ${JSON.stringify(out)} }))] });\n`);
    return { table, leaseTable, out, config };
  };

  beforeAll(async () => {
    client = localClient();
    dir = await mkdtemp(join(tmpdir(), 'dynamo-cdc-backfill-'));
  });

  afterAll(async () => {
    for (const t of tables) await deleteTable(client, t);
    client.destroy();
    await rm(dir, { recursive: true, force: true });
  });

  it('--help names the flags; a budget <= 0 and a missing lease table flag are one line each, exit 2', async () => {
    const help = await cli(['backfill', '--help']);
    expect(help.code).toBe(0);
    for (const flag of ['--lease-table', '--segments', '--max-rcu', '--dry-run', '--resume', '--config']) expect(help.stdout).toContain(flag);
    const zero = await cli(['backfill', '--lease-table', 'x', '--max-rcu', '0']);
    expect(zero.code).toBe(2);
    expect(lines(zero.stderr)).toEqual(['dynamo-cdc: --max-rcu must be a number of read capacity units per second > 0, got `0`.']);
    const negative = await cli(['backfill', '--lease-table', 'x', '--max-rcu', '-3']);
    expect(negative.code).toBe(2);
    expect(lines(negative.stderr)).toHaveLength(1);
    const missing = await cli(['backfill']);
    expect(missing.code).toBe(2);
    expect(lines(missing.stderr)[0]).toMatch(/needs --lease-table/);
  });

  it('an unknown table is one line, exit 1', async () => {
    const leaseTable = await createLeaseTable(client, uniqueTableName('cli-bf-leases'));
    tables.push(leaseTable);
    const config = join(dir, 'missing.config.ts');
    await writeFile(config, `import { defineApp, consoleSink, route } from ${JSON.stringify(SRC_INDEX)};\nexport default defineApp({ table: 'no-such-table', routes: [route('*').to(consoleSink())] });\n`);
    const result = await cli(['backfill', '--config', config, '--lease-table', leaseTable]);
    expect(result.code).toBe(1);
    expect(lines(result.stderr)).toEqual(['dynamo-cdc: table `no-such-table` does not exist. Check the table in the config, the region and the endpoint']);
  });

  it('backfills a table into a file sink, with plain progress lines when stderr is not a terminal, and a dry run first', async () => {
    const { leaseTable, out, config, table } = await setup(120);
    const dry = await cli(['backfill', '--config', config, '--lease-table', leaseTable, '--dry-run']);
    expect(dry.code).toBe(0);
    expect(dry.stdout).toMatch(new RegExp(`^dry run: table ${table} has about \\d+ items .* 1 lease\\(s\\) would be created at TRIM_HORIZON\\. Nothing was read or written\\.`));
    expect(await keysIn(out)).toEqual([]);
    const result = await cli(['backfill', '--config', config, '--lease-table', leaseTable, '--segments', '3', '--page-size', '20', '--max-rcu', '1000']);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^backfill \w+ done: 120 items of .*120 delivered, 0 dead-lettered, 0 unrouted/);
    expect(result.stderr).toMatch(/backfill .* 120\/120 \(\d+ items\/s, [\d.]+ RCU\/s, segments 3\/3/);
    expect(result.stderr).not.toContain('\r');
    expect(new Set(await keysIn(out)).size).toBe(120);
    // `status` shows the lease the backfill created, and not the backfill's own item.
    const status = await cli(['status', '--config', config, '--lease-table', leaseTable, '--json']);
    expect(status.code, status.stderr).toBe(0);
    const report = JSON.parse(status.stdout) as { streams: { shards: { shardId: string; checkpoint: string | null }[] }[] };
    expect(report.streams).toHaveLength(1);
    expect(report.streams[0]?.shards.map((s) => s.checkpoint)).toEqual(['TRIM_HORIZON']);
  });

  it('a dead-lettered backfill item is redriven by `dlq redrive` as a backfill event with its eventID', async () => {
    // Prepare: a letter as the engine writes it for a backfill item a sink failed.
    const out = join(dir, 'redriven.ndjson');
    const config = join(dir, 'redrive.config.ts');
    await writeFile(config, `import { defineApp, fileSink, route } from ${JSON.stringify(SRC_INDEX)};\nexport default defineApp({ table: 'TaskApp', routes: [route('*').to(fileSink({ name: 'all', path: ${JSON.stringify(out)} }))] });\n`);
    const record = backfillRecord(
      { PK: { S: 'USER#1' }, SK: { S: 'TASK#1' }, Status: { S: 'OPEN' } },
      { streamArn: 'arn:aws:dynamodb:us-east-1:123456789012:table/TaskApp/stream/2026-01-01T00:00:00.000', region: 'us-east-1', keyNames: ['PK', 'SK'], info: { id: 'b9', segment: 0, totalSegments: 1, startedAt: Date.UTC(2026, 0, 1), scannedAt: Date.UTC(2026, 0, 1) } },
    );
    const letters = join(dir, 'letters.ndjson');
    const letter = { record, sink: 'all', error: { name: 'Error', message: 'down', class: 'TRANSIENT' }, attempts: 6, firstAttemptAt: 1, lastAttemptAt: 2, position: { streamArn: record.eventSourceARN, sequenceNumber: '', eventID: record.eventID } };
    await writeFile(letters, `${JSON.stringify(letter)}\n`);
    // Act
    const result = await cli(['dlq', 'redrive', '--file', letters, '--config', config]);
    // Assess
    expect(result.code, result.stderr).toBe(0);
    const [event] = lines(await readFile(out, 'utf8')).map((l) => JSON.parse(l) as { kind: string; eventID: string; meta: { backfill: { id: string } } });
    expect(event).toMatchObject({ kind: 'backfill', eventID: record.eventID, meta: { backfill: { id: 'b9' } } });
  });

  it('killed with SIGKILL mid-way, run again it resumes: every item delivered at least once, none skipped', async () => {
    // Prepare: small pages and a budget, so the backfill takes a few seconds.
    const { leaseTable, out, config } = await setup(1500);
    const args = ['bin/dynamo-cdc.js', 'backfill', '--config', config, '--lease-table', leaseTable, '--segments', '4', '--page-size', '10', '--max-rcu', '60'];
    // Act: kill -9 once a third of the items is out.
    const child = spawn(process.execPath, args, { cwd: ROOT, env: userEnv(), stdio: 'ignore' });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const until = Date.now() + 40_000;
    while ((await keysIn(out)).length < 500 && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    child.kill('SIGKILL');
    expect(await exited).toBeNull();
    const before = await keysIn(out);
    const again = await cli(args.slice(1).filter((a, i, all) => a !== '--max-rcu' && all[i - 1] !== '--max-rcu'));
    // Assess
    expect(before.length).toBeGreaterThanOrEqual(500);
    expect(before.length).toBeLessThan(1500);
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/done: 1500 items of .* \(resumed\)/);
    const after = await keysIn(out);
    expect(new Set(after).size).toBe(1500);
    // Resumed from the checkpoints, not from the start: only pages in flight at the kill were sent twice.
    expect(after.length - 1500).toBeLessThan(before.length);
  }, 90_000);
});
