import { afterEach, describe, expect, it } from 'vitest';
import { defineApp, route } from '../../src/index.js';
import type { ChangeEvent, Clock, Sink } from '../../src/index.js';
import { FakeClock, MemoryLeaseStore, memoryLogger, ScriptedStreams, silentLogger, streamRecords } from '../../src/testing/index.js';
import type { LeaseStore, StreamsApi } from '../../src/worker/ports.js';
import { Worker } from '../../src/worker/worker.js';
import type { WorkerOptions } from '../../src/worker/worker.js';

const STREAM = 'arn:aws:dynamodb:us-east-1:123456789012:table/TaskApp/stream/2026-01-01T00:00:00.000';
const D = 3000;

/** One request a worker's sink served: which worker, which shards, from when to when (fake time). */
interface Delivery {
  readonly worker: string;
  readonly shards: ReadonlySet<string>;
  readonly start: number;
  end: number;
}

/** A sink whose requests take `latencyMs` of fake time and honour the abort signal; it logs every request's span. */
const timedSink = (worker: string, clock: Clock, log: Delivery[], latencyMs: number): Sink<unknown> => ({
  name: 'timed',
  limits: { maxRecords: 10, maxBytes: Infinity },
  preservesOrderWithinRequest: false,
  async send(events, signal) {
    const delivery: Delivery = { worker, shards: new Set(events.map((e) => String((e as ChangeEvent).meta.shardId))), start: clock.now(), end: clock.now() };
    log.push(delivery);
    try {
      await clock.sleep(latencyMs, signal);
    } finally {
      delivery.end = clock.now();
    }
    return { failed: [] };
  },
});

/** Overlapping spans of two workers on one shard (an in-flight request of one while the other delivers). */
const overlaps = (log: readonly Delivery[]) => {
  const found: string[] = [];
  for (const a of log) {
    for (const b of log) {
      if (a.worker >= b.worker) continue;
      const shared = [...a.shards].filter((s) => b.shards.has(s));
      if (shared.length > 0 && a.start < b.end && b.start < a.end) found.push(`${shared.join()} ${a.worker}[${a.start},${a.end}] ${b.worker}[${b.start},${b.end}]`);
    }
  }
  return found;
};

const stallers: { resumeAll(): void }[] = [];

/** Calls of the chosen methods hang while stalled (and resume where they were when released). */
class Staller {
  readonly #stalled = new Map<string, (args: unknown[]) => boolean>();
  #waiters: (() => void)[] = [];
  /** Calls that are hanging now, per method. */
  readonly hanging = new Map<string, number>();

  /** Calls of `method` hang from now on (those whose arguments `when` picks). */
  stall(method: string, when: (args: unknown[]) => boolean = () => true): void {
    this.#stalled.set(method, when);
  }

  constructor() {
    stallers.push(this);
  }

  resumeAll(): void {
    for (const method of [...this.#stalled.keys()]) this.resume(method);
  }

  resume(method: string): void {
    this.#stalled.delete(method);
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
  }

  wrap<T extends object>(target: T): T {
    return new Proxy(target, {
      get: (t, prop, receiver) => {
        const value = Reflect.get(t, prop, receiver) as unknown;
        if (typeof value !== 'function') return value;
        return async (...args: unknown[]) => {
          const method = String(prop);
          while (this.#stalled.get(method)?.(args)) {
            this.hanging.set(method, (this.hanging.get(method) ?? 0) + 1);
            await new Promise<void>((resolve) => this.#waiters.push(resolve));
            this.hanging.set(method, (this.hanging.get(method) ?? 0) - 1);
          }
          return (value as (...a: unknown[]) => unknown).apply(t, args);
        };
      },
    });
  }
}

/** A store that logs the fake time of each successful heartbeat, per worker id (one heartbeat keeps all of a worker's leases). */
const renewalLog = (store: MemoryLeaseStore, clock: Clock) => {
  const at = new Map<string, number[]>();
  const wrapped = new Proxy(store, {
    get: (t, prop, receiver) => {
      const value = Reflect.get(t, prop, receiver) as unknown;
      if (prop !== 'beat' || typeof value !== 'function') return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(t) : value;
      return async (...args: Parameters<LeaseStore['beat']>) => {
        const ok = await store.beat(...args);
        if (ok) at.set(args[1], [...(at.get(args[1]) ?? []), clock.now()]);
        return ok;
      };
    },
  });
  return { store: wrapped, at };
};

/** A host's clock that runs at `rate` times true (fake) time: a clock that drifts. */
const drifting = (clock: FakeClock, rate: number): Clock => {
  const origin = clock.now();
  return { now: () => origin + (clock.now() - origin) * rate, sleep: (ms, signal) => clock.sleep(ms / rate, signal) };
};

/** The longest gap between consecutive renewals in [from, to], the ends counting as renewals. */
const longestGap = (renewals: readonly number[] | undefined, from: number, to: number) => {
  const times = [from, ...(renewals ?? []).filter((t) => t >= from && t <= to), to];
  return Math.max(...times.slice(1).map((t, i) => t - (times[i] as number)));
};

const until = async (condition: () => boolean, timeoutMs = 10_000) => {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 2));
  }
};

/** Keeps fake time moving even when every worker loop hangs (a frozen process's peers still see time pass). */
const ticking: AbortController[] = [];
const keepTimeMoving = (clock: FakeClock) => {
  const stop = new AbortController();
  ticking.push(stop);
  void (async () => {
    while (!stop.signal.aborted) await clock.sleep(50, stop.signal).catch(() => {});
  })();
  return clock;
};

const workers: Worker[] = [];
afterEach(async () => {
  for (const s of stallers.splice(0)) s.resumeAll();
  for (const t of ticking.splice(0)) t.abort();
  await Promise.all(workers.splice(0).map((w) => w.stop()));
});

const makeWorker = (options: Partial<WorkerOptions> & Pick<WorkerOptions, 'streams' | 'leases' | 'clock'> & { sink: Sink<unknown>; workerId: string }) => {
  const { sink, ...rest } = options;
  const worker = new Worker({
    app: defineApp({ table: 'TaskApp', routes: [route('*').to(sink)], retry: { maxAttempts: 2, baseDelayMs: 1, maxDelayMs: 5 } }),
    streamArn: STREAM,
    logger: silentLogger,
    leaseDurationMs: D,
    coordinationIntervalMs: 200,
    pollIntervalMs: 50,
    checkpointIntervalMs: 10 * D,
    discoveryIntervalMs: 500,
    drainTimeoutMs: 500,
    ...rest,
  });
  workers.push(worker);
  return worker;
};

/** `n` changes of one item, each a new version. */
const changes = (records: ReturnType<typeof streamRecords>, shard: number, n: number) =>
  Array.from({ length: n }, (_, v) => records.modify({ PK: `USER#${shard}`, SK: 'TASK#1', Version: v }, { PK: `USER#${shard}`, SK: 'TASK#1', Version: v + 1 }));

describe('Worker lease keeping (time fencing)', () => {
  it('renews on time while DescribeStream hangs for many lease durations, and no peer takes its leases', async () => {
    // Prepare: two shards, two workers, one each; a's DescribeStream then hangs.
    const clock = keepTimeMoving(new FakeClock());
    const records = streamRecords();
    const base = new ScriptedStreams({ streamArn: STREAM });
    for (let s = 0; s < 2; s++) base.addShard({ shardId: `shard-${s}` }).append(`shard-${s}`, changes(records, s, 3));
    const staller = new Staller();
    const { store, at } = renewalLog(new MemoryLeaseStore(), clock);
    const log: Delivery[] = [];
    const a = makeWorker({ workerId: 'a', clock, streams: staller.wrap<StreamsApi>(base), leases: store, sink: timedSink('a', clock, log, 10) });
    const b = makeWorker({ workerId: 'b', clock, streams: base, leases: store, sink: timedSink('b', clock, log, 10) });
    await a.start();
    await b.start();
    await until(() => a.ownedShards.length === 1 && b.ownedShards.length === 1);
    const taken = a.counters.leasesTaken + b.counters.leasesTaken;
    const lost = a.counters.leasesLost;

    // Act: a's discovery hangs for ten lease durations.
    staller.stall('describeShards');
    const from = clock.now();
    await until(() => clock.now() >= from + 10 * D, 20_000);

    // Assess: a renewed on its schedule (every sixth of a lease duration) throughout, lost nothing, b took nothing.
    expect(longestGap(at.get('a'), from, clock.now())).toBeLessThanOrEqual(D / 4);
    expect(a.counters.leasesLost).toBe(lost);
    expect(a.ownedShards).toHaveLength(1);
    expect(a.counters.leasesTaken + b.counters.leasesTaken).toBe(taken);
    // Yet a reports that its discovery stalled.
    expect([a.isLive(), b.isLive()]).toEqual([false, true]);
    staller.resume('describeShards');
  });

  it.each([
    { clocks: 'the same clock', holderRate: 1, peerRate: 1 },
    { clocks: "the holder's clock 1 % slow and the peer's 1 % fast", holderRate: 0.99, peerRate: 1.01 },
  ])('stops delivering a shard whose renewal hangs before a peer can take it, and no two workers deliver at once ($clocks)', async ({ holderRate, peerRate }) => {
    // Prepare: one shard with a steady supply of records; a holds it, then a's renewals hang.
    const clock = keepTimeMoving(new FakeClock());
    const records = streamRecords();
    const streams = new ScriptedStreams({ streamArn: STREAM }).addShard({ shardId: 'shard-1' }).append('shard-1', changes(records, 1, 400));
    const shared = new MemoryLeaseStore();
    const staller = new Staller();
    const log: Delivery[] = [];
    // Each request takes 100 ms: a page of 10 records keeps the shard busy for a second.
    const a = makeWorker({ workerId: 'a', clock: drifting(clock, holderRate), streams, leases: staller.wrap<LeaseStore>(shared), sink: timedSink('a', clock, log, 100), maxRecordsPerRead: 10 });
    await a.start();
    await until(() => log.length > 3);

    // Act: a's heartbeats (and takes, lest it take its lease back) hang; b starts and waits for a to expire.
    staller.stall('beat');
    staller.stall('take');
    const stalledAt = clock.now();
    const b = makeWorker({ workerId: 'b', clock: drifting(clock, peerRate), streams, leases: shared, sink: timedSink('b', clock, log, 100), maxRecordsPerRead: 10 });
    await b.start();
    await until(() => b.ownedShards.length === 1 && log.some((d) => d.worker === 'b'), 20_000);

    // Assess (true time): a stopped delivering within half a lease duration of its clock after its
    // last renewal (before the stall), b took the lease only a full one of its clock after it saw
    // that renewal, and their deliveries never overlapped.
    const lastOfA = Math.max(...log.filter((d) => d.worker === 'a').map((d) => d.end));
    const firstOfB = Math.min(...log.filter((d) => d.worker === 'b').map((d) => d.start));
    expect(overlaps(log)).toEqual([]);
    expect(lastOfA).toBeLessThanOrEqual(stalledAt + D / 2 / holderRate);
    expect(firstOfB).toBeGreaterThanOrEqual(stalledAt + D / peerRate);
    expect(a.ownedShards).toEqual([]);
    expect(a.counters.leasesLost).toBe(1);
    staller.resume('beat');
  });

  it('keeps all its leases with one heartbeat per sixth of a lease duration, not a write per lease', async () => {
    // Prepare: a holds eight shards.
    const clock = keepTimeMoving(new FakeClock());
    const records = streamRecords();
    const streams = new ScriptedStreams({ streamArn: STREAM });
    for (let s = 0; s < 8; s++) streams.addShard({ shardId: `shard-${s}` }).append(`shard-${s}`, changes(records, s, 3));
    const shared = new MemoryLeaseStore();
    const { store, at } = renewalLog(shared, clock);
    const a = makeWorker({ workerId: 'a', clock, streams, leases: store, sink: timedSink('a', clock, [], 10) });
    await a.start();
    await until(() => a.ownedShards.length === 8);
    const lease = { ...shared.capacity.writeBy };

    // Act
    const from = clock.now();
    await until(() => clock.now() >= from + 5 * D, 20_000);

    // Assess: about six heartbeats a lease duration for the whole worker, no lease lost, and no
    // write to a lease item but its checkpoints.
    const beats = (at.get('a') ?? []).filter((t) => t > from && t <= from + 5 * D).length;
    expect(beats).toBeGreaterThanOrEqual(29);
    expect(beats).toBeLessThanOrEqual(31);
    expect(longestGap(at.get('a'), from, from + 5 * D)).toBeLessThanOrEqual(D / 4);
    expect(a.ownedShards).toHaveLength(8);
    expect(a.counters.leasesLost).toBe(0);
    expect(shared.capacity.writeBy['take']).toBe(lease['take']);
    expect(shared.capacity.writeBy['release']).toBe(lease['release']);
  });

  it('keeps renewing while a checkpoint write of the same lease hangs', async () => {
    // Prepare
    const clock = keepTimeMoving(new FakeClock());
    const records = streamRecords();
    const streams = new ScriptedStreams({ streamArn: STREAM }).addShard({ shardId: 'shard-1' }).append('shard-1', changes(records, 1, 3));
    const staller = new Staller();
    const { store, at } = renewalLog(new MemoryLeaseStore(), clock);
    const log: Delivery[] = [];
    const a = makeWorker({ workerId: 'a', clock, streams, leases: staller.wrap<LeaseStore>(store), sink: timedSink('a', clock, log, 10), checkpointIntervalMs: 100 });
    await a.start();
    await until(() => log.length > 0);

    // Act: checkpoints hang for five lease durations, while new records ask for one.
    staller.stall('checkpoint');
    const from = clock.now();
    streams.append('shard-1', changes(records, 2, 3));
    await until(() => (staller.hanging.get('checkpoint') ?? 0) >= 1);
    await until(() => clock.now() >= from + 5 * D, 20_000);

    // Assess
    expect(longestGap(at.get('a'), from, clock.now())).toBeLessThanOrEqual(D / 4);
    expect(a.counters.leasesLost).toBe(0);
    staller.resume('checkpoint');
  });
});

describe('Worker stop', () => {
  it('keeps renewing while a long delivery drains, so no peer takes the lease before it is released', async () => {
    // Prepare: a's sink takes longer than a lease duration per request; b waits for a lease.
    const clock = keepTimeMoving(new FakeClock());
    const records = streamRecords();
    const streams = new ScriptedStreams({ streamArn: STREAM }).addShard({ shardId: 'shard-1' }).append('shard-1', changes(records, 1, 1));
    const shared = new MemoryLeaseStore();
    const log: Delivery[] = [];
    const a = makeWorker({ workerId: 'a', clock, streams, leases: shared, sink: timedSink('a', clock, log, 1.5 * D), drainTimeoutMs: 3 * D });
    await a.start();
    await until(() => log.length === 1);
    const b = makeWorker({ workerId: 'b', clock, streams, leases: shared, sink: timedSink('b', clock, log, 10) });
    await b.start();

    // Act
    await a.stop();
    await until(() => b.ownedShards.length === 1);

    // Assess: a's delivery finished and was checkpointed, then the lease went to b, which re-sent nothing.
    expect(a.counters.leasesLost).toBe(0);
    expect(a.counters.leasesReleased).toBe(1);
    expect(log.map((d) => [d.worker, d.end - d.start])).toEqual([['a', 1.5 * D]]);
    expect(shared.get(STREAM, 'shard-1')?.owner).toBe('b');
  });


  it('removes its heartbeat at stop() even while the answer to a heartbeat that landed is on its way, so peers rebalance at once', async () => {
    // Prepare: a holds shard-1; from now on each heartbeat is applied at once but answered 100 ms later.
    const clock = keepTimeMoving(new FakeClock());
    const records = streamRecords();
    const streams = new ScriptedStreams({ streamArn: STREAM }).addShard({ shardId: 'shard-1' }).append('shard-1', changes(records, 1, 1));
    const shared = new MemoryLeaseStore();
    let slow = false;
    let answering = 0;
    const store = new Proxy(shared, {
      get: (target, prop, receiver) => {
        const value = Reflect.get(target, prop, receiver) as unknown;
        if (typeof value !== 'function') return value;
        if (prop !== 'beat') return (value as (...a: unknown[]) => unknown).bind(target);
        return async (...args: Parameters<LeaseStore['beat']>) => {
          const ok = await shared.beat(...args);
          if (slow) {
            answering++;
            await clock.sleep(100);
            answering--;
          }
          return ok;
        };
      },
    });
    const a = makeWorker({ workerId: 'a', clock, streams, leases: store, sink: timedSink('a', clock, [], 10) });
    await a.start();
    await until(() => a.ownedShards.length === 1);
    slow = true;

    // Act: stop() while a heartbeat's answer is on its way.
    await until(() => answering === 1);
    await a.stop();

    // Assess: the lease was released and the heartbeat removed (the removal used the token that landed).
    expect(shared.get(STREAM, 'shard-1')?.owner).toBeUndefined();
    expect(shared.fleetNow(STREAM).beats.has('a')).toBe(false);
  });

  it('releases a lease whose take was in flight when stop() was called, and starts no reader for it', async () => {
    // Prepare: a worker with no shard yet; the shard appears, and its take hangs.
    const clock = keepTimeMoving(new FakeClock());
    const records = streamRecords();
    const streams = new ScriptedStreams({ streamArn: STREAM });
    const shared = new MemoryLeaseStore();
    const staller = new Staller();
    const log: Delivery[] = [];
    const a = makeWorker({ workerId: 'a', clock, streams, leases: staller.wrap<LeaseStore>(shared), sink: timedSink('a', clock, log, 10) });
    await a.start();
    staller.stall('take');
    streams.addShard({ shardId: 'shard-1' }).append('shard-1', changes(records, 1, 3));
    await until(() => staller.hanging.get('take') === 1);

    // Act: stop while the take hangs, then let the take complete.
    const stopped = a.stop();
    await new Promise((r) => setTimeout(r, 50));
    staller.resume('take');
    await stopped;
    await new Promise((r) => setTimeout(r, 50));

    // Assess: the take went through, yet no reader ran and the lease is free again.
    expect(shared.calls.take).toBe(1);
    expect(a.ownedShards).toEqual([]);
    expect(streams.calls.getShardIterator).toBe(0);
    expect(log).toEqual([]);
    expect(shared.get(STREAM, 'shard-1')?.owner).toBeUndefined();
  });
});

/**
 * A lease table whose chosen calls answer late: `delay` holds the next call of a method (whose
 * arguments `when` picks) for `ms` of the clock's time, then lets it land. `hold` holds one until
 * `until` resolves.
 */
class LateCalls {
  readonly #rules: { method: string; when: (args: unknown[]) => boolean; wait: () => Promise<unknown> }[] = [];
  readonly #listeners: { method: string; when: (args: unknown[]) => boolean; resolve: () => void }[] = [];
  /** Per method, the calls that have landed. */
  readonly landed = new Map<string, number>();

  constructor(readonly clock: Clock) {}

  delay(method: keyof LeaseStore, ms: number, when: (args: unknown[]) => boolean = () => true): this {
    return this.hold(method, () => this.clock.sleep(ms), when);
  }

  /** Resolves when a call of `method` whose arguments `when` picks has landed. */
  whenLanded(method: keyof LeaseStore, when: (args: unknown[]) => boolean = () => true): Promise<void> {
    return new Promise((resolve) => this.#listeners.push({ method, when, resolve }));
  }

  hold(method: keyof LeaseStore, until: () => Promise<unknown>, when: (args: unknown[]) => boolean = () => true): this {
    this.#rules.push({ method, when, wait: until });
    return this;
  }

  wrap(store: LeaseStore): LeaseStore {
    return new Proxy(store, {
      get: (t, prop, receiver) => {
        const value = Reflect.get(t, prop, receiver) as unknown;
        if (typeof value !== 'function') return value;
        return async (...args: unknown[]) => {
          const method = String(prop);
          const i = this.#rules.findIndex((r) => r.method === method && r.when(args));
          if (i >= 0) await this.#rules.splice(i, 1)[0]?.wait();
          const result = (await (value as (...a: unknown[]) => Promise<unknown>).apply(t, args)) as unknown;
          this.landed.set(method, (this.landed.get(method) ?? 0) + 1);
          for (const l of this.#listeners) if (l.method === method && l.when(args)) l.resolve();
          return result;
        };
      },
    }) as LeaseStore;
  }
}

/** Waits until `condition` holds or `ms` of the fake clock pass; the caller asserts the condition. */
const within = async (clock: Clock, ms: number, condition: () => boolean) => {
  // A timer of its own, so that fake time reaches the end even when nothing else waits on the clock.
  let passed = false;
  void clock.sleep(ms).then(() => (passed = true));
  await until(() => condition() || passed, 20_000);
};

const shardsDelivered = (log: readonly Delivery[]) => [...new Set(log.flatMap((d) => [...d.shards]))].sort();

describe('Late lease writes', () => {
  it('writes SHARD_END again when the first write is given up on and then refused, so the children are read', async () => {
    // Prepare: a holds shard-0; its SHARD_END write will hang for a lease duration.
    const clock = new FakeClock();
    const records = streamRecords();
    const streams = new ScriptedStreams({ streamArn: STREAM }).addShard({ shardId: 'shard-0' }).append('shard-0', changes(records, 0, 2));
    const shared = new MemoryLeaseStore();
    const late = new LateCalls(clock).delay('checkpoint', D, ([, checkpoint]) => checkpoint === 'SHARD_END');
    const log: Delivery[] = [];
    const a = makeWorker({ workerId: 'a', clock, streams, leases: late.wrap(shared), sink: timedSink('a', clock, log, 10) });
    await a.start();
    await until(() => log.length > 0);

    // Act: shard-0 splits; its children get records.
    streams.split('shard-0', ['shard-1', 'shard-2']);
    streams.append('shard-1', changes(records, 1, 1)).append('shard-2', changes(records, 2, 1));
    await within(clock, 10 * D, () => shardsDelivered(log).length === 3 && late.landed.get('checkpoint') === 2);

    // Assess: SHARD_END was written again after a renewal, shard-0 was released, both children
    // were read; the late write landed too (and was refused: the counter had moved).
    expect(shardsDelivered(log)).toEqual(['shard-0', 'shard-1', 'shard-2']);
    expect(shared.get(STREAM, 'shard-0')).toMatchObject({ checkpoint: 'SHARD_END', owner: undefined });
    expect(late.landed.get('checkpoint')).toBe(2);
    expect(a.ownedShards.sort()).toEqual(['shard-1', 'shard-2']);
  });

  it('releases a shard whose SHARD_END write was given up on but landed, so a lone worker takes both children', async () => {
    // Prepare: the SHARD_END write hangs until the renewal after it is sent, and lands before that renewal.
    const clock = new FakeClock();
    const records = streamRecords();
    const streams = new ScriptedStreams({ streamArn: STREAM }).addShard({ shardId: 'shard-0' }).append('shard-0', changes(records, 0, 2));
    const shared = new MemoryLeaseStore();
    const isEnd = ([, checkpoint]: unknown[]) => checkpoint === 'SHARD_END';
    const late = new LateCalls(clock);
    const endLanded = late.whenLanded('checkpoint', isEnd);
    let renewAsked!: () => void;
    const renewing = new Promise<void>((r) => (renewAsked = r));
    let endAsked = false;
    late
      .hold('checkpoint', async () => {
        endAsked = true;
        await renewing;
      }, isEnd)
      .hold('beat', async () => {
        renewAsked();
        await endLanded;
      }, () => endAsked);
    const log: Delivery[] = [];
    const a = makeWorker({ workerId: 'a', clock, streams, leases: late.wrap(shared), sink: timedSink('a', clock, log, 10) });
    await a.start();
    await until(() => log.length > 0);

    // Act
    streams.split('shard-0', ['shard-1', 'shard-2']);
    streams.append('shard-1', changes(records, 1, 1)).append('shard-2', changes(records, 2, 1));
    await within(clock, 10 * D, () => shardsDelivered(log).length === 3);

    // Assess: shard-0 is finished and free, and the one worker reads both children.
    expect(shared.get(STREAM, 'shard-0')).toMatchObject({ checkpoint: 'SHARD_END', owner: undefined });
    expect(shardsDelivered(log)).toEqual(['shard-0', 'shard-1', 'shard-2']);
    expect(a.ownedShards.sort()).toEqual(['shard-1', 'shard-2']);
  });

  it('releases a lease whose take landed after the fence, so stop() leaves nothing behind', async () => {
    // Prepare: the first take answers after more than half a lease duration (the fence).
    const clock = new FakeClock();
    const records = streamRecords();
    const streams = new ScriptedStreams({ streamArn: STREAM }).addShard({ shardId: 'shard-1' }).append('shard-1', changes(records, 1, 3));
    const shared = new MemoryLeaseStore();
    const late = new LateCalls(clock).delay('take', 0.6 * D);
    const a = makeWorker({ workerId: 'a', clock, streams, leases: late.wrap(shared), sink: timedSink('a', clock, [], 10) });

    // Act: start() returns after the late take; stop at once.
    await a.start();
    expect(late.landed.get('take')).toBe(1);
    await a.stop();

    // Assess: the lease taken too late to read was released, and counted.
    expect(shared.get(STREAM, 'shard-1')?.owner).toBeUndefined();
    expect(a.counters.leasesReleased).toBe(1);
  });

  it('reads a shard soon after its take landed after the fence: the lease is released and taken again, not left to expire', async () => {
    // Prepare
    const clock = new FakeClock();
    const records = streamRecords();
    const streams = new ScriptedStreams({ streamArn: STREAM }).addShard({ shardId: 'shard-1' }).append('shard-1', changes(records, 1, 3));
    const shared = new MemoryLeaseStore();
    const late = new LateCalls(clock).delay('take', 0.6 * D);
    const log: Delivery[] = [];
    const a = makeWorker({ workerId: 'a', clock, streams, leases: late.wrap(shared), sink: timedSink('a', clock, log, 10) });

    // Act
    await a.start();
    const landedAt = clock.now();
    await within(clock, 2 * D, () => log.length > 0);

    // Assess: read within a few coordination rounds (200 ms), not a lease duration later.
    expect(log.length).toBeGreaterThan(0);
    expect(Math.min(...log.map((d) => d.start)) - landedAt).toBeLessThan(D / 2);
  });

  it('releases its lease at stop() while a heartbeat hangs, and the heartbeat landing later leaves nothing behind', async () => {
    // Prepare: a holds shard-1; the first heartbeat after a delivery hangs until the test lets it
    // land, and stop() is called as it is sent.
    const clock = new FakeClock();
    const records = streamRecords();
    const streams = new ScriptedStreams({ streamArn: STREAM }).addShard({ shardId: 'shard-1' }).append('shard-1', changes(records, 1, 3));
    const shared = new MemoryLeaseStore();
    const logger = memoryLogger();
    const log: Delivery[] = [];
    let land!: () => void;
    const landing = new Promise<void>((r) => (land = r));
    let stopped: Promise<void> | undefined;
    let beats = 0;
    const late = new LateCalls(clock).hold(
      'beat',
      async () => {
        beats = shared.calls.beat;
        stopped = a.stop();
        await landing;
      },
      () => log.length > 0,
    );
    const a = makeWorker({ workerId: 'a', clock, streams, leases: late.wrap(shared), sink: timedSink('a', clock, log, 10), logger });
    await a.start();

    // Act: stop() resolves while the heartbeat hangs (a lease's release never waits for it); then it lands.
    await until(() => stopped !== undefined);
    await stopped;
    const ownerAtStop = shared.get(STREAM, 'shard-1')?.owner;
    land();
    await within(clock, D, () => shared.calls.beat === beats + 1);

    // Assess: the lease was released at stop(), and the late heartbeat changed no lease.
    expect(ownerAtStop).toBeUndefined();
    expect(shared.calls.beat).toBe(beats + 1);
    expect(shared.get(STREAM, 'shard-1')?.owner).toBeUndefined();
    expect(logger.entries.map((e) => e.msg)).toContain('worker stopped; leases released');
  });

  it('releases a lease whose renewal landed after the fence a lease duration after the renewal before, so it is read again sooner than by expiry and never by two at once', async () => {
    // Prepare: a holds shard-1 with records coming; b waits for a lease. a's first renewal after
    // b started hangs for 0.45 D: it is dropped at the fence (D/2 after the renewal before) and lands
    // soon after (at 0.62 D).
    const clock = new FakeClock();
    const records = streamRecords();
    const streams = new ScriptedStreams({ streamArn: STREAM }).addShard({ shardId: 'shard-1' }).append('shard-1', changes(records, 1, 400));
    const shared = new MemoryLeaseStore();
    const log: Delivery[] = [];
    let bStarted = false;
    let hungAt = 0;
    const late = new LateCalls(clock).hold(
      'beat',
      async () => {
        hungAt = clock.now();
        await clock.sleep(0.45 * D);
      },
      () => bStarted,
    );
    const a = makeWorker({ workerId: 'a', clock, streams, leases: late.wrap(shared), sink: timedSink('a', clock, log, 100), maxRecordsPerRead: 10 });
    await a.start();
    await until(() => log.length > 3);
    const b = makeWorker({ workerId: 'b', clock, streams, leases: shared, sink: timedSink('b', clock, log, 100), maxRecordsPerRead: 10 });
    await b.start();
    bStarted = true;

    // Act
    const fence = () => hungAt - D / 6 + D / 2;
    const resumed = () => log.filter((d) => hungAt > 0 && d.start >= fence()).map((d) => d.start);
    await within(clock, 4 * D, () => resumed().length > 0);

    // Assess: a's renewal before the hung one was sent D/6 before it; no delivery ran from the
    // fence until D after that renewal (when a peer could have taken the dropped lease anyway),
    // then the released lease was read again (by a or b) well before the late renewal's counter
    // would have expired (about 1.5 D after the hung renewal was sent); never by both at once.
    expect(hungAt).toBeGreaterThan(0);
    expect(Math.min(...resumed())).toBeGreaterThanOrEqual(hungAt - D / 6 + D);
    expect(Math.min(...resumed())).toBeLessThan(hungAt + 1.25 * D);
    expect(overlaps(log)).toEqual([]);
    expect(a.counters.leasesLost).toBe(1);
    expect(a.counters.leasesReleased).toBe(1);
  });
});
