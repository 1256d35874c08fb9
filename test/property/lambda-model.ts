import { seededRandom } from '../../src/testing/index.js';
/**
 * The model-based check of the Lambda shape: a random workload (hot and cold items, inserts,
 * modifies and removes with a Version), random sinks, dead-letter queue, progress store and
 * observer, driven through the REAL `createStreamHandler` and engine by a random event-source
 * mapping (src/testing/event-source-mapping.ts), and checked against a reference model: what the
 * source table holds, what each record must reach, and what each sink and the DLQ received.
 */
import fc from 'fast-check';
import { defineApp, route } from '../../src/index.js';
import type { ChangeEvent, DeadLetter, DeadLetterQueue, NumberMode, Sink, SinkFailure } from '../../src/index.js';
import { createStreamHandler } from '../../src/lambda/index.js';
import type { StreamHandlerOptions } from '../../src/lambda/index.js';
import { FakeClock, MemoryProgressStore, permanentError, silentLogger, simulateRandomEventSourceMapping, streamRecords, throttlingError, transientError } from '../../src/testing/index.js';
import type { LambdaStreamRecord, RandomInvocation, StreamHandlerLike } from '../../src/testing/index.js';

/** Cases in one `npm test` run: keeps this suite well under 30 s on a loaded 2-core machine. */
export const DEFAULT_RUNS = 100;

// ---------------------------------------------------------------------------------------------
// Scenarios

export interface SinkPlan {
  /** `preservesOrderWithinRequest`: the engine may send a lane's records as one run. */
  readonly ordered: boolean;
  readonly maxRecords: number;
  /** Chance that a request is rejected as a whole (nothing lands). */
  readonly callFailRate: number;
  /** Chance that one entry is rejected. */
  readonly entryFailRate: number;
  /** Share of random failures that are throttling, and that are permanent (the rest: transient). */
  readonly throttlingShare: number;
  readonly permanentShare: number;
  readonly latencyMs: number;
  /** Chance that a request takes up to 5 s (a stalled call the Lambda deadline must cut short). */
  readonly slowRate: number;
  /** Which items the route takes: all, the hot ones, or those with an odd key number. */
  readonly filter: 'all' | 'hot' | 'odd';
  /** Records (by index modulo the shard's length) this sink rejects as PERMANENT every time. */
  readonly rejects: readonly number[];
}

export interface Scenario {
  /** Seeds every choice made while the case runs (faults, batch sizes, crashes). */
  readonly seed: number;
  readonly length: number;
  readonly hotKeys: number;
  readonly coldKeys: number;
  readonly hotShare: number;
  readonly removeShare: number;
  /** Sequence numbers: 21 digits, or crossing a digit-length boundary halfway through the shard. */
  readonly sequence: { readonly boundary: boolean; readonly digits: number; readonly step: number };
  /** Records (by index modulo length) given a number DynamoDB cannot hold. */
  readonly poison: readonly { readonly at: number; readonly value: string }[];
  readonly numbers: NumberMode;
  readonly sinks: readonly SinkPlan[];
  readonly dlq: 'none' | 'ok' | 'flaky' | 'dead';
  readonly store: 'none' | 'memory' | 'flaky';
  readonly observer: 'none' | 'ok' | 'throws';
  readonly maxAttempts: number;
  readonly baseDelayMs: number;
  readonly concurrency: number;
  readonly maxBatchSize: number;
  readonly timeoutMs: number;
  readonly coldStartRate: number;
  readonly crashRate: number;
}

const rate = (max: number) => fc.integer({ min: 0, max: Math.round(max * 100) }).map((n) => n / 100);

const sinkPlan: fc.Arbitrary<SinkPlan> = fc.record({
  ordered: fc.boolean(),
  maxRecords: fc.integer({ min: 1, max: 10 }),
  callFailRate: fc.oneof(fc.constant(0), rate(0.15)),
  entryFailRate: fc.oneof(fc.constant(0), rate(0.2)),
  throttlingShare: rate(1),
  permanentShare: fc.oneof(fc.constant(0), rate(0.3)),
  latencyMs: fc.oneof({ weight: 3, arbitrary: fc.integer({ min: 0, max: 300 }) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 800 }) }),
  slowRate: fc.oneof(fc.constant(0), rate(0.05)),
  filter: fc.constantFrom('all', 'all', 'hot', 'odd'),
  rejects: fc.oneof({ weight: 3, arbitrary: fc.constant([]) }, { weight: 1, arbitrary: fc.array(fc.nat(), { minLength: 1, maxLength: 2 }) }),
});

export const scenario: fc.Arbitrary<Scenario> = fc.record({
  seed: fc.integer(),
  length: fc.integer({ min: 5, max: 120 }),
  hotKeys: fc.integer({ min: 1, max: 3 }),
  coldKeys: fc.integer({ min: 0, max: 40 }),
  hotShare: rate(1),
  removeShare: rate(0.3),
  sequence: fc.record({ boundary: fc.boolean(), digits: fc.integer({ min: 20, max: 22 }), step: fc.integer({ min: 1, max: 1000 }) }),
  poison: fc.oneof(
    { weight: 4, arbitrary: fc.constant([]) },
    { weight: 1, arbitrary: fc.array(fc.record({ at: fc.nat(), value: fc.constantFrom('abc', '1e999', '-1e999', '1e-999', '1234567890'.repeat(4), 'NaN', 'Infinity', '') }), { minLength: 1, maxLength: 2 }) },
  ),
  numbers: fc.constantFrom('number', 'auto', 'exact'),
  sinks: fc.array(sinkPlan, { minLength: 1, maxLength: 3 }),
  dlq: fc.constantFrom('none', 'ok', 'ok', 'flaky', 'dead'),
  store: fc.constantFrom('none', 'memory', 'memory', 'flaky'),
  observer: fc.constantFrom('none', 'ok', 'throws'),
  maxAttempts: fc.integer({ min: 1, max: 4 }),
  baseDelayMs: fc.integer({ min: 1, max: 200 }),
  concurrency: fc.integer({ min: 1, max: 8 }),
  maxBatchSize: fc.integer({ min: 1, max: 50 }),
  // Some cases are rough: short timeouts, many cold starts and crashes.
  timeoutMs: fc.oneof({ weight: 3, arbitrary: fc.integer({ min: 2000, max: 30_000 }) }, { weight: 1, arbitrary: fc.integer({ min: 2000, max: 4000 }) }),
  coldStartRate: fc.oneof({ weight: 3, arbitrary: rate(0.2) }, { weight: 1, arbitrary: rate(0.5) }),
  crashRate: fc.oneof({ weight: 2, arbitrary: fc.constant(0) }, { weight: 2, arbitrary: rate(0.1) }, { weight: 1, arbitrary: rate(0.3) }),
});


// ---------------------------------------------------------------------------------------------
// The source: the shard's records and what the table holds at the end

export interface SourceRecord {
  readonly index: number;
  readonly key: string;
  readonly keyNumber: number;
  readonly hot: boolean;
  readonly kind: 'insert' | 'modify' | 'remove';
  /** Version of the item after the change; `undefined` for a remove. */
  readonly version: number | undefined;
  readonly eventID: string;
  readonly sequenceNumber: string;
  /** The malformed number the record carries, when it is poison. */
  readonly poison: string | undefined;
  /** Sinks (by index) whose route takes this record. */
  readonly routes: ReadonlySet<number>;
  readonly raw: LambdaStreamRecord;
}

export interface Source {
  readonly records: readonly SourceRecord[];
  readonly byEventId: ReadonlyMap<string, SourceRecord>;
  /** key -> Version of the item at the end, or `null` when it was removed. */
  readonly table: ReadonlyMap<string, number | null>;
}

const takes = (filter: SinkPlan['filter'], keyNumber: number, hot: boolean): boolean => (filter === 'all' ? true : filter === 'hot' ? hot : keyNumber % 2 === 1);

export const buildSource = (s: Scenario): Source => {
  const random = seededRandom(s.seed ^ 0x5eed);
  const factory = streamRecords({ table: 'FuzzTable' });
  const versions = new Map<string, number>();
  const exists = new Set<string>();
  const poisonAt = new Map(s.poison.map((p) => [p.at % s.length, p.value]));
  const step = BigInt(s.sequence.step);
  // Crossing the boundary halfway: the first half has `digits` digits, the second one more.
  let seq = s.sequence.boundary ? 10n ** BigInt(s.sequence.digits) - step * BigInt(Math.ceil(s.length / 2)) : 10n ** 20n + 7n;
  const records: SourceRecord[] = [];
  for (let index = 0; index < s.length; index++) {
    const hot = s.coldKeys === 0 || random() < s.hotShare;
    const keyNumber = hot ? Math.floor(random() * s.hotKeys) : s.hotKeys + Math.floor(random() * s.coldKeys);
    const key = `K#${keyNumber}`;
    const version = (versions.get(key) ?? 0) + 1;
    versions.set(key, version);
    const item = { PK: key, SK: 'ITEM', Version: version, Payload: `p${index}` };
    const before = { PK: key, SK: 'ITEM', Version: version - 1, Payload: 'before' };
    const overrides = { sequenceNumber: seq.toString(), eventID: `ev-${index}` };
    seq += step;
    let kind: SourceRecord['kind'];
    let raw: LambdaStreamRecord;
    if (!exists.has(key)) {
      kind = 'insert';
      raw = factory.insert(item, overrides);
      exists.add(key);
    } else if (random() < s.removeShare) {
      kind = 'remove';
      raw = factory.remove(before, overrides);
      exists.delete(key);
    } else {
      kind = 'modify';
      raw = factory.modify(before, item, overrides);
    }
    let poison = poisonAt.get(index);
    if (poison !== undefined) {
      const image = raw.dynamodb.NewImage ?? raw.dynamodb.OldImage;
      if (image) image['Bad'] = { N: poison };
      else poison = undefined;
    }
    const routes = new Set(s.sinks.flatMap((p, j) => (takes(p.filter, keyNumber, hot) ? [j] : [])));
    records.push({ index, key, keyNumber, hot, kind, version: kind === 'remove' ? undefined : version, eventID: overrides.eventID, sequenceNumber: overrides.sequenceNumber, poison, routes, raw });
  }
  const table = new Map<string, number | null>();
  for (const r of records) table.set(r.key, r.version ?? null);
  return { records, byEventId: new Map(records.map((r) => [r.eventID, r])), table };
};

// ---------------------------------------------------------------------------------------------
// Running a case

/** What the outside world saw, in the order it happened. */
export type Observation =
  | { readonly type: 'delivered'; readonly sink: number; readonly record: number; readonly invocation: number; readonly instance: number }
  | { readonly type: 'dead-lettered'; readonly sink: number | undefined; readonly record: number; readonly invocation: number; readonly instance: number; readonly letter: DeadLetter };

export interface CaseResult {
  readonly source: Source;
  readonly log: readonly Observation[];
  readonly invocations: readonly RandomInvocation[];
  readonly checkpoint: number;
  readonly violations: readonly string[];
  readonly unhandled: readonly unknown[];
}

const sinkName = (j: number) => `sink-${j}`;

const frozen = <T>(): Promise<T> => new Promise<T>(() => {});

const describeRecord = (r: SourceRecord): string => `record #${r.index} (${r.eventID}, ${r.key} v${r.version ?? '-'} ${r.kind}, seq ${r.sequenceNumber})`;

/** Test seams of {@link runCase}, for the suite's own tests. */
export interface RunCaseOptions {
  /** Replaces each instance's handler (to show that the checks catch a handler that cheats). */
  readonly wrapHandler?: (handler: StreamHandlerLike) => StreamHandlerLike;
}

/** Runs one scenario through the real handler and checks the invariants; returns what broke. */
export const runCase = async (s: Scenario, options: RunCaseOptions = {}): Promise<CaseResult> => {
  const source = buildSource(s);
  const random = seededRandom(s.seed);
  const clock = new FakeClock();
  const log: Observation[] = [];
  const violations: string[] = [];
  const violate = (message: string) => {
    if (violations.length < 20) violations.push(message);
  };
  const alive = new Set<number>();
  let invocation = -1;

  const failureOf = (plan: SinkPlan): Error => {
    const roll = random();
    if (roll < plan.permanentShare) return permanentError('fuzz: rejected for good');
    return roll < plan.permanentShare + (1 - plan.permanentShare) * plan.throttlingShare ? throttlingError('fuzz: throttled') : transientError('fuzz: unavailable');
  };

  const makeSink = (j: number, instance: number): Sink => {
    const plan = s.sinks[j] as SinkPlan;
    const rejects = new Set(plan.rejects.map((r) => r % s.length));
    return {
      name: sinkName(j),
      limits: { maxRecords: plan.maxRecords, maxBytes: Infinity },
      preservesOrderWithinRequest: plan.ordered,
      async send(events: readonly ChangeEvent[], signal: AbortSignal): Promise<{ failed: SinkFailure[] }> {
        if (!alive.has(instance)) return frozen();
        signal.throwIfAborted();
        const latency = random() < plan.slowRate ? Math.floor(random() * 5000) : Math.floor(random() * (plan.latencyMs + 1));
        if (latency > 0) await clock.sleep(latency, signal);
        if (!alive.has(instance)) return frozen();
        if (random() < plan.callFailRate) throw failureOf(plan);
        const failed: SinkFailure[] = [];
        let cut = false;
        events.forEach((event, index) => {
          const r = source.byEventId.get(event.eventID);
          if (!r) {
            violate(`${sinkName(j)} got an event with an unknown eventID ${String(event.eventID)}`);
            return;
          }
          let error: Error | undefined;
          // A request that keeps order lets nothing after a failed entry take effect.
          if (cut) error = transientError('fuzz: after a failed entry of an ordered request');
          else if (rejects.has(r.index)) error = permanentError('fuzz: this sink rejects this record');
          else if (random() < plan.entryFailRate) error = failureOf(plan);
          if (error) {
            failed.push({ index, error });
            if (plan.ordered) cut = true;
            return;
          }
          if (r.poison !== undefined) violate(`poison ${describeRecord(r)} with {N: '${r.poison}'} (numbers: '${s.numbers}') was delivered to ${sinkName(j)}; it must be dead-lettered (issue path 6)`);
          if (!r.routes.has(j)) violate(`${describeRecord(r)} was delivered to ${sinkName(j)}, whose route does not take it`);
          log.push({ type: 'delivered', sink: j, record: r.index, invocation, instance });
        });
        return { failed };
      },
    };
  };

  const makeDlq = (instance: number): DeadLetterQueue => ({
    name: 'fuzz-dlq',
    async send(letters: readonly DeadLetter[]): Promise<void> {
      if (!alive.has(instance)) return frozen();
      if (s.dlq === 'dead' || (s.dlq === 'flaky' && random() < 0.3)) throw transientError('fuzz: dead-letter queue unavailable');
      for (const letter of letters) {
        const id = (letter.record as { eventID?: unknown } | undefined)?.eventID;
        const r = typeof id === 'string' ? source.byEventId.get(id) : undefined;
        if (!r) {
          violate(`a dead letter names no record of the shard (eventID ${String(id)})`);
          continue;
        }
        if (JSON.stringify(letter.record) !== JSON.stringify(r.raw)) violate(`the dead letter of ${describeRecord(r)} does not carry the record as received`);
        const sink = letter.sink === undefined ? undefined : Number(letter.sink.replace('sink-', ''));
        log.push({ type: 'dead-lettered', sink, record: r.index, invocation, instance, letter });
      }
    },
  });

  const makeObserver = (instance: number): StreamHandlerOptions['observer'] => {
    if (s.observer === 'none') return undefined;
    const hook = () => {
      if (s.observer === 'throws' && alive.has(instance) && random() < 0.3) throw new Error('fuzz: metrics hook failed');
    };
    return { delivered: hook, deadLettered: hook, retried: hook, batch: hook };
  };

  // The store is used only through the handler's options (its interface may change): a proxy
  // forwards every call, freezes it for a dead instance, and fails some in the flaky mode.
  const store = new MemoryProgressStore();
  const storeFor = (instance: number): StreamHandlerOptions['progressStore'] => {
    if (s.store === 'none') return undefined;
    return new Proxy(store, {
      get(target, property) {
        const value = Reflect.get(target, property, target) as unknown;
        if (typeof value !== 'function') return value;
        return (...args: unknown[]) => {
          if (!alive.has(instance)) return frozen();
          if (s.store === 'flaky' && random() < 0.3) return Promise.reject(transientError('fuzz: progress store unavailable'));
          return (value as (...a: unknown[]) => unknown).apply(target, args);
        };
      },
    }) as StreamHandlerOptions['progressStore'];
  };

  const hot = new Set(source.records.filter((r) => r.hot).map((r) => r.keyNumber));
  const keyNumberOf = (event: ChangeEvent) => Number(String(event.key['PK']).slice(2));
  const startInstance = (instance: number) => {
    alive.add(instance);
    const app = defineApp({
      table: 'FuzzTable',
      routes: s.sinks.map((plan, j) => {
        const r = route('*');
        const filtered = plan.filter === 'all' ? r : r.when((e) => takes(plan.filter, keyNumberOf(e), hot.has(keyNumberOf(e))));
        return filtered.to(makeSink(j, instance));
      }),
      retry: { maxAttempts: s.maxAttempts, baseDelayMs: s.baseDelayMs, maxDelayMs: Math.max(s.baseDelayMs, 2000), throttlingBaseDelayMs: s.baseDelayMs * 2 },
      concurrency: s.concurrency,
      numbers: s.numbers,
      ...(s.dlq === 'none' ? {} : { deadLetter: makeDlq(instance) }),
    });
    const observer = makeObserver(instance);
    const progressStore = storeFor(instance);
    const handler = createStreamHandler(app, { clock, logger: silentLogger, random, ...(observer ? { observer } : {}), ...(progressStore ? { progressStore } : {}) });
    return options.wrapHandler ? options.wrapHandler(handler) : handler;
  };

  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);
  process.on('unhandledRejection', onUnhandled);

  // --- the model's view of "done", kept as the run goes
  const deliveredTo = source.records.map(() => new Set<number>());
  const letters = source.records.map(() => new Set<number | undefined>());
  let seen = 0;
  const catchUp = () => {
    for (; seen < log.length; seen++) {
      const o = log[seen] as Observation;
      if (o.type === 'delivered') deliveredTo[o.record]?.add(o.sink);
      else letters[o.record]?.add(o.sink);
    }
  };
  const missing = (r: SourceRecord): string | undefined => {
    const l = letters[r.index] as Set<number | undefined>;
    if (r.poison !== undefined) return l.size > 0 ? undefined : `it is poison ({N: '${r.poison}'}, numbers: '${s.numbers}') and was not dead-lettered (issue path 6)`;
    if (l.has(undefined)) return undefined;
    for (const j of r.routes) if (!deliveredTo[r.index]?.has(j) && !l.has(j)) return `${sinkName(j)} has neither acknowledged nor dead-lettered it`;
    return undefined;
  };

  const reported = new Set<number>();
  const outcome = await simulateRandomEventSourceMapping({
    records: source.records.map((r) => r.raw),
    clock,
    random,
    startInstance,
    stopInstance: (instance) => alive.delete(instance),
    maxBatchSize: s.maxBatchSize,
    timeoutMs: s.timeoutMs,
    coldStartRate: s.coldStartRate,
    crashRate: s.crashRate,
    maxStalled: 60,
    beforeInvocation: (planned) => {
      invocation = planned.index;
    },
    afterInvocation: (inv) => {
      catchUp();
      if (inv.result === 'timeout') violate(`invocation ${inv.index} (records #${inv.from}..#${inv.from + inv.size - 1}) did not return within the function timeout of ${s.timeoutMs} ms: the handler hangs (issue path 4 when the observer throws; observer: ${s.observer})`);
      if (inv.result === 'error') violate(`invocation ${inv.index} threw: ${String((inv.error as Error | undefined)?.message ?? inv.error)} (observer: ${s.observer}); a handler reports failures, it never throws`);
      for (let i = 0; i < inv.checkpoint; i++) {
        const r = source.records[i] as SourceRecord;
        const why = reported.has(i) ? undefined : missing(r);
        if (why) {
          reported.add(i);
          violate(`after invocation ${inv.index} the checkpoint is at #${inv.checkpoint}, past ${describeRecord(r)}, which is not done: ${why}`);
          break;
        }
      }
    },
  });
  // Let stray rejections surface before looking.
  for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
  process.off('unhandledRejection', onUnhandled);
  catchUp();

  checkOutcome(s, source, log, outcome.invocations, outcome.checkpoint, violate);
  for (const reason of unhandled.slice(0, 3)) violate(`unhandled rejection: ${String((reason as Error | undefined)?.message ?? reason)} (observer: ${s.observer}; issue path 4)`);
  return { source, log, invocations: outcome.invocations, checkpoint: outcome.checkpoint, violations, unhandled };
};

// ---------------------------------------------------------------------------------------------
// The invariants checked once the run is over

/** The first record that can never be done: poison or rejected for good, with no working DLQ. */
export const blockingRecord = (s: Scenario, source: Source): SourceRecord | undefined => {
  if (s.dlq === 'ok' || s.dlq === 'flaky') return undefined;
  return source.records.find((r) => r.poison !== undefined || [...r.routes].some((j) => (s.sinks[j] as SinkPlan).rejects.some((x) => x % s.length === r.index)));
};

const checkOutcome = (s: Scenario, source: Source, log: readonly Observation[], invocations: readonly RandomInvocation[], checkpoint: number, violate: (m: string) => void): void => {
  const n = source.records.length;
  const blocker = blockingRecord(s, source);
  const end = blocker?.index ?? n;

  // Progress: the checkpoint gets to the end, or up to the record that blocks it for good.
  if (checkpoint < end) {
    const at = source.records[checkpoint] as SourceRecord;
    violate(`the run stalled at ${describeRecord(at)}: ${invocations.length} invocations, none moved the checkpoint in the last 60, yet nothing blocks it for good (dlq: ${s.dlq})`);
  }

  // Order per item and sink: first deliveries in stream order; a re-delivery is a contiguous
  // in-order replay that ends at the newest record delivered. A record dead-lettered for the sink
  // may be missing from the sequence (it may still be delivered in a later replay).
  const bySinkKey = new Map<string, Observation[]>();
  const push = (id: string, o: Observation) => {
    const list = bySinkKey.get(id);
    if (list) list.push(o);
    else bySinkKey.set(id, [o]);
  };
  for (const o of log) {
    const r = source.records[o.record] as SourceRecord;
    if (o.type === 'delivered' || o.sink !== undefined) push(`${o.sink}|${r.key}`, o);
    else for (const j of r.routes) push(`${j}|${r.key}`, o);
  }
  for (const [id, observed] of bySinkKey) {
    const [sink, key] = id.split('|') as [string, string];
    const seq = observed.flatMap((o) => (o.type === 'delivered' ? [o.record] : []));
    if (seq.length === 0) continue;
    const sorted = [...new Set(seq)].sort((a, b) => a - b);
    const ranks = new Map(sorted.map((x, i) => [x, i]));
    const show = () => seq.map((x) => `#${x}(v${source.records[x]?.version ?? '-'})`).join(' ');
    // A replay skips nothing but dead letters, except with a progress store that failed some
    // calls: a replay that began because a load failed (the handler then re-sends everything) may
    // be cut short by its batch's end, and the next, successful load skips what it says is done,
    // so the replay has a gap. A first delivery never skips a record that the sink gets later.
    const lettered = new Set<number>();
    const delivered = new Set<number>();
    let previous = -1;
    let bad: string | undefined;
    for (const o of observed) {
      if (o.type === 'dead-lettered') {
        lettered.add(o.record);
        continue;
      }
      const rank = ranks.get(o.record) as number;
      for (let k = previous + 1; k < rank && !bad; k++) {
        const skipped = sorted[k] as number;
        if (lettered.has(skipped) || (s.store === 'flaky' && delivered.has(skipped))) continue;
        bad = `#${o.record} came before #${skipped}, an older record of the item that the sink ${delivered.has(skipped) ? 'had got before (a replay with a gap)' : 'got later'}`;
      }
      if (bad) break;
      previous = rank;
      delivered.add(o.record);
    }
    // A replay the run cut short (its batch ended, the run stopped) may still be finishing; once
    // the checkpoint has passed the item's newest record the sink got (delivered or dead-lettered
    // for it), the replay must have reached that record.
    const last = observed[observed.length - 1] as Observation;
    const newest = Math.max(...observed.map((o) => o.record));
    if (!bad && last.record !== newest && newest < checkpoint) {
      bad = `the last record it got is #${last.record}, not the newest one it got, #${newest} (a stale change after a newer one)`;
    }
    if (bad) violate(`order of ${key} at ${sinkName(Number(sink))}: ${bad}; deliveries ${show()}`);
  }

  // No repeat to a sink that acknowledged: never within one invocation (issue path 9); with a
  // working progress store, never after an invocation that answered, up to the repeat, with no
  // crash, timeout or thrown error between (path 5). A cold start loses in-process memory, not
  // the store, so it excuses nothing; a crash excuses what its invocation had not saved.
  const answered = invocations.map((inv) => inv.result === 'done' || inv.result === 'partial' || inv.result === 'retry-all');
  const lastAck = new Map<string, Observation>();
  for (const o of log) {
    if (o.type !== 'delivered') continue;
    const id = `${o.sink}|${o.record}`;
    const before = lastAck.get(id);
    lastAck.set(id, o);
    if (!before) continue;
    const r = source.records[o.record] as SourceRecord;
    if (before.invocation === o.invocation) {
      violate(`${sinkName(o.sink)} got ${describeRecord(r)} twice in invocation ${o.invocation} although it acknowledged it the first time (issue path 9)`);
    } else if (s.store === 'memory' && answered.slice(before.invocation, o.invocation).every(Boolean)) {
      violate(`${sinkName(o.sink)} got ${describeRecord(r)} again in invocation ${o.invocation}, after acknowledging it in invocation ${before.invocation}, with a working progress store and no crash, timeout or thrown error in between (issue path 5)`);
    }
  }

  // Nothing lost and the projection equals the source, for the part of the shard the run passed.
  const done = source.records.map(() => ({ sinks: new Set<number>(), letters: new Set<number | undefined>() }));
  for (const o of log) {
    if (o.type === 'delivered') done[o.record]?.sinks.add(o.sink);
    else done[o.record]?.letters.add(o.sink);
  }
  for (const r of source.records.slice(0, Math.min(checkpoint, end))) {
    const d = done[r.index] as { sinks: Set<number>; letters: Set<number | undefined> };
    if (r.poison !== undefined) {
      if (d.letters.size === 0) violate(`poison ${describeRecord(r)} with {N: '${r.poison}'} (numbers: '${s.numbers}') was lost: not dead-lettered, yet the checkpoint passed it (issue path 6)`);
      continue;
    }
    for (const j of r.routes) {
      if (!d.sinks.has(j) && !d.letters.has(j) && !d.letters.has(undefined)) violate(`${describeRecord(r)} was lost for ${sinkName(j)}: neither delivered nor dead-lettered`);
    }
  }
  if (checkpoint === n) {
    for (let j = 0; j < s.sinks.length; j++) {
      const projection = new Map<string, number | null>();
      for (const o of log) {
        const r = source.records[o.record] as SourceRecord;
        if (!r.routes.has(j)) continue;
        if (o.type === 'delivered' ? o.sink === j : o.sink === j || o.sink === undefined) projection.set(r.key, r.version ?? null);
      }
      for (const [key, version] of source.table) {
        const r = source.records.find((x) => x.key === key) as SourceRecord;
        if (!r.routes.has(j)) continue;
        const got = projection.get(key);
        if (got !== version) violate(`projection of ${sinkName(j)}: ${key} is ${got === undefined ? 'missing' : got === null ? 'removed' : `v${got}`}, the source holds ${version === null ? 'no item (removed)' : `v${version}`}`);
      }
    }
  }
};
