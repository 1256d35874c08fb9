import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { PutItemCommand } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { dynamoDbLeaseStore } from '../../src/worker/index.js';
import type { LeaseStore } from '../../src/worker/index.js';
import { createLeaseTable, createSourceTable } from '../../src/local/tables.js';
import { readDeliveries } from '../support/deliveries.js';
import { deleteTable, localClient, uniqueTableName } from '../support/dynamo.js';
import { spawnWorkerProcess } from '../support/spawn-worker-process.js';
import type { WorkerProcess } from '../support/spawn-worker-process.js';

// DynamoDB Local keeps one shard per table, so three tables give three shards. Each process runs
// one Worker per table, all sharing one lease table: three processes share three shards.
const LEASE_DURATION_MS = 2000;
const POLL_INTERVAL_MS = 50;
const COORDINATION_INTERVAL_MS = 200;
/** A coordination round to see the expiry, a poll and the write: what comes on top of the lease durations. */
const SLACK_MS = COORDINATION_INTERVAL_MS + POLL_INTERVAL_MS + 250;

interface Source {
  readonly table: string;
  readonly streamArn: string;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls until `condition` holds; the milliseconds it took. */
const waitFor = async (what: string, condition: () => Promise<boolean> | boolean, timeoutMs: number, onTimeout: () => string = () => ''): Promise<number> => {
  const started = Date.now();
  while (!(await condition())) {
    if (Date.now() - started > timeoutMs) throw new Error(`${what}: not within ${timeoutMs} ms. ${onTimeout()}`);
    await sleep(20);
  }
  return Date.now() - started;
};

describe('Worker processes', () => {
  let client: DynamoDBClient;
  let leases: LeaseStore;
  let leaseTable: string;
  let dir: string;
  const sources: Source[] = [];
  const processes: WorkerProcess[] = [];
  const output = (p: WorkerProcess) => join(dir, `${p.workerId}.ndjson`);

  /** Owner of each source's one shard, by table. */
  const owners = async (): Promise<Map<string, string | undefined>> => {
    const out = new Map<string, string | undefined>();
    for (const s of sources) {
      const [lease] = await leases.list(s.streamArn);
      out.set(s.table, lease?.owner);
    }
    return out;
  };

  const delivered = (p: WorkerProcess, table: string, pk: string): boolean =>
    readDeliveries(output(p)).some((d) => d.table === table && d.key === `${pk}|A`);

  const put = (table: string, pk: string) => client.send(new PutItemCommand({ TableName: table, Item: { PK: { S: pk }, SK: { S: 'A' }, Version: { N: '1' } } }));

  const logs = () => processes.map((p) => `--- ${p.workerId}\n${p.logTail().slice(-2000)}`).join('\n');

  beforeAll(async () => {
    client = localClient();
    leaseTable = await createLeaseTable(client, uniqueTableName('leases'));
    leases = dynamoDbLeaseStore({ tableName: leaseTable, client });
    for (let i = 0; i < 3; i++) {
      const table = uniqueTableName(`source${i}`);
      sources.push({ table, streamArn: await createSourceTable(client, table) });
    }
    dir = mkdtempSync(join(tmpdir(), 'worker-processes-'));
    for (let i = 0; i < 3; i++) {
      // Each process starts its own first stream at once and the others later, so the three tend
      // to take one shard each; the assertions hold whatever the split.
      const streamArns = [0, 1, 2].map((k) => (sources[(i + k) % 3] as Source).streamArn);
      const workerId = `p${i + 1}`;
      processes.push(
        spawnWorkerProcess({
          endpoint: inject('dynamoEndpoint'),
          leaseTable,
          streamArns,
          output: join(dir, `${workerId}.ndjson`),
          workerId,
          leaseDurationMs: LEASE_DURATION_MS,
          pollIntervalMs: POLL_INTERVAL_MS,
          coordinationIntervalMs: COORDINATION_INTERVAL_MS,
          staggerMs: 3000,
        }),
      );
    }
    await Promise.all(processes.map((p) => p.ready));
  });

  afterAll(async () => {
    await Promise.all(processes.map((p) => p.kill()));
    for (const s of sources) await deleteTable(client, s.table);
    if (leaseTable) await deleteTable(client, leaseTable);
    client.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('gives every shard an owner and delivers each table from one of the processes', async () => {
    // Act
    await waitFor('every shard owned', async () => [...(await owners()).values()].every((o) => o !== undefined), 10_000, logs);
    for (const s of sources) await put(s.table, 'FIRST');

    // Assess: each table's item arrives, from its shard's owner.
    await waitFor('every first item delivered', () => sources.every((s) => processes.some((p) => delivered(p, s.table, 'FIRST'))), 10_000, logs);
    const byTable = await owners();
    console.info(`[worker-processes] shard owners: ${JSON.stringify(Object.fromEntries([...byTable].map(([t, o]) => [t.slice(0, 7), o])))}`);
    for (const owner of byTable.values()) expect(processes.map((p) => p.workerId)).toContain(owner);
  });

  it('moves the shards of a process killed with kill -9 to the others within two lease durations', async () => {
    // Prepare: the process owning the most shards.
    const byTable = await owners();
    const count = (p: WorkerProcess) => [...byTable.values()].filter((o) => o === p.workerId).length;
    const victim = [...processes].sort((a, b) => count(b) - count(a))[0] as WorkerProcess;
    const tables = sources.filter((s) => byTable.get(s.table) === victim.workerId).map((s) => s.table);
    expect(tables.length).toBeGreaterThan(0);
    const others = processes.filter((p) => p !== victim);

    // Act
    const killedAt = Date.now();
    victim.signal('SIGKILL');
    for (const table of tables) await put(table, 'AFTER-KILL');
    await waitFor(
      'shards of the killed process read again by the others',
      async () => {
        const now = await owners();
        return tables.every((t) => others.some((p) => now.get(t) === p.workerId && delivered(p, t, 'AFTER-KILL')));
      },
      4 * LEASE_DURATION_MS,
      logs,
    );
    const failoverMs = Date.now() - killedAt;

    // Assess
    console.info(`[worker-processes] kill -9 of ${victim.workerId} (${tables.length} shard(s)): read again by a peer after ${failoverMs} ms (lease duration ${LEASE_DURATION_MS} ms)`);
    expect(await victim.exited).toEqual({ code: null, signal: 'SIGKILL' });
    expect(failoverMs).toBeLessThanOrEqual(2 * LEASE_DURATION_MS + SLACK_MS);
  });

  it('moves the shards of a process stopped with SIGTERM within 2 s, and the process exits 0', async () => {
    // Prepare: a live process that owns a shard.
    const byTable = await owners();
    const alive = processes.filter((p) => p.running);
    const victim = alive.find((p) => [...byTable.values()].includes(p.workerId)) as WorkerProcess;
    expect(victim).toBeDefined();
    const tables = sources.filter((s) => byTable.get(s.table) === victim.workerId).map((s) => s.table);
    const heir = alive.find((p) => p !== victim) as WorkerProcess;

    // Act
    victim.signal('SIGTERM');
    const handoffMs = await waitFor(
      'shards of the stopped process taken by the last one',
      async () => {
        const now = await owners();
        return tables.every((t) => now.get(t) === heir.workerId);
      },
      5000,
      logs,
    );

    // Assess
    console.info(`[worker-processes] SIGTERM of ${victim.workerId} (${tables.length} shard(s)): taken by ${heir.workerId} after ${handoffMs} ms`);
    expect(handoffMs).toBeLessThan(2000);
    expect(await victim.exited).toEqual({ code: 0, signal: null });
    for (const table of tables) await put(table, 'AFTER-TERM');
    await waitFor('items written after the hand-off delivered by the heir', () => tables.every((t) => delivered(heir, t, 'AFTER-TERM')), 5000, logs);
  });
  it('reads again the shard of a process restarted under the same workerId after a kill -9', async () => {
    // Prepare: a stream only one process reads, under a fixed id (a StatefulSet pod name, say).
    const table = uniqueTableName('restart');
    const source = { table, streamArn: await createSourceTable(client, table) };
    sources.push(source);
    const options = { endpoint: inject('dynamoEndpoint'), leaseTable, streamArns: [source.streamArn], output: join(dir, 'solo.ndjson'), leaseDurationMs: LEASE_DURATION_MS, pollIntervalMs: POLL_INTERVAL_MS, coordinationIntervalMs: COORDINATION_INTERVAL_MS };
    const first = spawnWorkerProcess({ ...options, workerId: 'solo' });
    processes.push(first);
    await first.ready;
    await first.kill();

    // Act
    const second = spawnWorkerProcess({ ...options, workerId: 'solo' });
    processes.push(second);
    await second.ready;
    await put(table, 'AFTER-RESTART');

    // Assess: the lease left by its previous incarnation expires like any other.
    const tookMs = await waitFor('item read by the restarted process', () => readDeliveries(options.output).some((d) => d.table === table && d.key === 'AFTER-RESTART|A'), 4 * LEASE_DURATION_MS, logs);
    expect(tookMs).toBeLessThanOrEqual(2 * LEASE_DURATION_MS + SLACK_MS);
  });
});
