import fc from 'fast-check';

/**
 * Scenarios for the worker fleet suite: what the fleet is made of and what happens to it, as plain
 * data that fast-check generates and shrinks. Times are virtual milliseconds; the lease duration is
 * fixed, so every other duration reads as a fraction of it.
 */

export const LEASE_DURATION_MS = 1000;

/** Lease store calls a stall can hold back. */
export type LeaseCall = 'take' | 'renew' | 'checkpoint' | 'list' | 'release' | 'create';
/** Streams calls a stall can hold back. */
export type StreamsCall = 'describeShards' | 'childShards' | 'getShardIterator' | 'getRecords';

/** One change per entry: `key` indexes the scenario's keys, `remove` deletes the item if it exists. */
export interface WriteOp {
  readonly key: number;
  readonly remove: boolean;
}

/** Worker references (`worker`) index the live workers at the moment the step runs (modulo their count). */
export type Step = { readonly dt: number } & (
  | { readonly kind: 'write'; readonly ops: readonly WriteOp[] }
  /** Splits an open shard (indexed among the open ones) into two children. */
  | { readonly kind: 'split'; readonly shard: number }
  /** Trims the oldest `percent` of a shard's records (24 h retention). */
  | { readonly kind: 'trim'; readonly shard: number; readonly percent: number }
  /** Every iterator handed out so far expires. */
  | { readonly kind: 'expire' }
  /** Starts a worker with id `w<id>` unless one with that id is live: a restart when an earlier one crashed or stopped. */
  | { readonly kind: 'start'; readonly id: number }
  /** The worker is abandoned as by SIGKILL: no timer fires for it and no call answers it again. */
  | { readonly kind: 'crash'; readonly worker: number }
  /**
   * Graceful stop(), not awaited: the scenario goes on while the worker drains. With `during`, the
   * worker's next call of that kind hangs for `ms` and stop() comes halfway through it.
   */
  | { readonly kind: 'stop'; readonly worker: number; readonly during: LeaseCall | undefined; readonly ms: number }
  /** The worker's next call of `call` hangs for `ms`, then lands (a late write) and answers. */
  | { readonly kind: 'stall'; readonly worker: number; readonly call: LeaseCall | StreamsCall; readonly ms: number }
  /** Sink failures: `alpha` fails whole requests, `beta` fails one key's entries; permanent ones skip retries. */
  | { readonly kind: 'sinkFail'; readonly sink: 'alpha' | 'beta'; readonly times: number; readonly key: number; readonly permanent: boolean }
  /** Virtual time leaps: for the whole fleet (every due timer fires at once), or one worker's wall clock steps (its timers do not). */
  | { readonly kind: 'jump'; readonly worker: number | undefined; readonly ms: number }
);

export interface Scenario {
  /** Seeds Math.random (the engine's backoff jitter) so a run replays exactly. */
  readonly seed: number;
  readonly initialPosition: 'TRIM_HORIZON' | 'LATEST';
  readonly shards: number;
  readonly keys: number;
  /** Changes written before the first worker starts. */
  readonly initialWrites: readonly WriteOp[];
  /** A steady workload besides the write steps: one change every this many ms until the faults heal (0: none). */
  readonly writeEveryMs: number;
  /** Until the faults heal, this share of alpha's requests and of beta's entries fail (transient). */
  readonly sinkFailureRate: number;
  /** Workers started at time 0. */
  readonly workers: number;
  readonly pollIntervalMs: number;
  readonly checkpointIntervalMs: number;
  readonly discoveryIntervalMs: number;
  readonly maxRecordsPerRead: number;
  readonly drainTimeoutMs: number;
  readonly sinkLatencyMs: number;
  readonly maxAttempts: number;
  readonly steps: readonly Step[];
}

/** How often each kind of step comes up; 0 leaves it out. */
export type Profile = Readonly<Record<Step['kind'], number>> & {
  readonly positions: readonly Scenario['initialPosition'][];
  readonly stallCalls: readonly (LeaseCall | StreamsCall)[];
  /** Range of a stall's length. */
  readonly stallMs: readonly [number, number];
  /** Lease calls a stop() may come in the middle of; empty: stops come at any moment. */
  readonly stopDuring: readonly LeaseCall[];
  readonly minWorkers: number;
  readonly maxSteps: number;
  /** Choices of {@link Scenario.writeEveryMs}. */
  readonly writeEveryMs: readonly number[];
  /** Choices of {@link Scenario.sinkFailureRate}. */
  readonly sinkFailureRate: readonly number[];
};

const D = LEASE_DURATION_MS;

// One change in six deletes: items come and go, and a projection must follow removes too.
const writeOp: fc.Arbitrary<WriteOp> = fc.record({ key: fc.nat({ max: 15 }), remove: fc.nat({ max: 5 }).map((n) => n === 0) });

const stepArb = (p: Profile): fc.Arbitrary<Step> => {
  const dt = fc.oneof({ weight: 3, arbitrary: fc.integer({ min: 0, max: D / 2 }) }, { weight: 1, arbitrary: fc.integer({ min: D / 2, max: 3 * D }) });
  const worker = fc.nat({ max: 5 });
  const kinds: { weight: number; arbitrary: fc.Arbitrary<Step> }[] = [];
  const add = (kind: Step['kind'], arb: () => fc.Arbitrary<Omit<Step, 'dt'>>) => {
    if (p[kind] > 0) kinds.push({ weight: p[kind], arbitrary: fc.tuple(dt, arb()).map(([t, s]) => ({ ...s, dt: t }) as Step) });
  };
  add('write', () => fc.record({ kind: fc.constant('write' as const), ops: fc.array(writeOp, { minLength: 1, maxLength: 12 }) }));
  add('split', () => fc.record({ kind: fc.constant('split' as const), shard: fc.nat({ max: 7 }) }));
  add('trim', () => fc.record({ kind: fc.constant('trim' as const), shard: fc.nat({ max: 7 }), percent: fc.integer({ min: 10, max: 100 }) }));
  add('expire', () => fc.record({ kind: fc.constant('expire' as const) }));
  add('start', () => fc.record({ kind: fc.constant('start' as const), id: fc.nat({ max: 3 }) }));
  add('crash', () => fc.record({ kind: fc.constant('crash' as const), worker }));
  add('stop', () =>
    fc.record({
      kind: fc.constant('stop' as const),
      worker,
      during: p.stopDuring.length === 0 ? fc.constant(undefined) : fc.option(fc.constantFrom(...p.stopDuring), { nil: undefined }),
      ms: fc.integer({ min: D / 10, max: D / 2 }),
    }),
  );
  add('stall', () =>
    fc.record({
      kind: fc.constant('stall' as const),
      worker,
      call: fc.constantFrom(...p.stallCalls),
      ms: fc.integer({ min: p.stallMs[0], max: p.stallMs[1] }),
    }),
  );
  add('sinkFail', () =>
    fc.record({
      kind: fc.constant('sinkFail' as const),
      sink: fc.constantFrom('alpha' as const, 'beta' as const),
      times: fc.integer({ min: 1, max: 6 }),
      key: fc.nat({ max: 15 }),
      permanent: fc.boolean(),
    }),
  );
  // Bounded leaps: a pause or a clock step longer than the fencing margin is beyond what leases
  // fenced by time can promise (docs/lease-table.md), so the model does not ask for it.
  add('jump', () => fc.record({ kind: fc.constant('jump' as const), worker: fc.option(worker, { nil: undefined }), ms: fc.integer({ min: -D / 10, max: D / 5 }) }));
  return fc.oneof(...kinds);
};

/** Scenarios for one profile. */
export const scenarioArb = (p: Profile): fc.Arbitrary<Scenario> =>
  fc.record({
    seed: fc.integer(),
    initialPosition: fc.constantFrom(...p.positions),
    shards: fc.integer({ min: 1, max: 3 }),
    keys: fc.integer({ min: 3, max: 12 }),
    initialWrites: fc.array(writeOp, { maxLength: 12 }),
    writeEveryMs: fc.constantFrom(...p.writeEveryMs),
    sinkFailureRate: fc.constantFrom(...p.sinkFailureRate),
    workers: fc.integer({ min: p.minWorkers, max: 3 }),
    pollIntervalMs: fc.constantFrom(20, 50, 100),
    checkpointIntervalMs: fc.constantFrom(50, 300, 2000),
    discoveryIntervalMs: fc.constantFrom(300, 1000, 5000),
    maxRecordsPerRead: fc.integer({ min: 1, max: 8 }),
    drainTimeoutMs: fc.constantFrom(100, 1000),
    sinkLatencyMs: fc.integer({ min: 1, max: 20 }),
    maxAttempts: fc.integer({ min: 1, max: 3 }),
    steps: fc.array(stepArb(p), { minLength: 1, maxLength: p.maxSteps }),
  });

const none: Omit<Profile, 'positions' | 'stallCalls' | 'stallMs' | 'stopDuring' | 'minWorkers' | 'maxSteps' | 'writeEveryMs' | 'sinkFailureRate'> = {
  write: 0,
  split: 0,
  trim: 0,
  expire: 0,
  start: 0,
  crash: 0,
  stop: 0,
  stall: 0,
  sinkFail: 0,
  jump: 0,
};

const leaseCalls: LeaseCall[] = ['take', 'renew', 'checkpoint', 'list', 'release', 'create'];

/** Profiles: each leans on one family of faults so that a failure points at its cause; `everything` mixes them all. */
export const profiles = {
  /** Crashes, restarts, graceful stops, splits, trims, expired iterators and sink failures, from TRIM_HORIZON or LATEST. No stalls. */
  lifecycle: {
    ...none,
    write: 10,
    split: 2,
    trim: 1,
    expire: 1,
    start: 2,
    crash: 3,
    stop: 1,
    sinkFail: 3,
    jump: 1,
    positions: ['TRIM_HORIZON', 'LATEST'],
    stallCalls: [],
    stallMs: [0, 0],
    stopDuring: [],
    minWorkers: 1,
    maxSteps: 30,
    writeEveryMs: [0, 50, 200],
    sinkFailureRate: [0, 0.1, 0.3],
  },
  /** Renewals, checkpoints, reads and discovery that hang (up to three lease durations) and land late, with clock leaps, among two or more workers. */
  stalls: {
    ...none,
    write: 12,
    split: 1,
    start: 1,
    stall: 4,
    sinkFail: 1,
    jump: 1,
    positions: ['TRIM_HORIZON'],
    // Discovery twice as often: it is the call with a retry loop and a rate limiter of its own.
    // Heartbeats ('renew') three times as often: one heartbeat keeps all of a worker's leases, so
    // its stall is the one that must fence every delivery of the worker.
    stallCalls: ['renew', 'renew', 'renew', 'checkpoint', 'describeShards', 'describeShards', 'list', 'childShards', 'getRecords', 'getShardIterator'],
    stallMs: [D / 2, 3 * D],
    stopDuring: [],
    minWorkers: 2,
    maxSteps: 40,
    writeEveryMs: [50, 100],
    sinkFailureRate: [0, 0.1],
  },
  /** Graceful stops and restarts, stops in the middle of lease calls, and short lease-call stalls (too short to starve a renewal). */
  shutdown: {
    ...none,
    write: 6,
    split: 1,
    start: 3,
    stop: 5,
    crash: 2,
    stall: 1,
    positions: ['TRIM_HORIZON'],
    stallCalls: ['take', 'release', 'create'],
    stallMs: [D / 20, D / 2],
    stopDuring: ['take'],
    minWorkers: 1,
    maxSteps: 30,
    writeEveryMs: [0, 50, 200],
    sinkFailureRate: [0],
  },
  /** All of it at once. */
  everything: {
    write: 10,
    split: 2,
    trim: 1,
    expire: 1,
    start: 2,
    crash: 2,
    stop: 2,
    stall: 3,
    sinkFail: 2,
    jump: 1,
    positions: ['TRIM_HORIZON', 'LATEST'],
    stallCalls: [...leaseCalls, 'describeShards', 'childShards', 'getShardIterator', 'getRecords'],
    stallMs: [D / 10, 3 * D],
    stopDuring: leaseCalls,
    minWorkers: 1,
    maxSteps: 30,
    writeEveryMs: [0, 50, 200],
    sinkFailureRate: [0, 0.1, 0.3],
  },
} satisfies Record<string, Profile>;
