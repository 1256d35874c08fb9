import { seededRandom } from '../../src/testing/index.js';
/**
 * Chaos run of the worker shape. Prints JSON lines; the last one is
 *   {"chaos":"worker","changes":N,"lost":N,"orderViolations":N,"unfinishedReplays":N,"staleLast":N,"duplicates":N,"kills":N,"replicaDiffs":N}
 * and the exit code is 1 when anything was lost, out of order or stale, or the replica differs.
 *
 *   npx tsx test/chaos/chaos.ts [--changes 20000] [--keys 200] [--kills 10] [--workers 3] [--seed 1]
 *
 * What it does: starts DynamoDB Local (or uses `endpoint`), a source table with a NEW_AND_OLD_IMAGES
 * stream and a lease table, and `workers` worker processes (test/support/worker-process.ts) whose
 * file sinks all append to ONE NDJSON file. Concurrent writers make `changes` changes over `keys`
 * items, each under a condition on the item's previous state, so every key's changes are numbered
 * exactly 1..n: an UpdateItem sets the item's `Version` to its number, and a share of them
 * (`removeShare`) are DeleteItems, whose number is the old image's `Version` + 1 (the next write
 * re-creates the item). Meanwhile, at seeded random moments, a
 * worker process (the shard's owner two times in three) gets `kill -9` or SIGTERM (both kinds, at
 * least `kills` in all) and is started again, under a new workerId, after a random pause. Once the
 * writes are done and every change has arrived (or `deliveryTimeoutMs` passed), the processes are
 * stopped and the file is checked (see check-deliveries.ts for the definitions of lost, order
 * violation, unfinished replay, stale last delivery and duplicate). All along, the deliveries, read
 * from the file in its order as they arrive, build a projection table on the same DynamoDB Local
 * with writes guarded by each change's stream position (see projection.ts); once the last of them
 * is written, a Scan of it is compared with a Scan of the source item by item: `replicaDiffs`
 * counts items missing, extra or different.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { DeleteItemCommand, DeleteTableCommand, DynamoDBClient, GetItemCommand, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { localClientConfig, startDynamoDbLocal } from '../../src/local/dynamodb-local.js';
import type { DynamoDbLocal } from '../../src/local/dynamodb-local.js';
import { dynamoDbLeaseStore } from '../../src/worker/index.js';
import { createLeaseTable, createSourceTable } from '../../src/local/tables.js';
import { spawnWorkerProcess } from '../support/spawn-worker-process.js';
import type { WorkerProcess } from '../support/spawn-worker-process.js';
import { ChangeLog } from './change-log.js';
import { DeliveryChecker, isClean } from './check-deliveries.js';
import type { DeliveryCheck } from './check-deliveries.js';
import { compareWithSource, createProjectionTable, Projector } from './projection.js';

/** Options of {@link runChaos}. */
export interface ChaosOptions {
  /** @default 20000 */
  readonly changes?: number;
  /** @default 200 */
  readonly keys?: number;
  /** At least this many kills, both kinds; more happen while the writes last. @default 10 */
  readonly kills?: number;
  /** @default 3 */
  readonly workers?: number;
  /** Concurrent writers; each owns a slice of the keys, so a key's updates never race. @default 8 */
  readonly writers?: number;
  /** Share of the changes to an existing item that delete it (the next change re-creates it). @default 0.05 */
  readonly removeShare?: number;
  /** Concurrent guarded writes that build the projection. @default 8 */
  readonly projectionConcurrency?: number;
  /** @default 1 */
  readonly seed?: number;
  /** A running DynamoDB Local to use; by default the run starts its own. */
  readonly endpoint?: string;
  /** @default 3000 */
  readonly leaseDurationMs?: number;
  /** @default 100 */
  readonly pollIntervalMs?: number;
  /** Pause before each kill, drawn uniformly. @default [1000, 3000] */
  readonly killGapMs?: readonly [number, number];
  /** Pause before a killed process is started again, drawn uniformly. @default [100, 1000] */
  readonly restartDelayMs?: readonly [number, number];
  /**
   * Write rate, so that the kills happen while the writes last.
   * @default changes / (kills x 3.5 s): about the time the kills take
   */
  readonly writesPerSec?: number;
  /** After the writes and kills, how long every change may take to arrive. @default 90000 */
  readonly deliveryTimeoutMs?: number;
  /** Keep the output folder (the delivered file and each process's log). @default only when the check fails */
  readonly keepOutput?: boolean;
  /** Progress lines. @default none */
  readonly report?: (line: Record<string, unknown>) => void;
}

export interface ChaosResult extends DeliveryCheck {
  readonly kills: number;
  readonly sigkills: number;
  readonly sigterms: number;
  /** Kills that hit the process owning the shard at that moment, of each kind. */
  readonly ownerSigkills: number;
  readonly ownerSigterms: number;
  /** SIGTERMed processes that did not exit 0 within 20 s (a graceful stop that failed or hung). */
  readonly badTermExits: number;
  /** Worker processes that exited without being signalled (crashes). */
  readonly unexpectedExits: number;
  /** Lines of the delivered file that were not JSON (a torn write). */
  readonly badLines: number;
  readonly elapsedMs: number;
  readonly writeMs: number;
  /** From the end of the writes and kills until every change had arrived. */
  readonly catchUpMs: number;
  /** Changes that were removes (DeleteItem). */
  readonly removes: number;
  /** Projection writes that stored their change, and those refused by the position guard (re-deliveries). */
  readonly projectionApplied: number;
  readonly projectionStale: number;
  /** Items of the projection that differ from the source's after catch-up: missing, extra or different. */
  readonly replicaDiffs: number;
  readonly replicaMissing: number;
  readonly replicaExtra: number;
  readonly replicaDifferent: number;
  /** After the processes stopped: the projection's last writes and the comparison with the source. */
  readonly replicaMs: number;
}


const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const between = (random: () => number, [min, max]: readonly [number, number]) => min + random() * (max - min);
const nameOf = (error: unknown) => (error as { name?: unknown } | undefined)?.name;

const keyName = (k: number) => `KEY#${String(k).padStart(4, '0')}`;
const SK = 'ITEM';

/**
 * Makes change number `version` of the item: a DeleteItem when `remove`, else an UpdateItem setting
 * `Version` to `version`. Conditioned on the previous change (`Version` is `version - 1`, or the item
 * is absent when the previous change removed it or there was none), so a key's changes are 1..n.
 */
const writeChange = async (client: DynamoDBClient, table: string, pk: string, version: number, change: { readonly exists: boolean; readonly remove: boolean }): Promise<void> => {
  const Key = { PK: { S: pk }, SK: { S: SK } };
  const previous = change.exists ? { ConditionExpression: '#version = :previous', ExpressionAttributeValues: { ':previous': { N: String(version - 1) } } } : { ConditionExpression: 'attribute_not_exists(PK)' };
  const command = change.remove
    ? new DeleteItemCommand({ TableName: table, Key, ExpressionAttributeNames: { '#version': 'Version' }, ...previous })
    : new UpdateItemCommand({
        TableName: table,
        Key,
        UpdateExpression: 'SET #version = :version, #note = :note',
        ConditionExpression: previous.ConditionExpression,
        ExpressionAttributeNames: { '#version': 'Version', '#note': 'Note' },
        ExpressionAttributeValues: { ':version': { N: String(version) }, ':note': { S: `change ${version} of ${pk}` }, ...previous.ExpressionAttributeValues },
      });
  for (let attempt = 1; ; attempt++) {
    try {
      await client.send(command);
      return;
    } catch (error) {
      if (nameOf(error) === 'ConditionalCheckFailedException') {
        // An earlier attempt may have been applied before its answer was lost: check.
        const { Item: item } = await client.send(new GetItemCommand({ TableName: table, Key, ConsistentRead: true }));
        if (change.remove ? item === undefined : item?.['Version']?.N === String(version)) return;
        throw new Error(`change ${version} of ${pk} refused: the item is at version ${String(item?.['Version']?.N)}`, { cause: error });
      }
      if (attempt >= 5) throw error;
      await sleep(50 * attempt);
    }
  }
};

/** Runs the chaos test and checks what was delivered. Every process it starts is gone when it settles. */
export const runChaos = async (options: ChaosOptions = {}): Promise<ChaosResult> => {
  const changes = options.changes ?? 20_000;
  const keys = options.keys ?? 200;
  const minKills = options.kills ?? 10;
  const workerCount = options.workers ?? 3;
  const writerCount = Math.min(options.writers ?? 8, keys);
  const leaseDurationMs = options.leaseDurationMs ?? 3000;
  const pollIntervalMs = options.pollIntervalMs ?? 100;
  const killGapMs = options.killGapMs ?? [1000, 3000];
  const restartDelayMs = options.restartDelayMs ?? [100, 1000];
  const writesPerSec = options.writesPerSec ?? changes / (Math.max(1, minKills) * 3.5);
  const deliveryTimeoutMs = options.deliveryTimeoutMs ?? 90_000;
  const removeShare = options.removeShare ?? 0.05;
  const projectionConcurrency = options.projectionConcurrency ?? 8;
  const report = options.report ?? (() => {});
  const random = seededRandom(options.seed ?? 1);
  const started = Date.now();

  let local: DynamoDbLocal | undefined;
  let client: DynamoDBClient | undefined;
  const processes = new Set<WorkerProcess>();
  const dir = mkdtempSync(join(tmpdir(), 'dynamo-cdc-chaos-'));
  let keep = options.keepOutput ?? false;
  /** Set when the run settles: the monkey starts nothing after it. */
  let over = false;
  const tables: string[] = [];
  let reading: NodeJS.Timeout | undefined;
  try {
    const endpoint = options.endpoint ?? (local = await startDynamoDbLocal()).endpoint;
    client = new DynamoDBClient({ ...localClientConfig(endpoint), maxAttempts: 3 });
    const sourceTable = `chaos-${randomUUID()}`;
    const streamArn = await createSourceTable(client, sourceTable);
    tables.push(sourceTable);
    const leaseTable = await createLeaseTable(client, `chaos-leases-${randomUUID()}`);
    tables.push(leaseTable);
    const projectionTable = await createProjectionTable(client, `chaos-projection-${randomUUID()}`);
    tables.push(projectionTable);
    const leases = dynamoDbLeaseStore({ tableName: leaseTable, client });
    const output = join(dir, 'delivered.ndjson');

    /** Processes this run signalled; any other exit is a crash of the worker. */
    const signalled = new Set<WorkerProcess>();
    let unexpectedExits = 0;
    const generation = new Map<number, number>();
    const slots = new Map<WorkerProcess, number>();
    const start = (slot: number): WorkerProcess => {
      if (over) throw new Error('chaos run over');
      const gen = (generation.get(slot) ?? 0) + 1;
      generation.set(slot, gen);
      const workerId = `w${slot}-${gen}`;
      const p = spawnWorkerProcess({ endpoint, leaseTable, streamArns: [streamArn], output, workerId, leaseDurationMs, pollIntervalMs, logFile: join(dir, `${workerId}.log`) });
      processes.add(p);
      slots.set(p, slot);
      void p.exited.then((status) => {
        processes.delete(p);
        if (!signalled.has(p) && !over) {
          unexpectedExits++;
          report({ phase: 'unexpected exit', workerId: p.workerId, exit: status, log: p.logTail().slice(-1500) });
        }
      });
      return p;
    };
    await Promise.all(Array.from({ length: workerCount }, (_, i) => start(i + 1).ready));

    // Deliveries are read as they arrive: into the checker, and into the projection (its writes
    // overlap the run, as a downstream consumer's would).
    const log = new ChangeLog(output);
    const checker = new DeliveryChecker();
    const projector = new Projector(client, projectionTable, projectionConcurrency);
    const drain = () => {
      const changes = log.poll();
      for (const change of changes) checker.add(change);
      projector.push(changes);
    };
    reading = setInterval(drain, 250);
    report({ phase: 'started', changes, keys, workers: workerCount, writers: writerCount, writesPerSec: Math.round(writesPerSec), removeShare, leaseDurationMs, pollIntervalMs });

    // Writers: each owns the keys k with k % writerCount === its index, paced together to writesPerSec.
    const versions = new Map<string, number>();
    const exists = new Set<string>();
    let removes = 0;
    let issued = 0;
    const writeStart = Date.now();
    const writer = async (index: number) => {
      const own = Array.from({ length: keys }, (_, k) => k).filter((k) => k % writerCount === index);
      const mine = seededRandom((options.seed ?? 1) * 1000 + index);
      while (issued < changes) {
        const n = issued++;
        const due = writeStart + (n * 1000) / writesPerSec;
        if (due > Date.now()) await sleep(due - Date.now());
        const pk = keyName(own[Math.floor(mine() * own.length)] as number);
        const key = `${pk}|${SK}`; // as the checker names a delivery's item
        const version = (versions.get(key) ?? 0) + 1;
        const remove = exists.has(key) && mine() < removeShare;
        await writeChange(client as DynamoDBClient, sourceTable, pk, version, { exists: exists.has(key), remove });
        versions.set(key, version);
        if (remove) {
          exists.delete(key);
          removes++;
        } else exists.add(key);
      }
    };
    let writesDone = false;
    const writing = Promise.all(Array.from({ length: writerCount }, (_, i) => writer(i))).finally(() => {
      writesDone = true;
    });
    let writeMs = 0;
    void writing.then(() => {
      writeMs = Date.now() - writeStart;
      report({ phase: 'writes done', changes, writeMs });
    });

    // The monkey: kill, wait for the exit, start again; both kinds of kill at least once.
    let kills = 0;
    let sigkills = 0;
    let sigterms = 0;
    let ownerSigkills = 0;
    let ownerSigterms = 0;
    let badTermExits = 0;
    const monkey = async () => {
      const uncovered = () => Number(ownerSigkills === 0) + Number(ownerSigterms === 0);
      while (!over && (!writesDone || kills < minKills || (uncovered() > 0 && kills < minKills + 10))) {
        await sleep(between(random, killGapMs));
        if (over) return;
        const running = [...processes].filter((p) => p.running);
        if (running.length === 0) continue;
        const [lease] = await leases.list(streamArn);
        const owner = running.find((p) => p.workerId === lease?.owner);
        let victim = owner && random() < 2 / 3 ? owner : (running[Math.floor(random() * running.length)] as WorkerProcess);
        let kind: NodeJS.Signals = random() < 0.5 ? 'SIGKILL' : 'SIGTERM';
        // Whatever the draws, the owner gets each kind at least once within the minimum.
        if (owner && uncovered() > 0 && minKills - kills <= uncovered()) [victim, kind] = [owner, ownerSigkills === 0 ? 'SIGKILL' : 'SIGTERM'];
        const signalledAt = Date.now();
        signalled.add(victim);
        const stopped = victim.stop(kind, 20_000);
        kills++;
        if (kind === 'SIGKILL') sigkills++;
        else sigterms++;
        if (victim === owner) {
          if (kind === 'SIGKILL') ownerSigkills++;
          else ownerSigterms++;
        }
        const status = await stopped;
        if (kind === 'SIGTERM' && (status.code !== 0 || status.forced)) badTermExits++;
        report({ phase: 'kill', n: kills, signal: kind, workerId: victim.workerId, owner: victim === owner, exit: { code: status.code, signal: status.signal }, exitMs: Date.now() - signalledAt, written: Math.min(issued, changes) });
        await sleep(between(random, restartDelayMs));
        if (over) return;
        await start(slots.get(victim) as number).ready;
      }
    };
    await Promise.all([writing, monkey()]);

    // Catch up: every change delivered, or the timeout.
    const catchUpStart = Date.now();
    for (drain(); checker.distinct < changes && Date.now() - catchUpStart < deliveryTimeoutMs; drain()) await sleep(250);
    const catchUpMs = Date.now() - catchUpStart;

    // Stop everything gracefully, then read the last lines and check.
    over = true;
    await Promise.all([...processes].map((p) => p.stop('SIGTERM', 20_000)));
    clearInterval(reading);
    drain();
    const check = checker.check(versions);

    // The projection's last writes, then the comparison with the source.
    const replicaStart = Date.now();
    const projection = await projector.settled();
    const replica = await compareWithSource(client, sourceTable, projectionTable);
    const replicaMs = Date.now() - replicaStart;
    if (replica.diffs > 0) report({ phase: 'replica differs', ...replica });
    const result: ChaosResult = {
      ...check,
      kills,
      sigkills,
      sigterms,
      ownerSigkills,
      ownerSigterms,
      badTermExits,
      unexpectedExits,
      badLines: log.badLines,
      elapsedMs: Date.now() - started,
      writeMs,
      catchUpMs,
      removes,
      projectionApplied: projection.applied,
      projectionStale: projection.stale,
      replicaDiffs: replica.diffs,
      replicaMissing: replica.missing,
      replicaExtra: replica.extra,
      replicaDifferent: replica.different,
      replicaMs,
    };
    if (!isClean(result) || result.replicaDiffs > 0 || result.badLines > 0 || result.unexpectedExits > 0) keep = true;
    report({ phase: 'checked', ...result, ...(keep ? { output: dir } : {}) });
    return result;
  } catch (error) {
    keep = true;
    report({ phase: 'failed', error: String(error), output: dir });
    throw error;
  } finally {
    over = true;
    clearInterval(reading);
    await Promise.all([...processes].map((p) => p.kill()));
    if (client && !local) {
      // A shared DynamoDB Local (the test run's): leave no tables behind.
      for (const table of tables) await client.send(new DeleteTableCommand({ TableName: table })).catch(() => {});
    }
    client?.destroy();
    await local?.stop();
    if (!keep) rmSync(dir, { recursive: true, force: true });
  }
};

const isMain = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
if (isMain) {
  const { values } = parseArgs({
    options: {
      changes: { type: 'string' },
      keys: { type: 'string' },
      kills: { type: 'string' },
      workers: { type: 'string' },
      seed: { type: 'string' },
    },
  });
  const num = (v: string | undefined) => (v === undefined ? undefined : Number(v));
  const result = await runChaos({
    changes: num(values.changes) ?? 20_000,
    keys: num(values.keys) ?? 200,
    kills: num(values.kills) ?? 10,
    workers: num(values.workers) ?? 3,
    seed: num(values.seed) ?? 1,
    report: (line) => console.log(JSON.stringify(line)),
  });
  const { changes, lost, orderViolations, unfinishedReplays, staleLast, duplicates, kills, replicaDiffs } = result;
  console.log(JSON.stringify({ chaos: 'worker', changes, lost, orderViolations, unfinishedReplays, staleLast, duplicates, kills, replicaDiffs }));
  process.exitCode = isClean(result) && replicaDiffs === 0 ? 0 : 1;
}
