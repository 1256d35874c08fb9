import { afterEach, describe, expect, it, vi } from 'vitest';
import { Engine } from '../../src/core/engine.js';
import type { RecordStatus } from '../../src/core/engine.js';
import { ConfigError, defineApp, route } from '../../src/index.js';
import type { ChangeEvent } from '../../src/index.js';
import { FakeClock, MemoryLeaseStore, MemorySink, ScriptedStreams, silentLogger, streamRecords } from '../../src/testing/index.js';
import type { RecordsPage } from '../../src/worker/ports.js';
import { ShardReader } from '../../src/worker/shard-reader.js';
import type { ReaderHost } from '../../src/worker/shard-reader.js';
import { Worker } from '../../src/worker/worker.js';

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

/** Waits in real time; the fake clock runs on its own meanwhile. */
const until = async (condition: () => boolean, timeoutMs = 10_000) => {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
};

/** Scripted streams whose records appear at set times on the clock, and that note when each GetRecords call came. */
class TimedStreams extends ScriptedStreams {
  readonly readTimes: number[] = [];
  readonly #clock: FakeClock;
  readonly #due: { at: number; records: unknown[] }[] = [];

  constructor(clock: FakeClock) {
    super({ streamArn: STREAM });
    this.#clock = clock;
    this.addShard({ shardId: 'shard-1' });
  }

  /** `records` are appended once the clock reaches `at`. */
  appendAt(at: number, records: unknown[]): this {
    this.#due.push({ at, records });
    return this;
  }

  override async getRecords(iterator: string, limit: number, signal?: AbortSignal): Promise<RecordsPage> {
    const now = this.#clock.now();
    this.readTimes.push(now);
    for (const due of this.#due.filter((d) => d.at <= now)) {
      this.append('shard-1', due.records);
      this.#due.splice(this.#due.indexOf(due), 1);
    }
    return super.getRecords(iterator, limit, signal);
  }
}

interface Harness {
  host: ReaderHost;
  readonly sink: MemorySink;
  readonly clock: FakeClock;
  readonly batches: number[];
  readonly checkpoints: string[];
  fresh: boolean;
  freshChecks: number;
}

const readers: ShardReader[] = [];
afterEach(async () => {
  for (const r of readers.splice(0)) {
    r.abort();
    await r.finished;
  }
});

const harness = (streams: ScriptedStreams, clock: FakeClock, options: Partial<ReaderHost> & { sink?: MemorySink } = {}): Harness => {
  const { sink = new MemorySink(), ...rest } = options;
  const engine = new Engine({ app: defineApp({ table: 'TaskApp', routes: [route('*').to(sink)], retry: { maxAttempts: 2, baseDelayMs: 1, maxDelayMs: 5 } }), logger: silentLogger, clock });
  const h: Harness = {
    sink,
    clock,
    batches: [],
    checkpoints: [],
    fresh: true,
    freshChecks: 0,
    host: undefined as unknown as ReaderHost,
  };
  const process = engine.process.bind(engine);
  vi.spyOn(engine, 'process').mockImplementation((records, o) => {
    h.batches.push(records.length);
    return process(records, o);
  });
  h.host = {
    engine,
    streams,
    logger: silentLogger,
    clock,
    streamArn: STREAM,
    pollIntervalMs: 1000,
    maxRecordsPerRead: 1000,
    batchSize: 1000,
    batchWindowMs: 0,
    checkpointIntervalMs: 5000,
    maxDoneAbove: 1000,
    onTrimmedData: 'fail',
    leaseFresh: () => {
      h.freshChecks++;
      return h.fresh;
    },
    checkpoint: async (_shardId, checkpoint) => {
      h.checkpoints.push(checkpoint);
      return true;
    },
    shardEnded: () => {},
    count: () => {},
    ...rest,
  };
  return h;
};

const start = (h: Harness, checkpoint = 'TRIM_HORIZON') => {
  const reader = new ShardReader(h.host, { streamArn: STREAM, shardId: 'shard-1', owner: 'me', counter: 1, checkpoint, parents: [], doneAbove: [] });
  readers.push(reader);
  return reader;
};

describe('ShardReader time fencing', () => {
  it('starts no delivery while the lease is not fresh, without spinning, and delivers once it is', async () => {
    // Prepare
    const clock = new FakeClock();
    const records = streamRecords();
    const streams = new ScriptedStreams({ streamArn: STREAM }).addShard({ shardId: 'shard-1' }).append('shard-1', changes(records, 3, 2));
    const h = harness(streams, clock);
    h.fresh = false;
    const t0 = clock.now();

    // Act: a minute of virtual time with a stale lease.
    const reader = start(h);
    await until(() => clock.now() - t0 >= 60_000);

    // Assess: nothing delivered, no engine call, a look at most every 100 ms, one read.
    expect(h.batches).toEqual([]);
    expect(h.sink.attempts).toEqual([]);
    expect(reader.state).toBe('fenced');
    expect(h.freshChecks).toBeLessThanOrEqual((clock.now() - t0) / 100 + 2);
    expect(streams.calls.getRecords).toBe(1);

    // Act: the lease is renewed.
    h.fresh = true;
    await until(() => h.sink.delivered.length === 6);

    // Assess
    expect(h.batches).toEqual([6]);
  });

  it('checks the lease before every delivery, not only the first', async () => {
    // Prepare: pages of two records, one delivery each; the lease goes stale after the first.
    const clock = new FakeClock();
    const records = streamRecords();
    const streams = new ScriptedStreams({ streamArn: STREAM }).addShard({ shardId: 'shard-1' }).append('shard-1', changes(records, 2, 3));
    const h = harness(streams, clock, { maxRecordsPerRead: 2, batchSize: 2 });
    let deliveries = 0;
    h.host = { ...h.host, leaseFresh: () => deliveries++ === 0 };

    // Act
    const reader = start(h);
    await until(() => reader.state === 'fenced');
    const t0 = clock.now();
    await until(() => clock.now() - t0 >= 10_000);

    // Assess: the first page went out, the second waits.
    expect(h.batches).toEqual([2]);
    expect(h.sink.delivered.map(idOf)).toEqual(['USER#0#1', 'USER#1#1']);
  });

  it('gives up a fenced batch when the reader is aborted (lease lost), delivering nothing', async () => {
    // Prepare
    const clock = new FakeClock();
    const records = streamRecords();
    const streams = new ScriptedStreams({ streamArn: STREAM }).addShard({ shardId: 'shard-1' }).append('shard-1', changes(records, 2, 1));
    const h = harness(streams, clock);
    h.fresh = false;
    const reader = start(h);
    await until(() => reader.state === 'fenced');

    // Act
    reader.abort();
    await reader.finished;

    // Assess
    expect(h.batches).toEqual([]);
    expect(reader.state).toBe('stopped');
  });
});

describe('ShardReader batching', () => {
  it('delivers each page on its own by default, as one GetRecords call', async () => {
    // Prepare: 25 records, pages of 10.
    const clock = new FakeClock();
    const records = streamRecords();
    const streams = new ScriptedStreams({ streamArn: STREAM }).addShard({ shardId: 'shard-1' }).append('shard-1', changes(records, 5, 5));
    const h = harness(streams, clock, { maxRecordsPerRead: 10, batchSize: 10 });

    // Act
    start(h);
    await until(() => h.sink.delivered.length === 25);

    // Assess
    expect(h.batches).toEqual([10, 10, 5]);
  });

  it('gathers consecutive pages up to batchSize, 200 ms apart at least', async () => {
    // Prepare: 25 records, pages of 10, batches of 25, a long window.
    const clock = new FakeClock();
    const records = streamRecords();
    const streams = new TimedStreams(clock).appendAt(0, changes(records, 5, 5));
    const h = harness(streams, clock, { maxRecordsPerRead: 10, batchSize: 25, batchWindowMs: 60_000 });

    // Act
    start(h);
    await until(() => h.sink.delivered.length === 25);

    // Assess: one engine call; three reads (10, 10, then 5: the batch's rest), paced.
    expect(h.batches).toEqual([25]);
    const gaps = streams.readTimes.slice(1, 3).map((t, i) => t - (streams.readTimes[i] as number));
    expect(gaps.every((g) => g >= 200)).toBe(true);
    for (const k of [0, 1, 2, 3, 4]) expect(h.sink.delivered.filter((e) => keyOf(e) === `USER#${k}`).map(version)).toEqual([1, 2, 3, 4, 5]);
  });

  it('delivers what it gathered once batchWindowMs has passed since the first record', async () => {
    // Prepare: writes at 0 s, 20 s and 70 s; a 60 s window.
    const clock = new FakeClock();
    const t0 = clock.now();
    const records = streamRecords();
    const streams = new TimedStreams(clock)
      .appendAt(t0, changes(records, 2, 1, 1))
      .appendAt(t0 + 20_000, changes(records, 2, 1, 2))
      .appendAt(t0 + 70_000, changes(records, 2, 1, 3));
    const deliveredAt: number[] = [];
    const h = harness(streams, clock, { batchSize: 10_000, batchWindowMs: 60_000 });
    const send = h.sink.send.bind(h.sink);
    h.sink.send = async (events, signal) => {
      deliveredAt.push(clock.now() - t0);
      return send(events, signal);
    };

    // Act
    start(h);
    await until(() => h.sink.delivered.length === 6);

    // Assess: the first two writes together, a minute after the first; the third a minute after it.
    expect(h.batches).toEqual([4, 2]);
    expect(deliveredAt[0]).toBeGreaterThanOrEqual(60_000);
    expect(deliveredAt[0]).toBeLessThan(70_000);
    expect(deliveredAt.at(-1)).toBeGreaterThanOrEqual(130_000);
  });

  it('reads a blocked batch again from the watermark: everything delivered, in order, nothing done sent twice, without waiting out the window again', async () => {
    // Prepare: 30 records in pages of 10, one batch; USER#0 version 3 (the 11th record) fails
    // four times without a DLQ (two engine attempts per delivery): two blocked deliveries.
    const clock = new FakeClock();
    const records = streamRecords();
    const all = changes(records, 5, 6);
    const streams = new TimedStreams(clock).appendAt(0, all);
    const sink = new MemorySink().failWhere((e) => keyOf(e) === 'USER#0' && version(e) === 3, { times: 4 });
    const h = harness(streams, clock, { sink, maxRecordsPerRead: 10, batchSize: 30, batchWindowMs: 60_000 });
    const t0 = clock.now();
    let doneAt = Infinity;
    const send = sink.send.bind(sink);
    sink.send = async (events, signal) => {
      const result = await send(events, signal);
      if (new Set(sink.delivered.map(idOf)).size === 30) doneAt = Math.min(doneAt, clock.now() - t0);
      return result;
    };

    // Act
    const reader = start(h);
    await until(() => new Set(sink.delivered.map(idOf)).size === 30);

    // Assess: each change delivered once, each key in order; the checkpoint ends at the last record.
    expect(sink.delivered).toHaveLength(30);
    for (const k of [0, 1, 2, 3, 4]) expect(sink.delivered.filter((e) => keyOf(e) === `USER#${k}`).map(version)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(h.batches[0]).toBe(30);
    expect(h.batches.length).toBe(3);
    // Re-reads start at the blocked record (index 10) and gather back to the batch's end at once.
    expect(h.batches.slice(1)).toEqual([20, 20]);
    expect(doneAt).toBeLessThan(60_000);
    await until(() => reader.checkpoint === all.at(-1)?.dynamodb.SequenceNumber);
    expect(h.checkpoints[0]).toBe(all[9]?.dynamodb.SequenceNumber); // the watermark, before the blocked record
  });
});

describe('ShardReader acknowledgements per sink', () => {
  it('passes the sinks that acknowledged a record not done to the re-read of its batch, and forgets them once it is done', async () => {
    // Prepare: an engine whose first call leaves the first record blocked, acknowledged by sink `a` only.
    const clock = new FakeClock();
    const records = streamRecords();
    const batch = changes(records, 2, 1);
    const streams = new ScriptedStreams({ streamArn: STREAM }).addShard({ shardId: 'shard-1' }).append('shard-1', batch);
    const h = harness(streams, clock);
    const seen: (ReadonlyMap<string, ReadonlySet<string>> | undefined)[] = [];
    vi.spyOn(h.host.engine, 'process').mockImplementation(async (recs, o) => {
      seen.push(o?.acknowledged && new Map(o.acknowledged));
      const first = seen.length === 1;
      const statuses = recs.map((_, i): RecordStatus => (first && i === 0 ? 'blocked' : 'delivered'));
      const counts = { delivered: statuses.filter((x) => x === 'delivered').length, 'dead-lettered': 0, unrouted: 0, skipped: 0, replicated: 0, blocked: first ? 1 : 0, unfinished: 0 };
      return { statuses, watermark: first ? 0 : recs.length, counts, retries: 0, acknowledged: first ? new Map([[0, new Set(['a'])]]) : new Map() };
    });

    // Act
    const reader = start(h);
    await until(() => seen.length === 3 || reader.checkpoint === batch[1]?.dynamodb.SequenceNumber);

    // Assess
    const seq = batch[0]?.dynamodb.SequenceNumber as string;
    expect(seen[0]?.size ?? 0).toBe(0);
    expect(seen[1]).toEqual(new Map([[seq, new Set(['a'])]]));
    streams.append('shard-1', changes(records, 1, 1, 2));
    await until(() => seen.length === 3);
    expect(seen[2]?.size ?? 0).toBe(0);
  });
});

describe('Worker batching options', () => {
  const app = defineApp({ table: 'TaskApp', routes: [route('*').to(new MemorySink())] });
  const make = (o: object) => () => new Worker({ app, streamArn: STREAM, streams: new ScriptedStreams({ streamArn: STREAM }), leases: new MemoryLeaseStore(), logger: silentLogger, ...o });

  it.each([0, 10_001, 1.5, Number.NaN])('refuses batchSize %s, naming the field and the range', (batchSize) => {
    expect(make({ batchSize })).toThrow(ConfigError);
    expect(make({ batchSize })).toThrow(/batchSize.*from 1 to 10000/);
  });

  it.each([-1, 300_001, 0.5])('refuses batchWindowMs %s, naming the field and the range', (batchWindowMs) => {
    expect(make({ batchWindowMs })).toThrow(/batchWindowMs.*from 0 to 300000/);
  });

  it('accepts a batch of 10,000 records and a 5-minute window', () => {
    expect(make({ batchSize: 10_000, batchWindowMs: 300_000 })).not.toThrow();
  });
});

/** A sink whose requests wait until `open()` (or until their signal aborts), to hold a delivery in the engine. */
const gate = (sink: MemorySink) => {
  let release: () => void = () => {};
  let opened = false;
  let waiting = 0;
  const opens = new Promise<void>((resolve) => {
    release = () => {
      opened = true;
      resolve();
    };
  });
  const send = sink.send.bind(sink);
  sink.send = async (events, signal) => {
    if (!opened) {
      waiting++;
      await new Promise<void>((resolve, reject) => {
        signal.addEventListener('abort', () => reject(signal.reason as Error), { once: true });
        void opens.then(resolve);
      }).finally(() => waiting--);
    }
    return send(events, signal);
  };
  return { open: release, waiting: () => waiting };
};

/** Scripted streams whose GetRecords calls, after the first `free`, wait until released or aborted; it notes calls in flight. */
class HeldStreams extends TimedStreams {
  inFlight = 0;
  #free: number;
  #release: () => void = () => {};

  constructor(clock: FakeClock, free: number) {
    super(clock);
    this.#free = free;
  }

  release(): void {
    this.#release();
  }

  override async getRecords(iterator: string, limit: number, signal?: AbortSignal): Promise<RecordsPage> {
    if (this.#free-- > 0) return super.getRecords(iterator, limit, signal);
    this.inFlight++;
    try {
      await new Promise<void>((resolve, reject) => {
        this.#release = resolve;
        signal?.addEventListener('abort', () => reject(signal.reason as Error), { once: true });
      });
      return await super.getRecords(iterator, limit, signal);
    } finally {
      this.inFlight--;
    }
  }
}

describe('ShardReader read-ahead', () => {
  it('reads the next page while the current batch is in the engine, one page ahead at most, 200 ms after the previous read', async () => {
    // Prepare: 30 records in pages of 10; the sink holds every request until opened.
    const clock = new FakeClock();
    const records = streamRecords();
    const streams = new TimedStreams(clock).appendAt(0, changes(records, 5, 6));
    const h = harness(streams, clock, { maxRecordsPerRead: 10, batchSize: 10 });
    const held = gate(h.sink);

    // Act
    start(h);
    await until(() => held.waiting() > 0);
    await until(() => streams.calls.getRecords === 2, 2000);
    await new Promise((r) => setTimeout(r, 100));

    // Assess: the second page is read during the first delivery, and no third one.
    expect(h.batches).toEqual([10]);
    expect(streams.calls.getRecords).toBe(2);
    expect((streams.readTimes[1] as number) - (streams.readTimes[0] as number)).toBeGreaterThanOrEqual(200);

    // Act
    held.open();
    await until(() => h.sink.delivered.length === 30);

    // Assess: every record once, each key in order, one page per delivery.
    expect(h.batches).toEqual([10, 10, 10]);
    for (const k of [0, 1, 2, 3, 4]) expect(h.sink.delivered.filter((e) => keyOf(e) === `USER#${k}`).map(version)).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('keeps 200 ms between any two GetRecords calls of a shard, across deliveries', async () => {
    // Prepare: 50 records in pages of 10, each page its own delivery through a sink with no latency.
    const clock = new FakeClock();
    const records = streamRecords();
    const streams = new TimedStreams(clock).appendAt(0, changes(records, 5, 10));
    const h = harness(streams, clock, { maxRecordsPerRead: 10, batchSize: 10 });

    // Act
    start(h);
    await until(() => h.sink.delivered.length === 50 && streams.readTimes.length >= 6);

    // Assess
    const gaps = streams.readTimes.slice(1).map((t, i) => t - (streams.readTimes[i] as number));
    expect(Math.min(...gaps)).toBeGreaterThanOrEqual(200);
    expect(h.batches).toEqual([10, 10, 10, 10, 10]);
  });

  it('reads ahead after a short page only once the poll interval has passed, as a caught-up reader polls', async () => {
    // Prepare: 5 records (a short page of 10), then 5 more 100 ms later; the sink holds the first delivery a while.
    const clock = new FakeClock();
    const records = streamRecords();
    const t0 = clock.now();
    const streams = new TimedStreams(clock).appendAt(t0, changes(records, 5, 1, 1)).appendAt(t0 + 100, changes(records, 5, 1, 2));
    const h = harness(streams, clock, { maxRecordsPerRead: 10, batchSize: 10, pollIntervalMs: 1000 });

    // Act
    start(h);
    await until(() => h.sink.delivered.length === 10);

    // Assess: two deliveries, the second read a poll interval after the first.
    expect(h.batches).toEqual([5, 5]);
    expect((streams.readTimes[1] as number) - (streams.readTimes[0] as number)).toBeGreaterThanOrEqual(1000);
  });

  it('drops the page read ahead when stop() comes during the delivery: the batch finishes and is checkpointed, the page is not delivered', async () => {
    // Prepare
    const clock = new FakeClock();
    const records = streamRecords();
    const all = changes(records, 5, 4);
    const streams = new TimedStreams(clock).appendAt(0, all);
    const h = harness(streams, clock, { maxRecordsPerRead: 10, batchSize: 10 });
    const held = gate(h.sink);
    const reader = start(h);
    await until(() => held.waiting() > 0 && streams.calls.getRecords === 2, 2000);

    // Act
    reader.stop();
    held.open();
    await reader.finished;

    // Assess
    expect(h.batches).toEqual([10]);
    expect(h.sink.delivered).toHaveLength(10);
    expect(reader.checkpoint).toBe(all[9]?.dynamodb.SequenceNumber);
    expect(h.checkpoints.at(-1)).toBe(all[9]?.dynamodb.SequenceNumber);
    expect(reader.state).toBe('stopped');
  });

  it('drops a read-ahead still in flight when the reader is aborted (lease lost): finished waits for it, nothing more is delivered', async () => {
    // Prepare: the first GetRecords answers, the second (the read-ahead) hangs until aborted.
    const clock = new FakeClock();
    const records = streamRecords();
    const streams = new HeldStreams(clock, 1).appendAt(0, changes(records, 5, 4));
    const h = harness(streams, clock, { maxRecordsPerRead: 10, batchSize: 10 });
    const held = gate(h.sink);
    const reader = start(h);
    await until(() => held.waiting() > 0 && streams.inFlight === 1, 2000);

    // Act
    reader.abort();
    await reader.finished;

    // Assess: the read-ahead ended with the reader; the aborted batch and the page were not delivered.
    expect(streams.inFlight).toBe(0);
    expect(h.batches).toEqual([10]);
    expect(h.sink.delivered).toEqual([]);
    expect(reader.state).toBe('stopped');
  });

  it('holds the page read ahead while fenced and drops it when aborted, delivering nothing of it', async () => {
    // Prepare: the lease goes stale during the first delivery.
    const clock = new FakeClock();
    const records = streamRecords();
    const streams = new TimedStreams(clock).appendAt(0, changes(records, 5, 4));
    const h = harness(streams, clock, { maxRecordsPerRead: 10, batchSize: 10 });
    const held = gate(h.sink);
    const reader = start(h);
    await until(() => held.waiting() > 0 && streams.calls.getRecords === 2, 2000);

    // Act
    h.fresh = false;
    held.open();
    await until(() => reader.state === 'fenced');
    const t0 = clock.now();
    await until(() => clock.now() - t0 >= 5000);

    // Assess: no further read and no delivery while fenced.
    expect(h.batches).toEqual([10]);
    expect(streams.calls.getRecords).toBe(2);

    // Act
    reader.abort();
    await reader.finished;

    // Assess
    expect(h.batches).toEqual([10]);
    expect(h.sink.delivered).toHaveLength(10);
  });

  it('renews an iterator that expired under a read-ahead from the checkpoint: nothing lost, nothing twice', async () => {
    // Prepare: the read-ahead made during the first delivery meets an expired iterator.
    const clock = new FakeClock();
    const records = streamRecords();
    const streams = new TimedStreams(clock).appendAt(0, changes(records, 5, 4));
    const h = harness(streams, clock, { maxRecordsPerRead: 10, batchSize: 10 });
    const held = gate(h.sink);
    const renewals: string[] = [];
    h.host = { ...h.host, count: (event) => void (event === 'iteratorRenewals' && renewals.push(event)) };
    const getRecords = streams.getRecords.bind(streams);
    let calls = 0;
    streams.getRecords = async (iterator, limit, signal) => {
      if (++calls === 2) streams.expireIterators();
      return getRecords(iterator, limit, signal);
    };

    // Act
    start(h);
    await until(() => held.waiting() > 0 && calls === 2, 2000);
    held.open();
    await until(() => h.sink.delivered.length === 20);
    await new Promise((r) => setTimeout(r, 50));

    // Assess
    expect(renewals).toHaveLength(1);
    expect(h.sink.delivered.map(idOf)).toEqual(changes(streamRecords(), 5, 4).map((r) => `${String(r.dynamodb.NewImage?.['PK']?.S)}#${String(r.dynamodb.NewImage?.['Version']?.N)}`));
  });
});
