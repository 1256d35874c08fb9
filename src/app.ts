import { ConfigError } from './errors.js';
import { entityResolver } from './entities.js';
import type { Entity } from './entities.js';
import type { ChangeEvent, NumberMode } from './events.js';
import { replicationFilter } from './global-tables.js';
import type { GlobalTableOptions } from './global-tables.js';
import type { DeadLetterQueue } from './ports.js';
import type { Route } from './routes.js';

/** How records are grouped into lanes that are handled strictly in stream order. */
export type Ordering = 'item' | 'partitionKey' | ((event: ChangeEvent) => string);

/** Retry policy for sink and dead-letter deliveries. Exponential backoff with full jitter. */
export interface RetryOptions {
  /**
   * Attempts per record and sink, the first included; 1 turns retries off.
   * @default 6
   */
  readonly maxAttempts?: number;
  /** @default 100 */
  readonly baseDelayMs?: number;
  /** Ceiling of one backoff. @default 20000 */
  readonly maxDelayMs?: number;
  /** Base delay after a THROTTLING failure, which wants a longer pause than a TRANSIENT one. @default 500 */
  readonly throttlingBaseDelayMs?: number;
}

/** What a user writes: the table, the routes and the policies. Everything but `table` and `routes` is optional. */
export interface AppConfig {
  /** Name of the table whose stream is read. */
  readonly table: string;
  /**
   * Lane key: records with the same key are delivered strictly in stream order.
   * - `'item'`: the whole primary key (partition and sort key).
   * - `'partitionKey'`: the partition key only (set `partitionKey`).
   * - a function of the event returning a string.
   * @default 'item'
   */
  readonly ordering?: Ordering;
  /** Name of the table's partition key attribute; required with `ordering: 'partitionKey'`. */
  readonly partitionKey?: string;
  /** Where events go. Each matching route gets the event; a record matching none is done at once. */
  readonly routes: readonly Route[];
  /** Entities to recognise besides those the routes name (declaration order decides ties). */
  readonly entities?: readonly Entity<unknown>[];
  readonly retry?: RetryOptions;
  /**
   * Lanes (ordering keys) in flight at once.
   * @default 256
   */
  readonly concurrency?: number;
  /**
   * Where records go that cannot be delivered. Without one, a failed record blocks its lane: nothing
   * after it in that lane is delivered or acknowledged until it succeeds.
   */
  readonly deadLetter?: DeadLetterQueue;
  /** @default 'number' */
  readonly numbers?: NumberMode;
  /**
   * For a replica of a global table: deliver only the changes written in this region, so the app
   * running in each region does not send every change once per region. See docs/global-tables.md.
   * @default none: every change in the stream is delivered
   * @example globalTable: { deliver: 'local-writes', regionAttribute: 'writtenIn' }
   */
  readonly globalTable?: GlobalTableOptions;
}

/** A validated configuration with every default filled in. Made by {@link defineApp}. */
export interface App {
  readonly table: string;
  readonly ordering: Ordering;
  readonly partitionKey: string | undefined;
  readonly routes: readonly Route[];
  readonly entities: readonly Entity<unknown>[];
  readonly retry: Required<RetryOptions>;
  readonly concurrency: number;
  readonly deadLetter: DeadLetterQueue | undefined;
  readonly numbers: NumberMode;
  readonly entityOf: ReturnType<typeof entityResolver>;
  /** True for a change written by a global table's replication (from `globalTable`): it ends `replicated`. */
  readonly replicated?: (event: ChangeEvent) => boolean;
}

const show = (value: unknown): string => {
  if (typeof value === 'function') return '(function)';
  if (typeof value === 'string') return `\`${JSON.stringify(value)}\` (string)`;
  if (Array.isArray(value)) return '(array)';
  return `\`${String(value)}\` (${value === null ? 'null' : typeof value})`;
};

const integer = (field: string, value: unknown, min: number, fix: string): number => {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min) {
    throw new ConfigError(field, `must be an integer >= ${min}, got ${show(value)}. ${fix}`);
  }
  return value;
};

const validateRoute = (r: unknown, i: number, sinkNames: Map<string, unknown>): Route => {
  const field = `routes[${i}]`;
  const candidate = r as Partial<Route> | undefined;
  if (!candidate || typeof candidate !== 'object' || typeof candidate.entity !== 'string') {
    throw new ConfigError(field, `must be a route, got ${show(r)}. Build it with route(Entity).to(sink).`);
  }
  const sink = candidate.sink as Partial<Route['sink']> | undefined;
  if (!sink || typeof sink.send !== 'function') {
    throw new ConfigError(`${field}.sink`, `(${candidate.entity}) has no sink with a send() method. Finish the route with .to(sink).`);
  }
  if (typeof sink.name !== 'string' || sink.name === '') {
    throw new ConfigError(`${field}.sink.name`, `must be a non-empty string, got ${show(sink.name)}. Give the sink a name.`);
  }
  const limits = sink.limits as Partial<Route['sink']['limits']> | undefined;
  integer(`${field}.sink.limits.maxRecords`, limits?.maxRecords, 1, 'A sink must take at least one record per request.');
  if (typeof limits?.maxBytes !== 'number' || !(limits.maxBytes > 0)) {
    throw new ConfigError(`${field}.sink.limits.maxBytes`, `must be a number > 0 (Infinity for no limit), got ${show(limits?.maxBytes)}.`);
  }
  const other = sinkNames.get(sink.name);
  if (other !== undefined && other !== sink) {
    throw new ConfigError(`${field}.sink.name`, `\`${sink.name}\` is used by two different sinks. Give each sink its own name (the option \`name\`), so dead letters and metrics say which one failed.`);
  }
  sinkNames.set(sink.name, sink);
  return candidate as Route;
};

/**
 * Validates a configuration and fills in its defaults. Throws {@link ConfigError} naming the field
 * and the fix, so a bad configuration fails at start-up rather than on the first record.
 *
 * @example
 * export default defineApp({ table: 'TaskApp', routes: [route(Task).to(consoleSink())] });
 */
export const defineApp = (config: AppConfig): App => {
  if (!config || typeof config !== 'object') throw new ConfigError('(root)', `must be an object, got ${show(config)}. Pass defineApp({ table, routes }).`);
  if (typeof config.table !== 'string' || config.table.trim() === '') {
    throw new ConfigError('table', `must be the name of the table whose stream is read, got ${show(config.table)}. Set table: 'MyTable'.`);
  }
  const ordering = config.ordering ?? 'item';
  if (ordering !== 'item' && ordering !== 'partitionKey' && typeof ordering !== 'function') {
    throw new ConfigError('ordering', `must be 'item', 'partitionKey' or a function (event) => string, got ${show(ordering)}.`);
  }
  if (ordering === 'partitionKey' && (typeof config.partitionKey !== 'string' || config.partitionKey === '')) {
    throw new ConfigError('partitionKey', `must name the table's partition key attribute when ordering is 'partitionKey', got ${show(config.partitionKey)}. Set partitionKey: 'PK' (your attribute name).`);
  }
  if (!Array.isArray(config.routes) || config.routes.length === 0) {
    throw new ConfigError('routes', `must be a non-empty array of routes, got ${show(config.routes)}. Add route('*').to(consoleSink()) to see every event.`);
  }
  const sinkNames = new Map<string, unknown>();
  const routes = config.routes.map((r, i) => validateRoute(r, i, sinkNames));

  const retry = config.retry ?? {};
  if (typeof retry !== 'object') throw new ConfigError('retry', `must be an object, got ${show(retry)}.`);
  const maxAttempts = integer('retry.maxAttempts', retry.maxAttempts ?? 6, 1, 'Set it to 1 or more (1 turns retries off).');
  const baseDelayMs = integer('retry.baseDelayMs', retry.baseDelayMs ?? 100, 0, 'Set the first backoff in milliseconds.');
  const maxDelayMs = integer('retry.maxDelayMs', retry.maxDelayMs ?? 20_000, 0, 'Set the longest backoff in milliseconds.');
  const throttlingBaseDelayMs = integer('retry.throttlingBaseDelayMs', retry.throttlingBaseDelayMs ?? 500, 0, 'Set the first backoff after throttling in milliseconds.');
  if (maxDelayMs < baseDelayMs) {
    throw new ConfigError('retry.maxDelayMs', `(${maxDelayMs}) must be >= retry.baseDelayMs (${baseDelayMs}). Raise maxDelayMs or lower baseDelayMs.`);
  }
  const concurrency = integer('concurrency', config.concurrency ?? 256, 1, 'Set how many ordering keys may be in flight at once.');

  if (config.deadLetter !== undefined && (typeof config.deadLetter !== 'object' || typeof config.deadLetter?.send !== 'function')) {
    throw new ConfigError('deadLetter', `must be a dead-letter queue with a send() method, got ${show(config.deadLetter)}. Use sqsDeadLetterQueue({ queueUrl }) or fileDeadLetterQueue({ path }), or leave it out to block on failure.`);
  }
  const numbers = config.numbers ?? 'number';
  if (numbers !== 'number' && numbers !== 'auto' && numbers !== 'exact') {
    throw new ConfigError('numbers', `must be 'number', 'auto' or 'exact', got ${show(numbers)}.`);
  }

  const entities: Entity<unknown>[] = [];
  const byName = new Map<string, Entity<unknown>>();
  for (const e of [...((config.entities ?? []) as readonly Entity<unknown>[]), ...routes.flatMap((r) => (r.entityRef ? [r.entityRef] : []))]) {
    const known = byName.get(e.name);
    if (known === e) continue;
    if (known) throw new ConfigError('entities', `has two different entities named \`${e.name}\`. Give each entity its own name.`);
    byName.set(e.name, e);
    entities.push(e);
  }
  routes.forEach((r, i) => {
    if (r.entity !== '*' && !byName.has(r.entity)) {
      throw new ConfigError(`routes[${i}]`, `names entity \`${r.entity}\`, which is not declared. Pass the entity object to route() or add it to \`entities\`.`);
    }
  });

  return {
    table: config.table,
    ordering,
    partitionKey: config.partitionKey,
    routes,
    entities,
    retry: { maxAttempts, baseDelayMs, maxDelayMs, throttlingBaseDelayMs },
    concurrency,
    deadLetter: config.deadLetter,
    numbers,
    entityOf: entityResolver(entities),
    ...(config.globalTable === undefined ? {} : { replicated: replicationFilter(config.globalTable) }),
  };
};
