import { afterEach, describe, expect, it } from 'vitest';
import { defineApp, route } from '../../src/index.js';
import type { ChangeEvent, Clock, Sink } from '../../src/index.js';
import { FakeClock, MemoryLeaseStore, MemorySink, ScriptedStreams, silentLogger, streamRecords } from '../../src/testing/index.js';
import type { LeaseStore } from '../../src/worker/ports.js';
import { Worker } from '../../src/worker/worker.js';
import type { WorkerOptions } from '../../src/worker/worker.js';

const STREAM = 'arn:aws:dynamodb:us-east-1:123456789012:table/TaskApp/stream/2026-01-01T00:00:00.000';
type Task = { PK: string; SK: string; Version: number };

const version = (e: unknown) => Number((e as ChangeEvent<Task>).newImage?.Version);
const keyOf = (e: unknown) => String((e as ChangeEvent<Task>).key['PK']);
const idOf = (e: unknown) => `${keyOf(e)}#${version(e)}`;

/** Changes of `keys` items, `versions` each, round-robin, from one record factory (increasing sequence numbers). */
const changes = (records: ReturnType<typeof streamRecords>, keys: number, versions: number, from = 1) => {
  const out = [];
  for (let v = from; v < from + versions; v++) {
    for (let k = 0; k < keys; k++) out.push(records.modify({ PK: `USER#${k}`, SK: 'TASK#1', Version: v - 1 }, { PK: `USER#${k}`, SK: 'TASK#1', Version: v }));
  }
  return out;
};

/** Waits in real time; the fake clocks run on their own meanwhile. */
const until = async (condition: () => boolean, timeoutMs = 10_000) => {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
};

/** A clock that stops for good when frozen: no sleep started or pending ever ends, as in a killed process. */
class FreezableClock implements Clock {
  frozen = false;
  readonly #inner = new FakeClock();

  now(): number {
    return this.#inner.now();
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#inner.sleep(ms, signal).then(
        () => !this.frozen && resolve(),
        (error: unknown) => !this.frozen && reject(error),
      );
    });
  }
}

/** The store seen through a process that can die: once `frozen`, every call hangs. */
const freezable = (store: LeaseStore, isFrozen: () => boolean): LeaseStore => {
  const hang = new Promise<never>(() => {});
  return new Proxy(store, {
    get: (target, prop, receiver) => {
      const value = Reflect.get(target, prop, receiver) as unknown;
      return typeof value === 'function' ? (...args: unknown[]) => (isFrozen() ? hang : (value as (...a: unknown[]) => unknown).apply(target, args)) : value;
    },
  });
};

const workers: Worker[] = [];
afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.stop()));
});

const makeWorker = (options: Partial<WorkerOptions> & Pick<WorkerOptions, 'streams' | 'leases'> & { sink: Sink<unknown> }) => {
  const { sink, ...rest } = options;
  const worker = new Worker({
    app: defineApp({ table: 'TaskApp', routes: [route('*').to(sink)], retry: { maxAttempts: 2, baseDelayMs: 1, maxDelayMs: 5 } }),
    streamArn: STREAM,
    logger: silentLogger,
    clock: new FakeClock(),
    leaseDurationMs: 3000,
    coordinationIntervalMs: 500,
    pollIntervalMs: 100,
    checkpointIntervalMs: 60_000,
    discoveryIntervalMs: 10_000,
    drainTimeoutMs: 1000,
    ...rest,
  });
  workers.push(worker);
  return worker;
};

describe('ShardReader position: a LATEST start pins its position to the first record read', () => {
  it('delivers every record from the first read on when the first page is blocked, then the sink recovers', async () => {
    // Prepare: two records before the worker starts (LATEST skips them); no DLQ, so the first new
    // record's failures (4: two engine attempts on each of two reads) block its lane.
    const records = streamRecords();
    const streams = new ScriptedStreams({ streamArn: STREAM }).addShard({ shardId: 'shard-1' }).append('shard-1', changes(records, 1, 2));
    const leases = new MemoryLeaseStore();
    const sink = new MemorySink().failWhere((e) => keyOf(e) === 'USER#0' && version(e) === 3, { times: 4 });
    const worker = makeWorker({ streams, leases, sink, initialPosition: 'LATEST' });
    await worker.start();
    await until(() => worker.status()[0]?.lastReadAt !== undefined);

    // Act: three items change twice each; USER#0's version 3 is the first record read.
    const fresh = changes(records, 3, 2, 3);
    streams.append('shard-1', fresh);
    await until(() => new Set(sink.delivered.map(idOf)).size === 6);

    // Assess: nothing from before the start, everything after it, each key in order.
    expect(sink.attempts.filter((e) => version(e) < 3)).toEqual([]);
    expect(new Set(sink.delivered.map(idOf))).toEqual(new Set(['USER#0#3', 'USER#1#3', 'USER#2#3', 'USER#0#4', 'USER#1#4', 'USER#2#4']));
    for (const k of [0, 1, 2]) expect(sink.delivered.filter((e) => keyOf(e) === `USER#${k}`).map(version)).toEqual([3, 4]);
    await worker.stop();
    expect(leases.get(STREAM, 'shard-1')?.checkpoint).toBe(fresh.at(-1)?.dynamodb.SequenceNumber);
  });

  it('writes the pinned position before delivering, so a new owner after a crash delivers the first page', async () => {
    // Prepare: worker a starts at LATEST; its sink never answers, as if the process died in its first delivery.
    const records = streamRecords();
    const streams = new ScriptedStreams({ streamArn: STREAM }).addShard({ shardId: 'shard-1' }).append('shard-1', changes(records, 1, 1));
    const shared = new MemoryLeaseStore();
    const clockA = new FreezableClock();
    const sinkA = new MemorySink();
    let crashed = false;
    const hangingSink: Sink<unknown> = {
      name: 'memory',
      limits: { maxRecords: 10, maxBytes: Infinity },
      preservesOrderWithinRequest: false,
      send: (events) => {
        sinkA.attempts.push(...(events as ChangeEvent[]));
        crashed = true;
        clockA.frozen = true;
        return new Promise(() => {});
      },
    };
    const a = makeWorker({ streams, leases: freezable(shared, () => crashed), sink: hangingSink, workerId: 'a', clock: clockA, initialPosition: 'LATEST' });
    workers.splice(workers.indexOf(a), 1); // a dies: it is never stopped
    await a.start();
    await until(() => a.status()[0]?.lastReadAt !== undefined);
    const firstPage = changes(records, 2, 2, 2);
    streams.append('shard-1', firstPage);
    await until(() => crashed);
    expect(shared.get(STREAM, 'shard-1')?.checkpoint).toBe(`AT_SEQUENCE_NUMBER:${firstPage[0]?.dynamodb.SequenceNumber}`);

    // Act: worker b starts on the same lease table, takes the expired lease and reads on from it.
    const sinkB = new MemorySink();
    const b = makeWorker({ streams, leases: shared, sink: sinkB, workerId: 'b' });
    await b.start();
    await until(() => new Set(sinkB.delivered.map(idOf)).size === 4);

    // Assess: b delivered the records a read, and only those.
    expect(sinkA.attempts.length).toBeGreaterThan(0);
    expect(new Set(sinkB.delivered.map(idOf))).toEqual(new Set(['USER#0#2', 'USER#1#2', 'USER#0#3', 'USER#1#3']));
    expect(sinkB.attempts.filter((e) => version(e) < 2)).toEqual([]);
  });
});
