import { afterEach, describe, expect, it } from 'vitest';
import { defineApp, route, systemClock } from '../../src/index.js';
import type { ChangeEvent, Sink } from '../../src/index.js';
import { memoryLogger, MemoryLeaseStore, MemorySink, ScriptedStreams, streamRecords } from '../../src/testing/index.js';
import type { LogEntry } from '../../src/testing/index.js';
import { Worker } from '../../src/worker/worker.js';
import type { WorkerOptions } from '../../src/worker/worker.js';

const STREAM = 'arn:aws:dynamodb:us-east-1:123456789012:table/TaskApp/stream/2026-01-01T00:00:00.000';
type Task = { PK: string; SK: string; Version: number };

const version = (e: unknown) => Number((e as ChangeEvent<Task>).newImage?.Version);
const keyOf = (e: unknown) => String((e as ChangeEvent<Task>).key['PK']);

/** Changes of `keys` items, `versions` each, round-robin, from one record factory (increasing sequence numbers). */
const changes = (records: ReturnType<typeof streamRecords>, keys: number, versions: number, from = 1, keyOffset = 0) => {
  const out = [];
  for (let v = from; v < from + versions; v++) {
    for (let k = keyOffset; k < keyOffset + keys; k++) out.push(records.modify({ PK: `USER#${k}`, SK: 'TASK#1', Version: v - 1 }, { PK: `USER#${k}`, SK: 'TASK#1', Version: v }));
  }
  return out;
};

const until = async (condition: () => boolean, timeoutMs = 10_000) => {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
};

const workers: Worker[] = [];
afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.stop()));
});

const makeWorker = (options: Partial<WorkerOptions> & Pick<WorkerOptions, 'streams' | 'leases'> & { sink: Sink<unknown>; entries?: LogEntry[] }) => {
  const { sink, entries, ...rest } = options;
  const worker = new Worker({
    app: defineApp({ table: 'TaskApp', routes: [route('*').to(sink)], retry: { maxAttempts: 2, baseDelayMs: 1, maxDelayMs: 5 } }),
    streamArn: STREAM,
    logger: memoryLogger(entries),
    clock: systemClock,
    // Fenced at half of it: long enough that a busy test machine's event-loop stalls drop no lease.
    leaseDurationMs: 1000,
    coordinationIntervalMs: 50,
    pollIntervalMs: 10,
    checkpointIntervalMs: 20,
    discoveryIntervalMs: 100,
    drainTimeoutMs: 500,
    ...rest,
  });
  workers.push(worker);
  return worker;
};

/** Each key's first deliveries, in order: what a consumer that drops duplicates sees. */
const firstDeliveries = (events: readonly unknown[]) => {
  const seen = new Set<string>();
  const byKey = new Map<string, number[]>();
  for (const e of events) {
    const id = `${keyOf(e)}#${version(e)}`;
    if (seen.has(id)) continue;
    seen.add(id);
    byKey.set(keyOf(e), [...(byKey.get(keyOf(e)) ?? []), version(e)]);
  }
  return byKey;
};

describe('Worker', () => {
  it('reads a shard from the oldest record, delivers in order and checkpoints the watermark', async () => {
    // Prepare
    const records = streamRecords();
    const batch = changes(records, 5, 4);
    const streams = new ScriptedStreams({ streamArn: STREAM }).addShard({ shardId: 'shard-1' }).append('shard-1', batch);
    const leases = new MemoryLeaseStore();
    const sink = new MemorySink();
    const worker = makeWorker({ streams, leases, sink });

    // Act
    await worker.start();
    await until(() => sink.delivered.length === 20);
    await worker.stop();

    // Assess
    for (const versions of firstDeliveries(sink.delivered).values()) expect(versions).toEqual([1, 2, 3, 4]);
    expect(sink.delivered).toHaveLength(20);
    expect(leases.get(STREAM, 'shard-1')).toMatchObject({ checkpoint: batch[19]?.dynamodb.SequenceNumber, owner: undefined });
  });

  it('reads a child shard only after its parent is done, so a key keeps its order across a split', async () => {
    // Prepare: the parent holds versions 1-3 of every key, each child versions 4-6 of half the keys.
    const records = streamRecords();
    const streams = new ScriptedStreams({ streamArn: STREAM }).addShard({ shardId: 'parent' }).append('parent', changes(records, 4, 3));
    streams.split('parent', ['child-a', 'child-b']);
    streams.append('child-a', changes(records, 2, 3, 4, 0)).append('child-b', changes(records, 2, 3, 4, 2));
    const leases = new MemoryLeaseStore();
    const sink = new MemorySink();
    const worker = makeWorker({ streams, leases, sink });

    // Act
    await worker.start();
    await until(() => sink.delivered.length === 24);

    // Assess
    for (const versions of firstDeliveries(sink.delivered).values()) expect(versions).toEqual([1, 2, 3, 4, 5, 6]);
    const lastParent = sink.delivered.findIndex((e) => version(e) === 3 && keyOf(e) === 'USER#3');
    const firstChild = sink.delivered.findIndex((e) => version(e) === 4);
    expect(lastParent).toBeLessThan(firstChild);
    await until(() => leases.get(STREAM, 'parent')?.checkpoint === 'SHARD_END');
    expect(leases.get(STREAM, 'child-a')?.parents).toEqual(['parent']);
  });

  it('shares shards evenly between workers', async () => {
    // Prepare: four shards, two workers.
    const records = streamRecords();
    const streams = new ScriptedStreams({ streamArn: STREAM });
    for (let s = 0; s < 4; s++) streams.addShard({ shardId: `shard-${s}` }).append(`shard-${s}`, changes(records, 2, 3, 1, s * 2));
    const leases = new MemoryLeaseStore();
    const sink = new MemorySink();
    const a = makeWorker({ streams, leases, sink, workerId: 'a' });
    const b = makeWorker({ streams, leases, sink, workerId: 'b' });

    // Act
    await a.start();
    await b.start();
    await until(() => a.ownedShards.length === 2 && b.ownedShards.length === 2, 5000);
    await until(() => sink.delivered.length >= 24);

    // Assess: every change arrived, each key in order.
    for (const versions of firstDeliveries(sink.delivered).values()) expect(versions).toEqual([1, 2, 3]);
    expect(new Set([...a.ownedShards, ...b.ownedShards]).size).toBe(4);
  });

  it('lists again when a peer releases a lease while its own list was being read (the marker read before the list decides)', async () => {
    // Prepare: one shard held by 'b'; 'a' (first by id, so the shard is its share) joins. Its first
    // list returns while 'b' still owns the lease, but only after 'b' has handed it back and moved
    // the marker: the fleet read after that list already counts the release.
    const records = streamRecords();
    const streams = new ScriptedStreams({ streamArn: STREAM });
    streams.addShard({ shardId: 'shard-0' }).append('shard-0', changes(records, 1, 2));
    const shared = new MemoryLeaseStore();
    const sink = new MemorySink();
    const b = makeWorker({ streams, leases: shared, sink, workerId: 'b', fullListIntervalMs: 60_000 });
    await b.start();
    await until(() => b.ownedShards.length === 1);
    let held = false;
    const stale = new Proxy(shared, {
      get(target, property) {
        if (property !== 'list') {
          // The store keeps its state in #private fields: its methods must run on it, not on the proxy.
          const value: unknown = Reflect.get(target, property, target);
          return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
        }
        return async (streamArn: string) => {
          const leases = await target.list(streamArn);
          if (!held && leases.some((l) => l.owner === 'b') && (await target.fleet(streamArn, true)).beats.has('a')) {
            held = true;
            await until(() => b.ownedShards.length === 0, 5000);
            await new Promise((r) => setTimeout(r, 100)); // the hand-back's touch lands
          }
          return leases;
        };
      },
    });
    const a = makeWorker({ streams, leases: stale, sink, workerId: 'a', fullListIntervalMs: 60_000 });

    // Act
    await a.start();

    // Assess: 'a' takes the shard long before its next full read (60 s).
    await until(() => a.ownedShards.length === 1, 3000);
    expect(held).toBe(true);
  });

  it('releases its leases on stop, so a peer takes over at once and resumes at the checkpoint', async () => {
    // Prepare
    const records = streamRecords();
    const streams = new ScriptedStreams({ streamArn: STREAM }).addShard({ shardId: 'shard-1' }).append('shard-1', changes(records, 3, 2));
    const leases = new MemoryLeaseStore();
    const sink = new MemorySink();
    const a = makeWorker({ streams, leases, sink, workerId: 'a' });
    await a.start();
    await until(() => sink.delivered.length === 6);

    // Act
    await a.stop();
    streams.append('shard-1', changes(records, 3, 1, 3));
    const b = makeWorker({ streams, leases, sink, workerId: 'b', leaseDurationMs: 60_000 });
    const startedAt = Date.now();
    await b.start();
    await until(() => sink.delivered.length === 9);

    // Assess: b took the released lease without waiting for it to expire, and re-sent nothing.
    expect(Date.now() - startedAt).toBeLessThan(2000);
    expect(b.ownedShards).toEqual(['shard-1']);
    expect(sink.delivered).toHaveLength(9);
  });

  it('takes over the shards of a worker that stopped renewing, after a lease duration', async () => {
    // Prepare: worker a's lease table calls hang, as if its process froze.
    const records = streamRecords();
    const streams = new ScriptedStreams({ streamArn: STREAM }).addShard({ shardId: 'shard-1' }).append('shard-1', changes(records, 2, 2));
    const shared = new MemoryLeaseStore();
    let frozen = false;
    const hang = new Promise<never>(() => {});
    const frozenStore = new Proxy(shared, {
      get: (target, prop, receiver) => {
        const value = Reflect.get(target, prop, receiver) as unknown;
        return typeof value === 'function' ? (...args: unknown[]) => (frozen ? hang : (value as (...a: unknown[]) => unknown).apply(target, args)) : value;
      },
    });
    const sink = new MemorySink();
    const a = makeWorker({ streams, leases: frozenStore, sink, workerId: 'a', leaseDurationMs: 300 });
    await a.start();
    await until(() => sink.delivered.length === 4);
    frozen = true;
    workers.splice(workers.indexOf(a), 1); // a can never stop cleanly

    // Act
    streams.append('shard-1', changes(records, 2, 1, 3));
    const b = makeWorker({ streams, leases: shared, sink, workerId: 'b', leaseDurationMs: 300 });
    const startedAt = Date.now();
    await b.start();
    await until(() => b.ownedShards.length === 1, 3000);

    // Assess: within two lease durations (300 ms each) plus a coordination round.
    expect(Date.now() - startedAt).toBeLessThan(2 * 300 + 500); // two lease durations, plus scheduling slack on a busy machine
    await until(() => new Set(sink.delivered.map((e) => `${keyOf(e)}#${version(e)}`)).size === 6);
  });

  it('renews an expired iterator from the checkpoint without losing a record', async () => {
    // Prepare
    const records = streamRecords();
    const streams = new ScriptedStreams({ streamArn: STREAM }).addShard({ shardId: 'shard-1' }).append('shard-1', changes(records, 2, 2));
    const sink = new MemorySink();
    const worker = makeWorker({ streams, leases: new MemoryLeaseStore(), sink });
    await worker.start();
    await until(() => sink.delivered.length === 4);

    // Act
    streams.expireIterators();
    streams.append('shard-1', changes(records, 2, 1, 3));
    await until(() => sink.delivered.length >= 6);

    // Assess
    expect(worker.counters.iteratorRenewals).toBeGreaterThanOrEqual(1);
    for (const versions of firstDeliveries(sink.delivered).values()) expect(versions).toEqual([1, 2, 3]);
  });

  it('stops a shard whose records past the checkpoint were trimmed, loudly, by default', async () => {
    // Prepare: the lease's checkpoint is older than the oldest record the shard keeps.
    const records = streamRecords();
    const batch = changes(records, 1, 4);
    const streams = new ScriptedStreams({ streamArn: STREAM }).addShard({ shardId: 'shard-1' }).append('shard-1', batch);
    const leases = new MemoryLeaseStore();
    await leases.create({ streamArn: STREAM, shardId: 'shard-1', parents: [], checkpoint: batch[0]?.dynamodb.SequenceNumber as string });
    streams.trim('shard-1', batch[1]?.dynamodb.SequenceNumber as string);
    const entries: LogEntry[] = [];
    const sink = new MemorySink();
    const worker = makeWorker({ streams, leases, sink, entries });

    // Act
    await worker.start();
    await until(() => worker.status()[0]?.state === 'failed');

    // Assess
    expect(sink.delivered).toHaveLength(0);
    expect(worker.counters.trimmedGaps).toBe(1);
    expect(entries.some((e) => e.level === 'error' && e.msg.includes("onTrimmedData: 'skip'"))).toBe(true);
    expect(worker.isLive()).toBe(false);
  });

  it("skips trimmed records with onTrimmedData 'skip' and reports the lost range", async () => {
    // Prepare
    const records = streamRecords();
    const batch = changes(records, 1, 4);
    const streams = new ScriptedStreams({ streamArn: STREAM }).addShard({ shardId: 'shard-1' }).append('shard-1', batch);
    const leases = new MemoryLeaseStore();
    await leases.create({ streamArn: STREAM, shardId: 'shard-1', parents: [], checkpoint: batch[0]?.dynamodb.SequenceNumber as string });
    streams.trim('shard-1', batch[1]?.dynamodb.SequenceNumber as string);
    const entries: LogEntry[] = [];
    const sink = new MemorySink();
    const worker = makeWorker({ streams, leases, sink, entries, onTrimmedData: 'skip' });

    // Act
    await worker.start();
    await until(() => sink.delivered.length === 2);

    // Assess: versions 3 and 4 arrived; the log names the gap (after version 1, before version 3).
    expect(sink.delivered.map(version)).toEqual([3, 4]);
    const gap = entries.find((e) => e.level === 'error' && e.msg.startsWith('trimmed records skipped'));
    expect(gap?.obj).toMatchObject({ lostAfter: batch[0]?.dynamodb.SequenceNumber, resumedAt: batch[2]?.dynamodb.SequenceNumber });
  });

  it('reads a blocked page again from the watermark and does not resend what was done', async () => {
    // Prepare: without a DLQ, key 0's version 2 fails three times (two engine attempts each read).
    const records = streamRecords();
    const streams = new ScriptedStreams({ streamArn: STREAM }).addShard({ shardId: 'shard-1' }).append('shard-1', changes(records, 3, 3));
    const sink = new MemorySink().failWhere((e) => keyOf(e) === 'USER#0' && version(e) === 2, { times: 3 });
    const worker = makeWorker({ streams, leases: new MemoryLeaseStore(), sink });

    // Act
    await worker.start();
    await until(() => new Set(sink.delivered.map((e) => `${keyOf(e)}#${version(e)}`)).size === 9);

    // Assess: every change once, each key in order.
    expect(sink.delivered).toHaveLength(9);
    for (const versions of firstDeliveries(sink.delivered).values()) expect(versions).toEqual([1, 2, 3]);
  });

  it("starts new shards at LATEST on the very first start when asked", async () => {
    // Prepare
    const records = streamRecords();
    const streams = new ScriptedStreams({ streamArn: STREAM }).addShard({ shardId: 'shard-1' }).append('shard-1', changes(records, 1, 2));
    const sink = new MemorySink();
    const worker = makeWorker({ streams, leases: new MemoryLeaseStore(), sink, initialPosition: 'LATEST' });

    // Act
    await worker.start();
    await until(() => worker.status()[0]?.lastReadAt !== undefined);
    streams.append('shard-1', changes(records, 1, 1, 3));
    await until(() => sink.delivered.length === 1);

    // Assess
    expect(sink.delivered.map(version)).toEqual([3]);
  });
});

describe('Worker housekeeping', () => {
  it('removes the lease of a finished shard once the shard has left the stream', async () => {
    // Prepare: a closed parent whose records are all done, and its child.
    const records = streamRecords();
    const streams = new ScriptedStreams({ streamArn: STREAM }).addShard({ shardId: 'parent' }).append('parent', changes(records, 1, 1));
    streams.split('parent', ['child-a', 'child-b']);
    const leases = new MemoryLeaseStore();
    const sink = new MemorySink();
    const worker = makeWorker({ streams, leases, sink, discoveryIntervalMs: 20 });
    await worker.start();
    await until(() => leases.get(STREAM, 'parent')?.checkpoint === 'SHARD_END');

    // Act: 24 h later the parent is trimmed away.
    streams.removeShard('parent');
    await until(() => leases.get(STREAM, 'parent') === undefined);

    // Assess: the children keep their leases and are read.
    expect(leases.get(STREAM, 'child-a')).toBeDefined();
    expect(sink.delivered).toHaveLength(1);
  });
});
