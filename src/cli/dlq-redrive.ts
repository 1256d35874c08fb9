/**
 * The work of `dynamo-cdc dlq redrive` on the letters read: which routes each letter goes through,
 * the engines that send them, and what became of each. The command (dlq.ts) reads the source,
 * filters, and prints; this module neither reads nor prints.
 */
import type { App } from '../app.js';
import { systemClock } from '../core/clock.js';
import { Engine } from '../core/engine.js';
import type { RecordStatus } from '../core/engine.js';
import { describeError } from '../errors.js';
import type { DeadLetter, DeadLetterQueue, Logger } from '../ports.js';
import type { Route } from '../routes.js';
import { CliError } from './errors.js';
import type { LetterEntry, StoredLetter } from './letters.js';
import { letterKey } from './letters.js';

export type Outcome = 'delivered' | 'failed' | 'duplicate' | 'would-send';

/** What became of one letter. */
export interface LetterResult {
  readonly id: string;
  readonly eventID: string | null;
  readonly sink: string | null;
  readonly outcome: Outcome;
  /** Sinks the record went (or would go) to. */
  readonly sinks: readonly string[];
  readonly error?: string;
  readonly kind?: string;
  readonly key?: unknown;
}

/** The routes a letter is redriven through; `key` names the set, so letters sharing it share an engine. */
interface Plan {
  readonly key: string;
  readonly routes: readonly Route[];
}

/** Letters sent together: one plan and one shard, so the engine keeps their per-item order. */
interface Group {
  readonly plan: Plan;
  readonly streamArn: string;
  readonly shardId: string | undefined;
  readonly items: { entry: LetterEntry; letter: StoredLetter }[];
}

export interface RedriveOptions {
  readonly app: App;
  /** The config file, named when a letter's sink is no longer in its routes. */
  readonly configFile: string;
  /** Send a letter only through the routes to the sink that failed it. */
  readonly onlyFailedSink: boolean;
  readonly dryRun: boolean;
  readonly logger: Logger;
  /** The letter with its record (a claim-checked letter's record is fetched from S3). */
  readonly withRecord: (letter: StoredLetter) => Promise<StoredLetter>;
}

export const summaryOf = (entry: LetterEntry) => ({
  id: entry.id,
  eventID: entry.letter?.position.eventID ?? null,
  sink: entry.letter?.sink ?? null,
});

const NO_ROUTE = 'no route of the config matches it now';

/** Redrives letters batch by batch; {@link results} holds what became of each. */
export class Redrive {
  readonly results: LetterResult[] = [];
  readonly #o: RedriveOptions;
  readonly #engines = new Map<string, Engine>();
  /** `eventID` + sink of every letter sent (or planned) in this run. */
  readonly #claimed = new Set<string>();
  /** What fails again (the engines' new dead letters), keyed by the record object it carried. */
  #captured = new Map<unknown, DeadLetter>();
  readonly #capture: DeadLetterQueue = {
    name: 'dlq-redrive',
    send: async (letters) => {
      for (const l of letters) this.#captured.set(l.record, l);
    },
  };

  constructor(options: RedriveOptions) {
    this.#o = options;
  }

  /**
   * Sends (or, in a dry run, plans) the letters of one batch; resolves with the entries the source
   * may remove: the delivered ones and duplicates of letters already sent.
   */
  async batch(entries: readonly LetterEntry[]): Promise<LetterEntry[]> {
    const groups = new Map<string, Group>();
    const done: LetterEntry[] = [];
    for (const entry of entries) {
      const ready = await this.#prepare(entry, done);
      if (!ready) continue;
      const { letter, plan } = ready;
      if (this.#o.dryRun) {
        this.results.push(this.#plan(entry, letter, plan));
        continue;
      }
      const key = `${plan.key}\u0000${letter.position.streamArn}\u0000${letter.position.shardId ?? ''}`;
      const group = groups.get(key) ?? { plan, streamArn: letter.position.streamArn, shardId: letter.position.shardId, items: [] };
      group.items.push({ entry, letter });
      groups.set(key, group);
    }
    for (const group of groups.values()) await this.#deliver(group, done);
    return done;
  }

  /** The letter and its plan, or nothing when its result is already known (not a letter, no route, a duplicate). */
  async #prepare(entry: LetterEntry, done: LetterEntry[]): Promise<{ letter: StoredLetter; plan: Plan } | undefined> {
    const base = summaryOf(entry);
    if (!entry.letter) {
      this.results.push({ ...base, outcome: 'failed', sinks: [], error: `not a dead letter: ${entry.invalid ?? ''}` });
      return undefined;
    }
    let letter: StoredLetter;
    try {
      letter = await this.#o.withRecord(entry.letter);
    } catch (error) {
      if (error instanceof CliError) throw error;
      this.results.push({ ...base, outcome: 'failed', sinks: [], error: describeError(error).message });
      return undefined;
    }
    const plan = this.#planOf(letter);
    if (typeof plan === 'string') {
      this.results.push({ ...base, outcome: 'failed', sinks: [], error: plan });
      return undefined;
    }
    const once = letterKey(letter);
    if (this.#claimed.has(once)) {
      // The same record and sink twice (a dead-letter hand-off that was retried): one delivery is
      // enough. Should the first copy fail, it stays in the source, so nothing is lost.
      this.results.push({ ...base, outcome: 'duplicate', sinks: [] });
      if (!this.#o.dryRun) done.push(entry);
      return undefined;
    }
    this.#claimed.add(once);
    return { letter, plan };
  }

  /** A dry run's answer for a letter: where it would go, or why it would fail. */
  #plan(entry: LetterEntry, letter: StoredLetter, plan: Plan): LetterResult {
    const base = summaryOf(entry);
    const engine = this.#engineFor(plan);
    try {
      const event = engine.decode(letter.record, { streamArn: letter.position.streamArn, shardId: letter.position.shardId });
      const sinks = [...new Set(engine.targetsOf(event).map((t) => t.route.sink.name))];
      return { ...base, outcome: sinks.length ? 'would-send' : 'failed', sinks, kind: event.kind, key: event.key, ...(sinks.length ? {} : { error: NO_ROUTE }) };
    } catch (error) {
      return { ...base, outcome: 'failed', sinks: [], error: describeError(error).message };
    }
  }

  async #deliver(group: Group, done: LetterEntry[]): Promise<void> {
    const engine = this.#engineFor(group.plan);
    this.#captured = new Map();
    const records = group.items.map((i) => i.letter.record);
    const outcome = await engine.process(records, { streamArn: group.streamArn, ...(group.shardId ? { shardId: group.shardId } : {}) });
    group.items.forEach(({ entry, letter }, i) => {
      const status: RecordStatus = outcome.statuses[i] ?? 'unfinished';
      const base = summaryOf(entry);
      if (status === 'delivered') {
        this.results.push({ ...base, outcome: 'delivered', sinks: sinksOf(engine, letter) });
        done.push(entry);
        return;
      }
      const again = this.#captured.get(records[i]);
      const error = status === 'unrouted' ? NO_ROUTE : again ? `${again.error.name}: ${again.error.message}${again.sink ? ` (sink ${again.sink})` : ''}` : `not delivered (${status})`;
      this.results.push({ ...base, outcome: 'failed', sinks: [], error });
    });
  }

  #engineFor(plan: Plan): Engine {
    let engine = this.#engines.get(plan.key);
    if (!engine) {
      const redriveApp: App = { ...this.#o.app, routes: plan.routes, deadLetter: this.#capture };
      engine = new Engine({ app: redriveApp, logger: this.#o.logger, clock: systemClock });
      this.#engines.set(plan.key, engine);
    }
    return engine;
  }

  /** The routes for a letter, or why there are none. */
  #planOf(letter: StoredLetter): Plan | string {
    const { app } = this.#o;
    if (!this.#o.onlyFailedSink || letter.sink === undefined) return { key: '*', routes: app.routes };
    const routes = app.routes.filter((r) => r.sink.name === letter.sink);
    if (routes.length === 0) {
      const sinkNames = [...new Set(app.routes.map((r) => r.sink.name))];
      return `sink \`${letter.sink}\` is not in the routes of ${this.#o.configFile} (its sinks: ${sinkNames.join(', ')}). Add it back, or pass --all-routes to send the record through every route`;
    }
    return { key: `sink:${letter.sink}`, routes };
  }
}

/** The sinks a letter's record is routed to by `engine` (none when it cannot be decoded or routed). */
const sinksOf = (engine: Engine, letter: StoredLetter): string[] => {
  try {
    const event = engine.decode(letter.record, { streamArn: letter.position.streamArn, shardId: letter.position.shardId });
    return [...new Set(engine.targetsOf(event).map((t) => t.route.sink.name))];
  } catch {
    return [];
  }
};
