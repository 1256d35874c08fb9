import type { RecordStatus } from './engine.js';

/**
 * Where a lane is. `waiting` covers sending, backing off between attempts and dead-lettering alike:
 * a record's targets can be in different ones at once, and the lane only waits for the outcome.
 */
export type LaneState = 'idle' | 'choosing' | 'waiting' | 'blocked' | 'stopped' | 'done';

/** What a lane asks of the batch it runs in (the engine's `Run`); `R` is a run of records. */
export interface LaneHost<R> {
  /** One status per record of the batch, by index; a lane writes only its own records'. */
  readonly statuses: RecordStatus[];
  /** True when the record was done in an earlier delivery (`ProcessOptions.alreadyDone`). */
  alreadyDone(index: number): boolean;
  /** True once the deadline has passed or the batch was aborted: no new work starts. */
  readonly stopping: boolean;
  /** `indexes[n]` and the records after it that can travel as one run, or `undefined` when fewer than two can. */
  collectRun(indexes: readonly number[], n: number): R | undefined;
  /** Starts a run; `settled` gets one status per record, up to the first that is not done; never synchronously. */
  deliverRun(run: R, settled: (statuses: readonly RecordStatus[]) => void): void;
  /** Starts one record; `settled` may be called synchronously (unrouted, skipped). */
  handle(index: number, settled: (status: RecordStatus) => void): void;
  /**
   * A lane started waiting, stopped waiting, or ended (the host sends waiting requests when all
   * lanes wait, and starts the next lane when one ends: `laneEnded` may start lanes synchronously).
   */
  laneWaits(): void;
  laneResumes(): void;
  laneEnded(): void;
  /** Logs an error the lane caught in its own machinery. */
  internalError(error: unknown): void;
}

/**
 * One ordering key's records of a batch, handled strictly one after another: record n+1 starts
 * only once record n is done (or travels with it in one run to destinations that keep a request's
 * order). A small state machine, driven by callbacks so that the hot path allocates one closure per
 * record and no promise:
 *
 * | state      | on                                              | to         | doing                                  |
 * |------------|-------------------------------------------------|------------|----------------------------------------|
 * | `idle`     | `start()`                                       | `choosing` |                                        |
 * | `choosing` | next record done in an earlier delivery         | `choosing` | it is `skipped`                        |
 * | `choosing` | deadline passed or batch aborted                | `stopped`  | the rest stays `unfinished`            |
 * | `choosing` | two or more records can travel as a run         | `waiting`  | `host.deliverRun`                      |
 * | `choosing` | a record                                        | `waiting`  | `host.handle` (unless it settles at once: stays `choosing`) |
 * | `choosing` | no record left                                  | `done`     |                                        |
 * | `waiting`  | settled: delivered, dead-lettered, unrouted, skipped | `choosing` | the next record                   |
 * | `waiting`  | settled: `unfinished`                           | `stopped`  | the rest stays `unfinished`            |
 * | `choosing`, `waiting` | settled: `blocked`                   | `blocked`  | the rest is `blocked`                  |
 * | any live   | a step threw (a clock, a logger)                | `blocked`  | logged; the rest is `blocked`          |
 *
 * `blocked`, `stopped` and `done` are final: the host is told (`laneEnded`), the promise of
 * {@link start} resolves, and a callback that arrives late (after a step threw) changes nothing.
 */
export class Lane<R> {
  #state: LaneState = 'idle';
  /** Position in `indexes` of the next record to settle. */
  #n = 0;
  /** A status that arrived while the lane was still choosing (the record settled synchronously). */
  #early: RecordStatus | undefined;
  readonly #host: LaneHost<R>;
  readonly #indexes: readonly number[];
  #resolve: (() => void) | undefined;

  constructor(host: LaneHost<R>, indexes: readonly number[]) {
    this.#host = host;
    this.#indexes = indexes;
  }

  get state(): LaneState {
    return this.#state;
  }

  /** `idle` → `choosing`; resolves when the lane reaches a final state. Never rejects. */
  start(): Promise<void> {
    return new Promise<void>((resolve) => {
      this.#resolve = resolve;
      this.run();
    });
  }

  /**
   * `idle` → `choosing`, without a promise: the host learns of the end through `laneEnded`. The
   * engine runs lanes this way, since a batch can hold one lane per record. Never throws.
   */
  run(): void {
    this.#state = 'choosing';
    try {
      this.#choose();
    } catch (error) {
      this.#broke(error);
    }
  }

  /** In `choosing`: starts records until one has to be waited for, or the lane ends. */
  #choose(): void {
    const host = this.#host;
    const indexes = this.#indexes;
    while (this.#state === 'choosing') {
      if (this.#n >= indexes.length) return this.#end('done');
      const index = indexes[this.#n] as number;
      if (host.alreadyDone(index)) {
        this.#record('skipped');
        continue;
      }
      if (host.stopping) return this.#end('stopped');
      const at = this.#n;
      const run = at + 1 < indexes.length ? host.collectRun(indexes, at) : undefined;
      if (run !== undefined) {
        host.deliverRun(run, (statuses) => this.#onRunSettled(at, statuses));
        return this.#wait();
      }
      this.#early = undefined;
      host.handle(index, (status) => this.#onSettled(at, status));
      const early = this.#early as RecordStatus | undefined;
      if (early === undefined) return this.#wait();
      this.#early = undefined;
      this.#record(early);
    }
  }

  /** `choosing` → `waiting`. */
  #wait(): void {
    this.#state = 'waiting';
    this.#host.laneWaits();
  }

  /** A record settled: at once (still `choosing`) or later (`waiting` → `choosing`). */
  #onSettled(at: number, status: RecordStatus): void {
    if (at !== this.#n) return; // late: the lane ended (or moved on) without it
    if (this.#state === 'choosing') {
      this.#early = status;
      return;
    }
    if (this.#state !== 'waiting') return;
    this.#resume();
    try {
      this.#record(status);
      this.#choose();
    } catch (error) {
      this.#broke(error);
    }
  }

  /** A run settled: one status per record, up to the first that is not done. */
  #onRunSettled(at: number, statuses: readonly RecordStatus[]): void {
    if (at !== this.#n || this.#state !== 'waiting') return;
    this.#resume();
    try {
      for (const status of statuses) {
        this.#record(status);
        if (this.state !== 'choosing') return; // blocked or stopped
      }
      this.#choose();
    } catch (error) {
      this.#broke(error);
    }
  }

  /** `waiting` → `choosing`. */
  #resume(): void {
    this.#state = 'choosing';
    this.#host.laneResumes();
  }

  /** Writes the status of the record at `#n` and moves past it; `blocked` and `unfinished` end the lane. */
  #record(status: RecordStatus): void {
    this.#host.statuses[this.#indexes[this.#n] as number] = status;
    this.#n++;
    if (status === 'blocked') this.#block();
    else if (status === 'unfinished') this.#end('stopped');
  }

  /** → `blocked`: every record not settled yet is blocked too (an earlier record of its lane is). */
  #block(): void {
    const { statuses } = this.#host;
    for (let m = this.#n; m < this.#indexes.length; m++) statuses[this.#indexes[m] as number] = 'blocked';
    this.#n = this.#indexes.length;
    this.#end('blocked');
  }

  /** → a final state: the lane's promise resolves. */
  #end(state: 'blocked' | 'stopped' | 'done'): void {
    const wasWaiting = this.#state === 'waiting';
    this.#state = state;
    this.#resolve?.();
    if (wasWaiting) this.#host.laneResumes();
    this.#host.laneEnded();
  }

  /** A step threw: the lane ends `blocked` from the record it was at (not done: delivered again later). */
  #broke(error: unknown): void {
    this.#host.internalError(error);
    if (this.#state === 'blocked' || this.#state === 'stopped' || this.#state === 'done') return;
    try {
      this.#block();
    } catch (again) {
      this.#host.internalError(again);
    }
  }
}
