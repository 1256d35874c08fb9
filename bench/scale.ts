/**
 * Fleet simulation: 16 real `Worker`s in one process over the scripted streams fake (1,024 open
 * shards plus closed parents, splits while it runs) and a memory lease table that meters DynamoDB
 * capacity as the service bills it, on a virtual clock, so an hour of fleet time runs in minutes.
 * Prints JSON lines; the last one is
 *   {"bench":"scale","shards":1024,"workers":16,"balancedMs":N,"failoverMs":N,"leaseDurationMs":N,
 *    "leaseRcuPerShardHour":N,"leaseWcuPerShardHour":N,"vsKclLeaseCost":R,"describeStreamPerSec":N,
 *    "heapBytesPerShard":N}
 *
 * Timeline (virtual): the fleet starts at 0; a worker is frozen (SIGKILL: no timer fires, no call
 * answers, nothing released) at 1/4 of the run; a 17th worker joins at 1/2; records trickle into
 * every shard and one open shard splits every `SCALE_SPLIT_EVERY_S`.
 * - balancedMs: the longest time, over the three fleet changes, until every live worker reads
 *   within one shard of its fair share (readable shards / live workers) and every readable shard is read.
 * - failoverMs: from the freeze until a live worker has started reading (GetShardIterator) each
 *   shard the frozen worker read.
 * - leaseRcuPerShardHour / leaseWcuPerShardHour: units metered over the whole run (start-up,
 *   failover, join and splits included) over shard-hours (open shards x hours).
 * - vsKclLeaseCost: ours (RCU + WCU) over KCL 3's schedule for the same fleet (see kclModel and
 *   BENCHMARKS.md for the formula and its sources).
 * - heapBytesPerShard: heap growth of the whole fleet (after a forced GC) over the lease count.
 *
 * Environment: SCALE_MINUTES (virtual run length, default 60), SCALE_SHARDS (open shards, 1024),
 * SCALE_WORKERS (16), SCALE_LEASE_MS (lease duration, 10000), SCALE_RECORD_EVERY_S (per shard,
 * default 10), SCALE_SPLIT_EVERY_S (default 120), SCALE_SEED (1).
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { defineApp, route } from '../src/index.js';
import type { Clock, Sink } from '../src/index.js';
import { MemoryLeaseStore, ScriptedStreams, seededRandom, silentLogger, streamRecords } from '../src/testing/index.js';
import { leaseItemBytes } from '../src/testing/memory-lease-store.js';
import type { Lease, LeaseStore, StreamsApi } from '../src/worker/ports.js';
import { Worker } from '../src/worker/worker.js';
import { HeapClock } from './scale-clock.js';

const env = (name: string, fallback: number): number => {
  const raw = process.env[name];
  const value = raw === undefined ? fallback : Number(raw);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name} must be a number > 0, got \`${String(raw)}\``);
  return value;
};

const MINUTES = env('SCALE_MINUTES', 60);
const SHARDS = env('SCALE_SHARDS', 1024);
const WORKERS = env('SCALE_WORKERS', 16);
const D = env('SCALE_LEASE_MS', 10_000);
const RECORD_EVERY_S = env('SCALE_RECORD_EVERY_S', 10);
const SPLIT_EVERY_S = env('SCALE_SPLIT_EVERY_S', 120);
const SEED = env('SCALE_SEED', 1);
const RUN_MS = MINUTES * 60_000;
/** Closed parents at the start: a quarter of the open shards are children of them (two each). */
const PARENTS = Math.floor(SHARDS / 8);

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const heapNow = () => {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
};

const never = <T>(): Promise<T> => new Promise<T>(() => {});

/** One worker process seen through its doors, so the bench can freeze it (SIGKILL) and see what it reads. */
class Member {
  frozen = false;
  worker!: Worker;
  constructor(readonly id: string) {}

  clock(base: Clock): Clock {
    return {
      now: () => base.now(),
      sleep: (ms, signal) =>
        this.frozen
          ? never()
          : base.sleep(ms, signal).then(
              () => (this.frozen ? never<void>() : undefined),
              (error: unknown) => (this.frozen ? never<void>() : Promise.reject(error)),
            ),
    };
  }

  /** Every method of `target`: a frozen member's calls never answer. */
  door<T extends object>(target: T, spy?: (method: string, args: unknown[]) => void): T {
    return new Proxy(target, {
      get: (t, prop, receiver) => {
        const value = Reflect.get(t, prop, receiver) as unknown;
        if (typeof value !== 'function') return value;
        return async (...args: unknown[]) => {
          if (this.frozen) return never();
          spy?.(String(prop), args);
          const result: unknown = await (value as (...a: unknown[]) => unknown).apply(t, args);
          return this.frozen ? never() : result;
        };
      },
    });
  }
}

/** A sink that accepts everything at once (the bench measures the lease table, not delivery). */
const nullSink: Sink = { name: 'null', limits: { maxRecords: 1000, maxBytes: Infinity }, preservesOrderWithinRequest: true, send: async () => ({ failed: [] }) };

const main = async () => {
  const random = seededRandom(SEED);
  Math.random = seededRandom(SEED ^ 0x9e3779b9);
  const clock = new HeapClock({ quantumMs: 10 });
  const t0 = clock.now();
  const records = streamRecords({ table: 'TaskApp' });
  const streams = new ScriptedStreams({ streamArn: records.streamArn });
  const store = new MemoryLeaseStore();
  const heapBefore = heapNow();

  // --- the stream: closed parents, their children, and root shards; all open shards get records.
  const open: string[] = [];
  let nextShard = 0;
  const newId = () => `shardId-${String(nextShard++).padStart(8, '0')}-${'0'.repeat(8)}`;
  let item = 0;
  /** Per shard, the sequence numbers appended, oldest first (trimmed a minute after). */
  const appended = new Map<string, { seq: string; at: number }[]>();
  const append = (shardId: string) => {
    const n = item++;
    const record = records.insert({ PK: `USER#${n}`, SK: 'TASK#1', Note: 'bench:scale' });
    streams.append(shardId, [record]);
    appended.set(shardId, [...(appended.get(shardId) ?? []), { seq: record.dynamodb.SequenceNumber, at: clock.now() }]);
  };
  /** Drops records older than a minute, so the fake's memory stays flat and the heap measures the fleet. */
  const trimOld = () => {
    for (const [shardId, list] of appended) {
      let last: string | undefined;
      while (list.length > 1 && (list[0] as { at: number }).at < clock.now() - 60_000) last = list.shift()?.seq;
      if (last) streams.trim(shardId, last);
    }
  };
  for (let p = 0; p < PARENTS; p++) {
    const parent = newId();
    streams.addShard({ shardId: parent });
    append(parent);
    const children = [newId(), newId()] as const;
    streams.split(parent, children);
    open.push(...children);
  }
  while (open.length < SHARDS) {
    const id = newId();
    streams.addShard({ shardId: id });
    open.push(id);
  }

  // --- the fleet
  const members: Member[] = [];
  /** Per shard, the last GetShardIterator: who and when. */
  const started = new Map<string, { by: Member; at: number }>();
  const startMember = async (id: string) => {
    const m = new Member(id);
    members.push(m);
    m.worker = new Worker({
      app: defineApp({ table: 'TaskApp', routes: [route('*').to(nullSink)] }),
      streamArn: records.streamArn,
      streams: m.door<StreamsApi>(streams, (method, args) => {
        if (method === 'getShardIterator') started.set(String(args[1]), { by: m, at: clock.now() });
      }),
      leases: m.door<LeaseStore>(store),
      workerId: id,
      logger: silentLogger,
      clock: m.clock(clock),
      leaseDurationMs: D,
      // The bench trims what every reader passed long ago (below), as the 24 h retention would.
      onTrimmedData: 'skip',
    });
    await m.worker.start();
  };
  const live = () => members.filter((m) => !m.frozen);

  /** Every shard id the bench created (the workers create leases for exactly these). */
  const allIds: string[] = [];
  const syncIds = () => {
    for (let n = allIds.length; n < nextShard; n++) allIds.push(`shardId-${String(n).padStart(8, '0')}-${'0'.repeat(8)}`);
  };
  syncIds();
  /** Shards that may be read now: not finished, and every parent finished or gone. */
  const readable = (): Set<string> => {
    const all = new Map<string, Lease>();
    for (const id of allIds) {
      const l = store.get(records.streamArn, id);
      if (l) all.set(id, l);
    }
    const ready = new Set<string>();
    for (const l of all.values()) {
      if (l.checkpoint === 'SHARD_END') continue;
      if (l.parents.every((p) => (all.get(p)?.checkpoint ?? 'SHARD_END') === 'SHARD_END')) ready.add(l.shardId);
    }
    return ready;
  };

  const balanced = (): boolean => {
    const ready = readable();
    const members = live();
    const fair = ready.size / members.length;
    let read = 0;
    for (const m of members) {
      const owned = m.worker.ownedShards.filter((s) => ready.has(s)).length;
      if (Math.abs(owned - fair) > 1) return false;
      read += owned;
    }
    return read === ready.size;
  };

  const waitUntil = async (condition: () => boolean, stepMs: number, limitMs: number): Promise<number> => {
    const from = clock.now();
    while (!condition()) {
      if (process.env['SCALE_DEBUG'] && (clock.now() - from) % 10_000 === 0) log({ debug: 'owned', readable: readable().size, owned: live().map((m) => m.worker.ownedShards.length) });
      if (clock.now() - from > limitMs) return Number.NaN;
      await clock.sleep(stepMs);
    }
    return clock.now() - from;
  };

  // Records trickle into every open shard; one open shard splits every SPLIT_EVERY_S.
  let running = true;
  let splits = 0;
  const workload = (async () => {
    const perTick = Math.max(1, Math.round(open.length / RECORD_EVERY_S / 10));
    let lastSplit = clock.now();
    while (running) {
      await clock.sleep(100);
      for (let i = 0; i < perTick; i++) append(open[Math.floor(random() * open.length)] as string);
      if (clock.now() % 60_000 < 100) trimOld();
      if (clock.now() - lastSplit >= SPLIT_EVERY_S * 1000) {
        lastSplit = clock.now();
        const index = Math.floor(random() * open.length);
        const parent = open[index] as string;
        const children = [newId(), newId()] as const;
        streams.split(parent, children);
        open.splice(index, 1, ...children);
        splits++;
      }
      syncIds();
    }
  })();

  const wall = Date.now();
  const log = (line: object) => console.log(JSON.stringify({ t: Math.round((clock.now() - t0) / 1000), wallS: Math.round((Date.now() - wall) / 1000), ...line }));

  // 1. Start.
  await Promise.all(Array.from({ length: WORKERS }, (_, i) => startMember(`w${String(i).padStart(2, '0')}`)));
  const startedIn = clock.now() - t0;
  const balancedAtStart = (await waitUntil(balanced, 100, RUN_MS / 4 - 1000)) + startedIn;
  log({ event: 'start', balancedMs: balancedAtStart });

  // 2. Freeze one worker (SIGKILL) at a quarter of the run.
  await clock.sleep(t0 + RUN_MS / 4 - clock.now());
  const victim = members[3] as Member;
  const victimShards = new Set(victim.worker.ownedShards);
  victim.frozen = true;
  const killedAt = clock.now();
  const failoverMs = await waitUntil(
    () => [...victimShards].every((s) => store.get(records.streamArn, s)?.checkpoint === 'SHARD_END' || ((started.get(s)?.at ?? -1) >= killedAt && started.get(s)?.by.frozen === false)),
    100,
    RUN_MS / 4 - 1000,
  );
  const balancedAfterKill = await waitUntil(balanced, 100, RUN_MS / 4 - 1000) + failoverMs;
  log({ event: 'kill', shards: victimShards.size, failoverMs, balancedMs: balancedAfterKill });

  // 3. A new worker joins at half the run.
  await clock.sleep(t0 + RUN_MS / 2 - clock.now());
  await startMember(`w${String(WORKERS).padStart(2, '0')}`);
  const balancedAfterJoin = await waitUntil(balanced, 100, RUN_MS / 2 - 1000);
  log({ event: 'join', balancedMs: balancedAfterJoin });

  // 4. Run to the end; measure the heap at steady state.
  await clock.sleep(t0 + RUN_MS - clock.now());
  const seconds = (clock.now() - t0) / 1000;
  const cap = structuredClone(store.capacity);
  const describeCalls = streams.calls.describeStream;
  const leaseCount = allIds.filter((id) => store.get(records.streamArn, id)).length;
  const heapBytes = heapNow() - heapBefore;
  running = false;
  await workload;
  // Stop the live workers without counting their releases.
  await Promise.all(live().map((m) => m.worker.stop()));

  const shardHours = (open.length * seconds) / 3600;
  const itemBytes = allIds.map((id) => store.get(records.streamArn, id)).filter((l): l is Lease => l !== undefined).map(leaseItemBytes);
  const avgItemBytes = itemBytes.reduce((a, b) => a + b, 0) / Math.max(1, itemBytes.length);
  const kcl = kclModel({
    seconds,
    shards: open.length,
    items: leaseCount,
    avgItemBytes,
    workers: WORKERS,
    leaseDurationMs: D,
    sameAsOurs: (cap.writeBy['create'] ?? 0) + (cap.writeBy['checkpoint'] ?? 0) + (cap.writeBy['remove'] ?? 0),
    assignments: cap.writeBy['take'] ?? 0,
  });
  const rcu = cap.read / shardHours;
  const wcu = cap.write / shardHours;
  log({ detail: 'capacity', splits, jumps: clock.jumps, readBy: perShardHour(cap.readBy, shardHours), writeBy: perShardHour(cap.writeBy, shardHours), requests: cap.requests, kcl: { ...kcl, perShardHour: round(kcl.total / shardHours) } });
  console.log(
    JSON.stringify({
      bench: 'scale',
      shards: SHARDS,
      workers: WORKERS,
      balancedMs: Math.max(balancedAtStart, balancedAfterKill, balancedAfterJoin),
      failoverMs,
      leaseDurationMs: D,
      leaseRcuPerShardHour: round(rcu),
      leaseWcuPerShardHour: round(wcu),
      vsKclLeaseCost: round((cap.read + cap.write) / kcl.total, 3),
      describeStreamPerSec: round(describeCalls / seconds, 3),
      heapBytesPerShard: Math.round(heapBytes / leaseCount),
    }),
  );
};

const round = (n: number, digits = 1) => Math.round(n * 10 ** digits) / 10 ** digits;
const perShardHour = (units: Record<string, number>, shardHours: number) => Object.fromEntries(Object.entries(units).map(([k, v]) => [k, round(v / shardHours)]));

/**
 * KCL 3.x's lease-table schedule for the same fleet, in request units over the run (sources in
 * BENCHMARKS.md): every held lease renewed every failoverTimeMillis / 3; the leader scans the whole
 * lease table every leaseAssignmentIntervalMillis (2 x failoverTimeMillis), eventually consistent;
 * each worker queries the leaseOwner GSI (keys only, eventually consistent) every
 * leaseAssignmentIntervalMillis / 2 - 25 ms; each worker writes its worker-metrics item every
 * 60 s and the leader scans that table with each assignment run. Creates, checkpoints and removes
 * are the application's and count the same as ours; each of our successful takes counts as one
 * assignment write. Left out, in KCL's favour: the leader lock's heartbeats, GSI replication of
 * owner changes, lease-stealing contention.
 */
const kclModel = (o: { seconds: number; shards: number; items: number; avgItemBytes: number; workers: number; leaseDurationMs: number; sameAsOurs: number; assignments: number }) => {
  const failover = o.leaseDurationMs;
  const assignmentInterval = 2 * failover;
  const itemUnit = Math.max(1, Math.ceil(o.avgItemBytes / 1024));
  const renewals = o.shards * ((o.seconds * 1000) / (failover / 3)) * itemUnit;
  const scanPages = Math.max(1, Math.ceil((o.items * o.avgItemBytes) / (1024 * 1024)));
  const scanUnits = Math.max(scanPages, Math.ceil((o.items * o.avgItemBytes) / 4096)) * 0.5;
  const leaderScans = ((o.seconds * 1000) / assignmentInterval) * scanUnits;
  // A GSI item: the projected keys (leaseKey, leaseOwner, ~80 bytes) plus DynamoDB's 100 bytes of index overhead.
  const ownPerWorker = o.shards / o.workers;
  const gsiUnits = Math.max(1, Math.ceil((ownPerWorker * 180) / 4096)) * 0.5;
  const gsiQueries = o.workers * ((o.seconds * 1000) / (assignmentInterval / 2 - 25)) * gsiUnits;
  const metricsWrites = o.workers * (o.seconds / 60);
  const metricsScans = ((o.seconds * 1000) / assignmentInterval) * Math.max(1, Math.ceil((o.workers * 600) / 4096)) * 0.5;
  const total = renewals + leaderScans + gsiQueries + metricsWrites + metricsScans + o.sameAsOurs + o.assignments;
  return { renewals: round(renewals), leaderScans: round(leaderScans), gsiQueries: round(gsiQueries), metrics: round(metricsWrites + metricsScans), sameAsOurs: round(o.sameAsOurs), assignments: round(o.assignments), total: round(total) };
};

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
