import { seededRandom } from '../../src/testing/index.js';
import { defineApp, route } from '../../src/index.js';
import type { ChangeEvent, Clock, Logger, Sink, SinkFailure } from '../../src/index.js';
import { FakeClock, MemoryLeaseStore, MemorySink, permanentError, ScriptedStreams, silentLogger, streamRecords, transientError } from '../../src/testing/index.js';
import { Worker } from '../../src/worker/worker.js';
import type { Lease, LeaseStore, NewLease, StreamsApi } from '../../src/worker/ports.js';
import { LEASE_DURATION_MS } from './worker-fleet-scenarios.js';
import type { LeaseCall, Scenario, Step, StreamsCall, WriteOp } from './worker-fleet-scenarios.js';

/**
 * The worker fleet model: real `Worker`s in one process over the scripted streams fake and a
 * memory lease table, on one virtual clock, driven by a scenario and checked against a reference
 * model of the source. Each worker process is an "incarnation" seen through its own doors (clock,
 * lease table, streams, sinks), so the model can freeze it (a crash), hold its calls back (a
 * stall) and tell who did what, and when.
 */

const D = LEASE_DURATION_MS;
const STREAM_TABLE = 'TaskApp';
/** Hash slots of the key space; a shard covers a range of them, a split halves its range. */
const SLOTS = 16;
const SINKS = ['alpha', 'beta'] as const;
type SinkName = (typeof SINKS)[number];

const never = <T>(): Promise<T> => new Promise<T>(() => {});


/** One change in the source, as the model knows it. */
interface SourceRecord {
  readonly seq: string;
  readonly n: bigint;
  readonly shard: string;
  readonly key: string;
  /** The item's Version after the change, `undefined` for a remove. */
  readonly image: number | undefined;
  readonly label: string;
  readonly tail: boolean;
  /** Trimmed away while some sink had not acknowledged it: the scenario lost it, not the fleet. */
  trimmedUndone: boolean;
  /**
   * When the stream trimmed it away (done or not). A replay that starts after that cannot read it
   * again: with `onTrimmedData: 'skip'` it goes on from the oldest record left, a gap it is allowed.
   */
  trimmedAt: number | undefined;
  readonly acked: Set<SinkName>;
}

interface ShardModel {
  readonly id: string;
  readonly parent: string | undefined;
  readonly lo: number;
  readonly hi: number;
  open: boolean;
  readonly records: SourceRecord[];
  /** The lowest record of the shard any worker ever handed to a sink (a LATEST start is pinned at or before it). */
  anchor: bigint | undefined;
}

/** One worker process. */
class Incarnation {
  readonly n: number;
  readonly id: string;
  worker!: Worker;
  /** Abandoned: its timers never fire again and no call answers it (SIGKILL). */
  dead = false;
  stopping = false;
  /** The op at which its stop() resolved. */
  stoppedOp: number | undefined;
  /** Its wall clock's step away from true virtual time. */
  offset = 0;
  readonly #stalls = new Map<string, number[]>();

  constructor(n: number, id: string) {
    this.n = n;
    this.id = id;
  }

  get name(): string {
    return `${this.id}#${this.n}`;
  }

  get live(): boolean {
    return !this.dead && this.stoppedOp === undefined;
  }

  /** Per shard, the lease counter of this worker's last take: the epoch its deliveries belong to. */
  readonly epochs = new Map<string, number>();
  /** Per shard, this worker's lease calls asked for and not landed yet (a hung lease table). */
  readonly outstanding = new Map<string, number>();

  /** True when a call about the shard's lease is still on its way. */
  waitingOn(shardId: string): boolean {
    return (this.outstanding.get(shardId) ?? 0) > 0;
  }
  /** A stop() to make halfway through the next stalled call of this kind. */
  stopDuring: string | undefined;

  stallNext(call: string, ms: number): void {
    this.#stalls.set(call, [...(this.#stalls.get(call) ?? []), ms]);
  }

  takeStall(call: string): number | undefined {
    return this.#stalls.get(call)?.shift();
  }

  healStalls(): void {
    this.#stalls.clear();
  }
}

interface Send {
  readonly inc: Incarnation;
  readonly sink: SinkName;
  readonly shards: ReadonlySet<string>;
  /** Per shard, the sender's lease epoch (see {@link Incarnation.epochs}). */
  readonly epochs: ReadonlyMap<string, number>;
  readonly start: number;
  end: number | undefined;
}

/** A doubt recorded when it happened, judged at the end when the model knows which records had to be delivered. */
interface Pending {
  readonly covered: readonly SourceRecord[];
  readonly message: (r: SourceRecord) => string;
}

export interface FleetResult {
  readonly violations: string[];
  readonly stats: Record<string, number>;
}

const keyName = (k: number) => `USER#${k}`;
const eventKey = (e: ChangeEvent) => String(e.key['PK']);

export class Fleet {
  readonly #s: Scenario;
  readonly #clock = new FakeClock();
  readonly #t0 = this.#clock.now();
  readonly #records = streamRecords({ table: STREAM_TABLE });
  readonly #streams: ScriptedStreams;
  readonly #leases = new MemoryLeaseStore();
  readonly #sinks: Record<SinkName, MemorySink>;
  #healed = false;
  /** Dice of the flaky sinks (Scenario.sinkFailureRate). */
  readonly #flaky: () => number;
  readonly #shards = new Map<string, ShardModel>();
  readonly #bySeq = new Map<string, SourceRecord>();
  readonly #byKey = new Map<string, SourceRecord[]>();
  /** The source table now: key -> Version (absent when removed). */
  readonly #table = new Map<string, number>();
  readonly #versions = new Map<string, number>();
  readonly #incarnations: Incarnation[] = [];
  /** Which incarnation holds each shard's lease in the table, by the writes that landed. */
  readonly #holder = new Map<string, Incarnation>();
  readonly #sends: Send[] = [];
  readonly #acks: Record<SinkName, { r: SourceRecord; by: Incarnation; at: number }[]> = { alpha: [], beta: [] };
  readonly #violations: string[] = [];
  readonly #pending: Pending[] = [];
  #op = 0;
  #tail = false;
  /** What happened, in order, when the scenario asked for a trace (to debug a counterexample). */
  readonly trace: string[] | undefined;
  readonly stats: Record<string, number> = { writes: 0, sends: 0, acks: 0, crashes: 0, stops: 0, starts: 0, stalls: 0, splits: 0, trims: 0, checkpoints: 0, virtualMs: 0 };

  constructor(scenario: Scenario, options: { trace?: boolean } = {}) {
    this.#s = scenario;
    this.trace = options.trace ? [] : undefined;
    this.#streams = new ScriptedStreams({ streamArn: this.#records.streamArn });
    // alpha keeps order within a request and fails whole requests; beta fails single entries.
    this.#sinks = {
      alpha: new MemorySink({ name: 'alpha', maxRecords: 4, preservesOrderWithinRequest: true, latencyMs: scenario.sinkLatencyMs, clock: this.#clock }),
      beta: new MemorySink({ name: 'beta', maxRecords: 3, latencyMs: scenario.sinkLatencyMs, clock: this.#clock }),
    };
    this.#flaky = seededRandom(scenario.seed ^ 0x2545f491);
    if (scenario.sinkFailureRate > 0) {
      this.#sinks.beta.failWhere(() => !this.#healed && this.#flaky() < scenario.sinkFailureRate, { error: () => transientError('flaky entry') });
    }
    const width = Math.ceil(SLOTS / scenario.shards);
    for (let i = 0; i < scenario.shards; i++) this.#addShard(undefined, i * width, Math.min(SLOTS, (i + 1) * width));
  }

  /** Runs the scenario to quiescence and judges it. */
  async run(): Promise<FleetResult> {
    const random = Math.random;
    Math.random = seededRandom(this.#s.seed);
    try {
      this.#write(this.#s.initialWrites);
      for (let i = 0; i < this.#s.workers; i++) this.#start(i);
      let steady = true;
      const workload = this.#steadyWrites(() => steady);
      for (const step of this.#s.steps) {
        await this.#clock.sleep(step.dt);
        this.#log(`step ${JSON.stringify(step)}`);
        this.#step(step);
      }
      steady = false;
      await workload;
      await this.#quiesce();
    } finally {
      for (const inc of this.#incarnations) inc.dead = true;
      Math.random = random;
    }
    this.stats['virtualMs'] = this.#t();
    this.#judge();
    return { violations: [...new Set(this.#violations)], stats: this.stats };
  }

  // --- the source ---------------------------------------------------------------------------

  #addShard(parent: string | undefined, lo: number, hi: number): ShardModel {
    const shard: ShardModel = { id: `shard-${this.#shards.size}`, parent, lo, hi, open: true, records: [], anchor: undefined };
    this.#shards.set(shard.id, shard);
    if (!parent) this.#streams.addShard({ shardId: shard.id });
    return shard;
  }

  #slotOf(key: number): number {
    return Math.floor((key * SLOTS) / this.#s.keys);
  }

  #shardOfKey(key: number): ShardModel {
    const slot = this.#slotOf(key);
    for (const shard of this.#shards.values()) if (shard.open && slot >= shard.lo && slot < shard.hi) return shard;
    throw new Error(`model: no open shard covers slot ${slot}`);
  }

  #write(ops: readonly WriteOp[]): void {
    for (const op of ops) {
      const k = op.key % this.#s.keys;
      const key = keyName(k);
      const current = this.#table.get(key);
      const version = (this.#versions.get(key) ?? 0) + 1;
      const item = (v: number) => ({ PK: key, SK: 'TASK#1', Version: v });
      let raw;
      let image: number | undefined;
      if (current === undefined) {
        raw = this.#records.insert(item(version));
        image = version;
      } else if (op.remove && !this.#tail) {
        raw = this.#records.remove(item(current));
        image = undefined;
      } else {
        raw = this.#records.modify(item(current), item(version));
        image = version;
      }
      this.#versions.set(key, version);
      if (image === undefined) this.#table.delete(key);
      else this.#table.set(key, image);
      const shard = this.#shardOfKey(k);
      this.#streams.append(shard.id, [raw]);
      const seq = raw.dynamodb.SequenceNumber;
      const record: SourceRecord = { seq, n: BigInt(seq), shard: shard.id, key, image, label: `${key} v${version}${image === undefined ? ' (remove)' : ''} #${seq.slice(-6)}`, tail: this.#tail, trimmedUndone: false, trimmedAt: undefined, acked: new Set() };
      shard.records.push(record);
      this.#bySeq.set(seq, record);
      this.#byKey.set(key, [...(this.#byKey.get(key) ?? []), record]);
      this.stats['writes']!++;
    }
  }

  /** The steady workload: one change to a random key every `writeEveryMs`. */
  async #steadyWrites(going: () => boolean): Promise<void> {
    if (this.#s.writeEveryMs === 0) return;
    const random = seededRandom(this.#s.seed ^ 0x5bd1e995);
    for (;;) {
      await this.#clock.sleep(this.#s.writeEveryMs);
      if (!going()) return;
      this.#write([{ key: Math.floor(random() * this.#s.keys), remove: random() < 1 / 6 }]);
    }
  }

  #openShards(): ShardModel[] {
    return [...this.#shards.values()].filter((s) => s.open);
  }

  #split(index: number): void {
    const open = this.#openShards();
    const parent = open[index % open.length];
    if (!parent || this.#shards.size >= 12) return;
    const mid = parent.hi - parent.lo > 1 ? parent.lo + Math.ceil((parent.hi - parent.lo) / 2) : parent.hi;
    parent.open = false;
    const a = this.#addShard(parent.id, parent.lo, mid);
    const b = this.#addShard(parent.id, mid, parent.hi);
    this.#streams.split(parent.id, [a.id, b.id]);
    this.stats['splits']!++;
  }

  #trim(index: number, percent: number): void {
    const shards = [...this.#shards.values()].filter((s) => s.records.length > 0);
    const shard = shards[index % Math.max(1, shards.length)];
    if (!shard) return;
    const upTo = shard.records[Math.max(0, Math.ceil((shard.records.length * percent) / 100) - 1)];
    if (!upTo) return;
    this.#streams.trim(shard.id, upTo.seq);
    for (const r of shard.records) {
      if (r.n > upTo.n) continue;
      r.trimmedAt ??= this.#clock.now();
      if (!this.#done(r)) r.trimmedUndone = true;
    }
    this.stats['trims']!++;
  }

  /** Virtual ms since the run began, for messages. */
  #t(at = this.#clock.now()): number {
    return Math.round(at - this.#t0);
  }

  #log(line: string): void {
    this.trace?.push(`t=${this.#t()} ${line}`);
  }

  #done(r: SourceRecord): boolean {
    return r.acked.size === SINKS.length;
  }

  /** Whether the fleet owes this record to every sink. */
  #required(r: SourceRecord): boolean {
    if (r.trimmedUndone) return false;
    if (this.#s.initialPosition === 'TRIM_HORIZON') return true;
    // LATEST: every record from the first one the fleet handed to a sink on. Earlier ones were
    // written before any reader had a position in the shard, or while nothing pinned it.
    const anchor = this.#shards.get(r.shard)?.anchor;
    return anchor !== undefined && r.n >= anchor;
  }

  // --- the workers --------------------------------------------------------------------------

  #live(): Incarnation[] {
    return this.#incarnations.filter((i) => i.live);
  }

  #start(id: number): void {
    const workerId = `w${id}`;
    if (this.#incarnations.some((i) => i.id === workerId && !i.dead && i.stoppedOp === undefined)) return;
    const inc = new Incarnation(this.#incarnations.length, workerId);
    this.#incarnations.push(inc);
    const app = defineApp({
      table: STREAM_TABLE,
      routes: [route('*').to(this.#sinkDoor(inc, 'alpha')), route('*').to(this.#sinkDoor(inc, 'beta'))],
      retry: { maxAttempts: this.#s.maxAttempts, baseDelayMs: 5, maxDelayMs: 40, throttlingBaseDelayMs: 20 },
    });
    inc.worker = new Worker({
      app,
      streamArn: this.#records.streamArn,
      streams: this.#streamsDoor(inc),
      leases: this.#leaseDoor(inc),
      workerId,
      logger: this.trace ? this.#traceLogger(inc.name, {}) : silentLogger,
      clock: this.#clockDoor(inc),
      leaseDurationMs: D,
      pollIntervalMs: this.#s.pollIntervalMs,
      maxRecordsPerRead: this.#s.maxRecordsPerRead,
      checkpointIntervalMs: this.#s.checkpointIntervalMs,
      discoveryIntervalMs: this.#s.discoveryIntervalMs,
      initialPosition: this.#s.initialPosition,
      onTrimmedData: 'skip',
      drainTimeoutMs: this.#s.drainTimeoutMs,
    });
    this.stats['starts']!++;
    inc.worker.start().catch((error: unknown) => {
      if (!inc.dead) this.#violations.push(`worker ${inc.name}: start() rejected: ${String(error)}`);
    });
  }

  #stop(inc: Incarnation): void {
    inc.stopping = true;
    this.#log(`${inc.name} stop()`);
    this.stats['stops']!++;
    inc.worker.stop().then(
      () => {
        inc.stoppedOp = ++this.#op;
        this.#log(`${inc.name} stop() resolved (lease calls on their way: ${JSON.stringify([...inc.outstanding].filter(([, n]) => n > 0))})`);
        // Unless a call about the lease still hangs (a stop() need not wait for a lease table that
        // does not answer: the lease expires instead), or the shard is finished: nobody resumes it.
        for (const [shard, holder] of this.#holder) {
          if (holder === inc && !inc.waitingOn(shard) && this.#leases.get(this.#records.streamArn, shard)?.checkpoint !== 'SHARD_END') {
            this.#violations.push(`worker ${inc.name}: stop() resolved while it still held the lease of ${shard} (not released)`);
          }
        }
      },
      (error: unknown) => this.#violations.push(`worker ${inc.name}: stop() rejected: ${String(error)}`),
    );
  }

  /** The workers' own log lines, in the trace (info and above). */
  #traceLogger(name: string, bindings: Record<string, unknown>): Logger {
    const at =
      (level: string) =>
      (a: object | string, b?: string): void => {
        if (level === 'debug') return;
        const [obj, msg] = typeof a === 'string' ? [{}, a] : [a, b ?? ''];
        this.#log(`${name} log ${level}: ${msg} ${JSON.stringify({ ...bindings, ...obj })}`);
      };
    return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error'), child: (more) => this.#traceLogger(name, { ...bindings, ...more }) };
  }

  #clockDoor(inc: Incarnation): Clock {
    const base = this.#clock;
    return {
      now: () => base.now() + inc.offset,
      sleep: (ms, signal) =>
        inc.dead
          ? never()
          : base.sleep(ms, signal).then(
              () => (inc.dead ? never<void>() : undefined),
              (error: unknown) => (inc.dead ? never<void>() : Promise.reject(error)),
            ),
    };
  }

  /** One call of a worker: frozen when it is dead, held back when a stall was scheduled for it; a held-back call still lands. */
  async #call<T>(inc: Incarnation, call: LeaseCall | StreamsCall | 'remove', fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    if (inc.dead) return never();
    // A call already on its way when stop() resolved may land later; a new one may not start.
    if (call === 'take' || call === 'renew' || call === 'checkpoint') this.#afterStop(inc, `asked the lease table to ${call}`);
    const ms = inc.takeStall(call);
    if (ms !== undefined) {
      this.stats['stalls']!++;
      if (inc.stopDuring === call) {
        inc.stopDuring = undefined;
        void this.#clock.sleep(ms / 2).then(() => {
          if (!inc.dead && !inc.stopping) this.#stop(inc);
        });
      }
      try {
        await this.#clock.sleep(ms, signal);
      } catch (error) {
        return inc.dead ? never() : Promise.reject(error);
      }
    }
    let result: T;
    try {
      result = await fn();
    } catch (error) {
      return inc.dead ? never() : Promise.reject(error);
    }
    return inc.dead ? never() : result;
  }

  #afterStop(inc: Incarnation, what: string): void {
    if (inc.stoppedOp !== undefined) this.#violations.push(`worker ${inc.name}: ${what} after its stop() resolved`);
  }

  #leaseDoor(inc: Incarnation): LeaseStore {
    const base = this.#leases;
    /** A call about one lease: counted as outstanding from the moment it is asked until it lands. */
    const about = <T>(call: LeaseCall, shardId: string, fn: () => Promise<T>): Promise<T> => {
      inc.outstanding.set(shardId, (inc.outstanding.get(shardId) ?? 0) + 1);
      this.#log(`${inc.name} asks to ${call} ${shardId}`);
      return this.#call(inc, call, async () => {
        inc.outstanding.set(shardId, (inc.outstanding.get(shardId) ?? 1) - 1);
        return fn();
      });
    };
    return {
      create: (lease: NewLease) =>
        this.#call(inc, 'create', async () => {
          const created = await base.create(lease);
          if (created) this.#log(`${inc.name} create ${lease.shardId} at ${lease.checkpoint} (parents ${lease.parents.join(',') || 'none'})`);
          return created;
        }),
      list: (streamArn: string) => this.#call(inc, 'list', () => base.list(streamArn)),
      take: (lease: Lease, owner: string) =>
        about('take', lease.shardId, async () => {
          const taken = await base.take(lease, owner);
          this.#log(`${inc.name} take ${lease.shardId} (counter ${lease.counter}, owner ${lease.owner}): ${taken ? 'taken' : 'refused'}`);
          if (taken) {
            this.#holder.set(lease.shardId, inc);
            inc.epochs.set(lease.shardId, taken.counter);
          }
          return taken;
        }),
      // One heartbeat per worker instead of a renewal per lease: stalls of 'renew' hold it back.
      fleet: (streamArn: string, consistent: boolean) => this.#call(inc, 'list', () => base.fleet(streamArn, consistent)),
      beat: (streamArn: string, workerId: string, previous: string | undefined, next: string, join?: boolean) =>
        this.#call(inc, 'renew', async () => {
          const ok = await base.beat(streamArn, workerId, previous, next, join);
          if (!ok) this.#log(`${inc.name} heartbeat${join ? ' (join)' : ''}: refused`);
          return ok;
        }),
      unregister: (streamArn: string, workerId: string, token: string) =>
        this.#call(inc, 'remove', async () => {
          const ok = await base.unregister(streamArn, workerId, token);
          this.#log(`${inc.name} unregister ${workerId}: ${ok ? 'ok' : 'refused'}`);
          return ok;
        }),
      touch: (streamArn: string) => this.#call(inc, 'remove', () => base.touch(streamArn)),
      checkpoint: (lease: Lease, checkpoint: string, doneAbove: readonly string[]) =>
        about('checkpoint', lease.shardId, async () => {
          const ok = await base.checkpoint(lease, checkpoint, doneAbove);
          this.#log(`${inc.name} checkpoint ${lease.shardId} ${checkpoint} doneAbove [${doneAbove.map((x) => x.slice(-6)).join(',')}]: ${ok ? 'ok' : 'refused'}`);
          if (ok) this.#checkpointed(inc, lease.shardId, checkpoint, doneAbove);
          return ok;
        }),
      release: (lease: Lease) =>
        about('release', lease.shardId, async () => {
          const ok = await base.release(lease);
          this.#log(`${inc.name} release ${lease.shardId}: ${ok ? 'ok' : 'refused'}`);
          if (ok && this.#holder.get(lease.shardId) === inc) this.#holder.delete(lease.shardId);
          return ok;
        }),
      remove: (lease: Lease) => this.#call(inc, 'remove', () => base.remove(lease)),
    };
  }

  #streamsDoor(inc: Incarnation): StreamsApi {
    const base = this.#streams;
    return {
      describeShards: (arn, signal) => this.#call(inc, 'describeShards', () => base.describeShards(arn, signal), signal),
      childShards: (arn, shardId, signal) => this.#call(inc, 'childShards', () => base.childShards(arn, shardId, signal), signal),
      getShardIterator: (arn, shardId, position, signal) =>
        this.#call(
          inc,
          'getShardIterator',
          () => {
            this.#log(`${inc.name} getShardIterator ${shardId} ${JSON.stringify(position)}`);
            return base.getShardIterator(arn, shardId, position, signal);
          },
          signal,
        ),
      getRecords: (iterator, limit, signal) =>
        this.#call(
          inc,
          'getRecords',
          async () => {
            const page = await base.getRecords(iterator, limit, signal);
            if (page.records.length > 0 || !page.nextIterator) this.#log(`${inc.name} getRecords: ${page.records.map((r) => this.#bySeq.get(String((r as { dynamodb?: { SequenceNumber?: string } }).dynamodb?.SequenceNumber))?.label).join(', ')}${page.nextIterator ? '' : ' (shard end)'}`);
            return page;
          },
          signal,
        ),
    };
  }

  #sinkDoor(inc: Incarnation, name: SinkName): Sink {
    const inner = this.#sinks[name];
    return {
      name: inner.name,
      limits: inner.limits,
      preservesOrderWithinRequest: inner.preservesOrderWithinRequest,
      send: async (events, signal): Promise<{ failed: SinkFailure[] }> => {
        if (inc.dead) return never();
        const records = events.map((e) => this.#recordOf(e));
        this.#sending(inc, records);
        const shards = new Set(records.map((r) => r.shard));
        const epochs = new Map([...shards].map((shard) => [shard, inc.epochs.get(shard) ?? -1]));
        const send: Send = { inc, sink: name, shards, epochs, start: this.#clock.now(), end: undefined };
        this.#sends.push(send);
        this.stats['sends']!++;
        let failed: SinkFailure[];
        try {
          // alpha keeps order within a request, so it fails whole requests only.
          if (name === 'alpha' && !this.#healed && this.#s.sinkFailureRate > 0 && this.#flaky() < this.#s.sinkFailureRate) {
            await this.#clock.sleep(this.#s.sinkLatencyMs, signal);
            throw transientError('flaky request');
          }
          ({ failed } = await inner.send(events, signal));
        } catch (error) {
          send.end = this.#clock.now();
          this.#log(`${inc.name} ${name} request of ${records.length} failed: ${String(error)}`);
          return inc.dead ? never() : Promise.reject(error);
        }
        send.end = this.#clock.now();
        const bad = new Set(failed.map((f) => f.index));
        this.#log(`${inc.name} ${name} acked [${records.filter((_, i) => !bad.has(i)).map((r) => r.label).join(', ')}]${bad.size ? ` failed ${bad.size}` : ''}`);
        records.forEach((r, i) => {
          if (bad.has(i)) return;
          r.acked.add(name);
          this.#acks[name].push({ r, by: inc, at: this.#clock.now() });
          this.stats['acks']!++;
        });
        return inc.dead ? never() : { failed };
      },
    };
  }

  #recordOf(event: ChangeEvent): SourceRecord {
    const r = this.#bySeq.get(event.meta.sequenceNumber);
    if (!r) throw new Error(`model: a sink got an event with unknown sequence number ${event.meta.sequenceNumber}`);
    return r;
  }

  /** Checks made as a delivery starts: the worker may deliver at all, and every ancestor shard is done. */
  #sending(inc: Incarnation, records: readonly SourceRecord[]): void {
    this.#afterStop(inc, `sent ${records[0]?.label ?? 'nothing'} of ${records[0]?.shard ?? '?'} to a sink`);
    const t = this.#t();
    for (const shardId of new Set(records.map((r) => r.shard))) {
      const shard = this.#shards.get(shardId);
      if (!shard) continue;
      const first = records.find((r) => r.shard === shardId);
      for (const r of records) if (r.shard === shardId && (shard.anchor === undefined || r.n < shard.anchor)) shard.anchor = r.n;
      const undone: SourceRecord[] = [];
      for (let p = shard.parent; p !== undefined; p = this.#shards.get(p)?.parent) {
        for (const r of this.#shards.get(p)?.records ?? []) if (!this.#done(r)) undone.push(r);
      }
      if (undone.length > 0) {
        this.#pending.push({ covered: undone, message: (r) => `parents before children: ${inc.name} sent ${first?.label} of ${shardId} at t=${t} before ${r.label} of its ancestor ${r.shard} was done` });
      }
    }
  }

  #checkpointed(inc: Incarnation, shardId: string, checkpoint: string, doneAbove: readonly string[]): void {
    this.stats['checkpoints']!++;
    const shard = this.#shards.get(shardId);
    if (!shard) return;
    const t = this.#t();
    let covers: (r: SourceRecord) => boolean;
    if (checkpoint === 'SHARD_END') covers = () => true;
    else if (checkpoint === 'TRIM_HORIZON' || checkpoint === 'LATEST') covers = () => false;
    else if (checkpoint.startsWith('AT_SEQUENCE_NUMBER:')) {
      const at = BigInt(checkpoint.slice('AT_SEQUENCE_NUMBER:'.length));
      covers = (r) => r.n < at;
    } else {
      const after = BigInt(checkpoint);
      covers = (r) => r.n <= after;
    }
    const above = new Set(doneAbove);
    const undone = shard.records.filter((r) => (covers(r) || above.has(r.seq)) && !this.#done(r));
    if (undone.length > 0) {
      this.#pending.push({ covered: undone, message: (r) => `checkpoint passed a record not done: ${inc.name} wrote ${checkpoint.slice(-6)} (doneAbove ${doneAbove.length}) for ${shardId} at t=${t} while ${r.label} was not acknowledged by every sink` });
    }
  }

  // --- the scenario -------------------------------------------------------------------------

  #step(step: Step): void {
    const live = this.#live();
    const pick = (i: number, from: Incarnation[] = live) => from[i % Math.max(1, from.length)];
    switch (step.kind) {
      case 'write':
        return this.#write(step.ops);
      case 'split':
        return this.#split(step.shard);
      case 'trim':
        return this.#trim(step.shard, step.percent);
      case 'expire':
        this.#streams.expireIterators();
        return;
      case 'start':
        return this.#start(step.id);
      case 'crash': {
        const inc = pick(step.worker, this.#incarnations.filter((i) => !i.dead && i.stoppedOp === undefined));
        if (inc) {
          inc.dead = true;
          this.stats['crashes']!++;
        }
        return;
      }
      case 'stop': {
        const inc = pick(step.worker, live.filter((i) => !i.stopping));
        if (!inc) return;
        if (step.during === undefined) this.#stop(inc);
        else {
          inc.stallNext(step.during, step.ms);
          inc.stopDuring = step.during;
        }
        return;
      }
      case 'stall':
        pick(step.worker)?.stallNext(step.call, step.ms);
        return;
      case 'sinkFail': {
        const error = step.permanent ? () => permanentError('scripted permanent failure') : () => transientError('scripted transient failure');
        if (step.sink === 'alpha') this.#sinks.alpha.failRequests(step.times, error);
        else {
          const key = keyName(step.key % this.#s.keys);
          this.#sinks.beta.failWhere((e) => !this.#healed && eventKey(e) === key, { times: step.times, error });
        }
        return;
      }
      case 'jump': {
        const inc = step.worker === undefined ? undefined : pick(step.worker);
        if (inc) inc.offset += step.ms;
        else this.#clock.advance(Math.abs(step.ms));
        return;
      }
    }
  }

  /** Heals every fault, makes sure a worker runs, writes a last change of every key and waits until the fleet owes nothing. */
  async #quiesce(): Promise<void> {
    this.#log('healed');
    this.#healed = true;
    this.#sinks.alpha.failRequests(0);
    for (const inc of this.#incarnations) {
      inc.healStalls();
      inc.stopDuring = undefined;
    }
    // Stalls in flight land (and stops due in their middle come) before the fleet is topped up.
    await this.#clock.sleep(3 * D);
    if (!this.#incarnations.some((i) => i.live && !i.stopping)) this.#start(this.#incarnations.length % 4);
    // Long enough for expired leases to be taken and every shard to be read.
    await this.#clock.sleep(4 * D);
    if (this.#s.initialPosition === 'LATEST') {
      // A LATEST shard owes nothing until the fleet delivered from it: keep writing to every open
      // shard until each has, so that the last changes below are owed.
      for (let round = 0; round < 20; round++) {
        const waiting = this.#openShards().filter((s) => s.anchor === undefined && this.#keysOf(s).length > 0);
        if (waiting.length === 0) break;
        this.#write(waiting.map((s) => ({ key: this.#keysOf(s)[round % this.#keysOf(s).length] as number, remove: false })));
        await this.#clock.sleep(D);
      }
    }
    this.#log('last changes');
    this.#tail = true;
    this.#write(Array.from({ length: this.#s.keys }, (_, key) => ({ key, remove: false })));
    const deadline = this.#clock.now() + 60_000;
    while (this.#clock.now() < deadline) {
      await this.#clock.sleep(250);
      if ([...this.#bySeq.values()].every((r) => !this.#required(r) || this.#done(r))) break;
    }
    // A little longer, so that a late re-delivery or a zombie reader shows itself.
    await this.#clock.sleep(3 * D);
  }

  #keysOf(shard: ShardModel): number[] {
    return Array.from({ length: this.#s.keys }, (_, k) => k).filter((k) => this.#slotOf(k) >= shard.lo && this.#slotOf(k) < shard.hi);
  }

  // --- the verdict --------------------------------------------------------------------------

  #judge(): void {
    const v = this.#violations;
    // A stopped worker leaves no lease behind, not even one whose take landed after stop() resolved.
    for (const [shard, holder] of this.#holder) {
      if (holder.stoppedOp !== undefined && !holder.waitingOn(shard) && this.#leases.get(this.#records.streamArn, shard)?.checkpoint !== 'SHARD_END') {
        v.push(`worker ${holder.name}: still held the lease of ${shard} at the end, after its stop() resolved (never released)`);
      }
    }
    // Nothing lost.
    for (const r of this.#bySeq.values()) {
      if (!this.#required(r)) continue;
      for (const sink of SINKS) if (!r.acked.has(sink)) v.push(`lost: ${r.label} of ${r.shard} was never delivered to sink ${sink}${r.tail ? ' (a last change, written after the fleet settled)' : ''}`);
    }
    // Liveness of LATEST shards: the last changes below must have been owed.
    for (const r of this.#bySeq.values()) if (r.tail && !this.#required(r) && !r.trimmedUndone) v.push(`lost: no record of ${r.shard} was ever delivered, not even its last change ${r.label}`);
    // Doubts recorded on the way, for records the fleet owed.
    for (const p of this.#pending) {
      const owed = p.covered.find((r) => this.#required(r));
      if (owed) v.push(p.message(owed));
    }
    for (const sink of SINKS) this.#judgeOrder(sink);
    this.#judgeOverlap();
    for (const sink of SINKS) {
      const projection = new Map<string, number>();
      for (const { r } of this.#acks[sink]) {
        if (r.image === undefined) projection.delete(r.key);
        else projection.set(r.key, r.image);
      }
      for (const key of new Set([...projection.keys(), ...this.#table.keys()])) {
        if (projection.get(key) !== this.#table.get(key)) v.push(`projection at sink ${sink} differs from the source: ${key} is ${show(projection.get(key))} there, ${show(this.#table.get(key))} in the table`);
      }
    }
  }

  /**
   * Per key and sink: a record delivered for the first time comes after every one delivered
   * before it (first deliveries in order), and a re-delivery is a replay: it starts anywhere at or
   * below the newest delivered, then goes on record by record (skipping only records the fleet
   * did not owe) until it reaches the newest again.
   */
  #judgeOrder(sink: SinkName): void {
    const index = new Map<string, number>();
    for (const records of this.#byKey.values()) records.forEach((r, i) => index.set(r.seq, i));
    const perKey = new Map<string, { r: SourceRecord; by: Incarnation; at: number }[]>();
    for (const ack of this.#acks[sink]) perKey.set(ack.r.key, [...(perKey.get(ack.r.key) ?? []), ack]);
    keys: for (const [key, delivered] of perKey) {
      const source = this.#byKey.get(key) ?? [];
      // What a replay still had to re-deliver before a delivery at `at`: not what the stream had
      // trimmed by then (a re-read from the oldest record left skips it, as onTrimmedData 'skip' allows).
      const owedBetween = (from: number, to: number, at: number) => source.slice(from + 1, to).filter((r) => this.#required(r) && !(r.trimmedAt !== undefined && r.trimmedAt <= at));
      const seen = new Set<number>();
      let newest = -1;
      let previous = -1;
      const history: string[] = [];
      for (const { r, by, at } of delivered) {
        const d = index.get(r.seq) as number;
        history.push(`v${r.label.split(' v')[1]?.split(' ')[0]}(${by.name})`);
        const shown = () => history.slice(-12).join(' ');
        if (d > newest) {
          if (previous < newest && owedBetween(previous, newest + 1, at).length > 0) {
            this.#violations.push(`order at sink ${sink}: ${key} re-delivery stopped at ${source[previous]?.label} and jumped to ${r.label} (deliveries: ${shown()})`);
            continue keys;
          }
          newest = d;
        } else if (!seen.has(d)) {
          this.#violations.push(`order at sink ${sink}: ${key} got ${r.label} for the first time after the newer ${source[newest]?.label} (deliveries: ${shown()})`);
          continue keys;
        } else if (d > previous && owedBetween(previous, d, at).length > 0) {
          this.#violations.push(`order at sink ${sink}: ${key} re-delivery skipped from ${source[previous]?.label} to ${r.label}, a stale change out of a replay (deliveries: ${shown()})`);
          continue keys;
        }
        seen.add(d);
        previous = d;
      }
    }
  }

  /**
   * No two workers deliver the same shard at overlapping virtual times, and once the holder of a
   * newer lease epoch has begun delivering a shard, no holder of an older one delivers it again.
   */
  #judgeOverlap(): void {
    const end = this.#clock.now();
    const byShard = new Map<string, Send[]>();
    for (const send of this.#sends) for (const shard of send.shards) byShard.set(shard, [...(byShard.get(shard) ?? []), send]);
    for (const [shard, sends] of byShard) {
      sends.sort((a, b) => a.start - b.start);
      let newest: Send | undefined;
      for (const s of sends) {
        const epoch = s.epochs.get(shard) ?? -1;
        const newestEpoch = newest?.epochs.get(shard) ?? -1;
        if (newest && epoch < newestEpoch) {
          this.#violations.push(
            `stale owner delivered ${shard}: ${s.inc.name} (lease epoch ${epoch}) sent to ${s.sink} at t=${this.#t(s.start)}, after ${newest.inc.name} (epoch ${newestEpoch}) had begun delivering it at t=${this.#t(newest.start)}`,
          );
          break;
        }
        if (!newest || epoch > newestEpoch) newest = s;
      }
      const open: Send[] = [];
      for (const s of sends) {
        for (let i = open.length - 1; i >= 0; i--) if ((open[i]?.end ?? end) <= s.start) open.splice(i, 1);
        const other = open.find((o) => o.inc !== s.inc);
        if (other) {
          this.#violations.push(
            `two workers delivered ${shard} at once: ${other.inc.name} to ${other.sink} during t=[${this.#t(other.start)},${this.#t(other.end ?? end)}] and ${s.inc.name} to ${s.sink} during t=[${this.#t(s.start)},${this.#t(s.end ?? end)}]`,
          );
          break;
        }
        open.push(s);
      }
    }
  }
}

const show = (v: number | undefined) => (v === undefined ? 'absent' : `v${v}`);
