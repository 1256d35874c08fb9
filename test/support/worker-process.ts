/**
 * A worker process for the multi-process tests, the chaos run and the worker benchmark: one
 * {@link Worker} per stream, all sharing one lease table, every event appended to one NDJSON file
 * through {@link fileSink}. Run it with `node --import tsx test/support/worker-process.ts` (so the
 * pid a test signals is the worker itself, not a launcher) or `npx tsx test/support/worker-process.ts`.
 *
 * Environment:
 * - DYNAMODB_ENDPOINT, LEASE_TABLE, STREAM_ARNS (comma-separated), OUTPUT (the NDJSON file): required.
 * - WORKER_ID: unique per process (a restarted process needs a new one). @default `worker-<pid>`
 * - LEASE_DURATION_MS @default 2000; POLL_INTERVAL_MS @default 50; COORDINATION_INTERVAL_MS @default 200;
 *   CHECKPOINT_INTERVAL_MS @default 500; DRAIN_TIMEOUT_MS @default 5000.
 * - STAGGER_MS: start the first stream's worker at once and the others this much later, so peers
 *   started together tend to take one stream each. @default 0
 * - EXIT_WITH_PARENT=1: stop gracefully when stdin closes (the parent died), so no child outlives its test.
 * - LOG_LEVEL @default 'info'.
 * - LEASE_CALLS_FILE: when set, the lease-table calls of this process are counted (per lease-store
 *   method and per DynamoDB command, with the capacity units DynamoDB reports when asked with
 *   `ReturnConsumedCapacity`) and written there as JSON when the process stops (bench:scale:local).
 *
 * Each delivered line is the change event plus `delivery: { worker, n, at }` (this process's id, a
 * per-process counter, Date.now() when the request was handed to the file sink). Requests stay
 * under 256 KiB, so each is one write(2) to a file opened for appending: lines of peers sharing one
 * file never interleave, and a `kill -9` never leaves half a request behind.
 *
 * Prints one JSON line on stdout once every worker has started:
 * `{"ready":true,"workerId":"...","pid":N,"streams":N,"owned":[...]}`; logs go to stderr.
 * SIGTERM and SIGINT stop every worker (drain, checkpoint, release), then exit 0.
 */
import { writeFileSync } from 'node:fs';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBStreamsClient } from '@aws-sdk/client-dynamodb-streams';
import pino from 'pino';
import { createLogger, defineApp, fileSink, parseStreamArn, route } from '../../src/index.js';
import type { ChangeEvent, Sink } from '../../src/index.js';
import { localClientConfig } from '../../src/local/dynamodb-local.js';
import { dynamoDbLeaseStore, dynamoDbStreamsApi, Worker } from '../../src/worker/index.js';
import type { LeaseStore } from '../../src/worker/index.js';

const env = process.env;

const required = (name: string): string => {
  const value = env[name];
  if (!value) throw new Error(`worker-process: set ${name}`);
  return value;
};

const number = (name: string, fallback: number): number => {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < 0) throw new Error(`worker-process: ${name} must be a number >= 0, got \`${raw}\``);
  return value;
};

const endpoint = required('DYNAMODB_ENDPOINT');
const leaseTable = required('LEASE_TABLE');
const streamArns = required('STREAM_ARNS').split(',').filter(Boolean);
const output = required('OUTPUT');
const workerId = env['WORKER_ID'] || `worker-${process.pid}`;
const leaseDurationMs = number('LEASE_DURATION_MS', 2000);
const pollIntervalMs = number('POLL_INTERVAL_MS', 50);
const coordinationIntervalMs = number('COORDINATION_INTERVAL_MS', 200);
const checkpointIntervalMs = number('CHECKPOINT_INTERVAL_MS', 500);
const drainTimeoutMs = number('DRAIN_TIMEOUT_MS', 5000);
const staggerMs = number('STAGGER_MS', 0);

// The workers bind `workerId` themselves; `log` is this file's own lines.
const logger = createLogger({ destination: pino.destination({ dest: 2, sync: true }) });
const log = logger.child({ workerId });

/** The file sink with a delivery stamp per line, in requests small enough for one write(2). */
const stampedFileSink = (): Sink => {
  const inner = fileSink<unknown>({ path: output });
  let n = 0;
  return {
    name: 'file',
    limits: { maxRecords: 200, maxBytes: 256 * 1024 },
    preservesOrderWithinRequest: inner.preservesOrderWithinRequest,
    send: (events: readonly ChangeEvent[], signal: AbortSignal) => {
      const at = Date.now();
      return inner.send(
        events.map((event) => ({ ...event, delivery: { worker: workerId, n: n++, at } })),
        signal,
      );
    },
  };
};

const clientConfig = { ...localClientConfig(endpoint), maxAttempts: 3 };
const dynamo = new DynamoDBClient(clientConfig);
const leaseCallsFile = env['LEASE_CALLS_FILE'];
/** Lease-table calls of this process: per store method, per DynamoDB command, and the capacity units reported. */
const leaseCalls = { methods: {} as Record<string, number>, commands: {} as Record<string, number>, capacityUnits: 0, readUnits: 0, writeUnits: 0 };
if (leaseCallsFile) {
  dynamo.middlewareStack.add(
    (next, context) => async (args) => {
      const command = context.commandName ?? 'unknown';
      leaseCalls.commands[command] = (leaseCalls.commands[command] ?? 0) + 1;
      (args.input as { ReturnConsumedCapacity?: string }).ReturnConsumedCapacity = 'TOTAL';
      const result = await next(args);
      const consumed = (result.output as { ConsumedCapacity?: { CapacityUnits?: number; ReadCapacityUnits?: number; WriteCapacityUnits?: number } }).ConsumedCapacity;
      leaseCalls.capacityUnits += consumed?.CapacityUnits ?? 0;
      if (command === 'GetItemCommand' || command === 'ScanCommand') leaseCalls.readUnits += consumed?.CapacityUnits ?? 0;
      else leaseCalls.writeUnits += consumed?.CapacityUnits ?? 0;
      return result;
    },
    { step: 'initialize', name: 'countLeaseCalls' },
  );
}
/** The lease store of one worker, counted per method when LEASE_CALLS_FILE is set. */
const leaseStore = (): LeaseStore => {
  const store = dynamoDbLeaseStore({ tableName: leaseTable, client: dynamo });
  if (!leaseCallsFile) return store;
  return new Proxy(store, {
    get: (target, prop, receiver) => {
      const value = Reflect.get(target, prop, receiver) as unknown;
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        leaseCalls.methods[String(prop)] = (leaseCalls.methods[String(prop)] ?? 0) + 1;
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
};
const streamsClient = new DynamoDBStreamsClient(clientConfig);
const sink = stampedFileSink();
const workers: Worker[] = [];

let stopping: Promise<void> | undefined;
const stopAll = (reason: string): Promise<void> => {
  stopping ??= (async () => {
    log.info({ reason }, 'stopping every worker');
    const results = await Promise.allSettled(workers.map((w) => w.stop()));
    if (leaseCallsFile) writeFileSync(leaseCallsFile, `${JSON.stringify({ workerId, ...leaseCalls })}\n`);
    dynamo.destroy();
    streamsClient.destroy();
    const failed = results.filter((r) => r.status === 'rejected');
    if (failed.length > 0) {
      log.error({ err: failed[0]?.reason }, 'graceful stop failed');
      process.exit(1);
    }
    log.info({}, 'stopped (each worker logged whether it released all its leases)');
    process.exit(0);
  })();
  return stopping;
};

process.once('SIGTERM', () => void stopAll('SIGTERM'));
process.once('SIGINT', () => void stopAll('SIGINT'));
if (env['EXIT_WITH_PARENT'] === '1') {
  process.stdin.on('close', () => void stopAll('parent gone'));
  process.stdin.resume();
}

const startWorker = async (streamArn: string): Promise<void> => {
  const table = parseStreamArn(streamArn)?.table ?? 'unknown';
  const worker = new Worker({
    app: defineApp({ table, routes: [route('*').to(sink)] }),
    streamArn,
    streams: dynamoDbStreamsApi({ client: streamsClient }),
    leases: leaseStore(),
    workerId,
    logger: logger.child({ table }),
    leaseDurationMs,
    pollIntervalMs,
    coordinationIntervalMs,
    checkpointIntervalMs,
    drainTimeoutMs,
  });
  if (stopping) return;
  workers.push(worker);
  await worker.start();
};

try {
  const [first, ...rest] = streamArns;
  if (first === undefined) throw new Error('worker-process: STREAM_ARNS names no stream');
  await startWorker(first);
  if (staggerMs > 0 && rest.length > 0) await new Promise((resolve) => setTimeout(resolve, staggerMs));
  await Promise.all(rest.map(startWorker));
  if (!stopping) {
    process.stdout.write(`${JSON.stringify({ ready: true, workerId, pid: process.pid, streams: workers.length, owned: workers.flatMap((w) => w.ownedShards) })}\n`);
  }
} catch (error) {
  log.error({ err: error }, 'worker process failed to start');
  process.exit(1);
}
