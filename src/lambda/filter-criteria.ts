import type { App } from '../app.js';
import { ConfigError } from '../errors.js';
import type { Entity, KeyPattern } from '../entities.js';
import type { Route } from '../routes.js';
import { expired } from '../routes.js';

/** Options of {@link compileLambdaFilter} and {@link lambdaFilterCriteria}. */
export interface LambdaFilterOptions {
  /**
   * Most filters the event source mapping may hold. Lambda allows 5 by default, and up to 10 after
   * a quota increase; past it, filters are merged into wider ones.
   * @default 5
   */
  readonly maxFilters?: number;
  /**
   * Longest pattern, in characters of its JSON. Lambda allows 4096; a longer one is widened.
   * @default 4096
   */
  readonly maxPatternLength?: number;
  /**
   * Which records whose image fails their entity's schema reach the function, to be dead-lettered.
   * The filter cannot run a schema, so it decides by key and kind:
   * - `'routed'`: those some route would take if they were valid.
   * - `'all'`: every record of an entity with a schema, as without a filter (the engine checks the
   *   schema before routing, so it dead-letters an invalid item even of a kind no route takes).
   * @default 'routed'
   */
  readonly invalidItems?: 'routed' | 'all';
}

/** The `FilterCriteria` of `CreateEventSourceMapping` and of CloudFormation's `AWS::Lambda::EventSourceMapping`. */
export interface FilterCriteria {
  readonly Filters: readonly { readonly Pattern: string }[];
}

/** What {@link compileLambdaFilter} made of the routes. */
export interface CompiledLambdaFilter {
  /**
   * The filter patterns (objects; `JSON.stringify` one for a `Pattern`), or `undefined` when every
   * record must reach the function (a `'*'` route, or a route the filter cannot tell apart).
   */
  readonly patterns: readonly Record<string, unknown>[] | undefined;
  /** Each place where the filter lets through more than the routes take, and why. */
  readonly widenings: readonly string[];
}

/** One condition on a leaf of the record: equal to a string, or starting with one. */
type Matcher = { readonly equals: string } | { readonly prefix: string };

/** A conjunction of leaf conditions; a leaf's matchers are alternatives. Keys are JSON paths. */
type Clause = Map<string, Matcher[]>;

const EVENT_NAME = JSON.stringify(['eventName']);
const IDENTITY_TYPE = JSON.stringify(['userIdentity', 'type']);
const IDENTITY_PRINCIPAL = JSON.stringify(['userIdentity', 'principalId']);
const keyPath = (attribute: string): string => JSON.stringify(['dynamodb', 'Keys', attribute, 'S']);

const KIND_NAMES = { insert: 'INSERT', modify: 'MODIFY', remove: 'REMOVE' } as const;

const REGEX_META = new Set(['\\', '^', '$', '.', '|', '?', '*', '+', '(', ')', '[', ']', '{', '}']);
const QUANTIFIERS = new Set(['?', '*', '+', '{']);

/** True when the pattern has a `|` outside groups and classes, which makes a leading `^` apply to one branch only. */
const hasTopLevelAlternation = (source: string): boolean => {
  let depth = 0;
  let inClass = false;
  for (let i = 0; i < source.length; i++) {
    const c = source[i];
    if (c === '\\') i++;
    else if (inClass) inClass = c !== ']';
    else if (c === '[') inClass = true;
    else if (c === '(') depth++;
    else if (c === ')') depth--;
    else if (c === '|' && depth === 0) return true;
  }
  return false;
};

/**
 * The literal text every string a regular expression accepts starts with, or `undefined` when
 * there is none this can prove: only `^` followed by plain characters (or escaped punctuation)
 * counts, and a character a quantifier follows is left out.
 */
export const literalPrefixOf = (pattern: RegExp): string | undefined => {
  // i: case-insensitive; m: `^` also matches after a newline; g/y: `test` is stateful.
  if (/[imgy]/.test(pattern.flags)) return undefined;
  const source = pattern.source;
  if (!source.startsWith('^') || hasTopLevelAlternation(source)) return undefined;
  const chars: string[] = [];
  let i = 1;
  while (i < source.length) {
    const c = source[i] as string;
    if (c === '\\') {
      const next = source[i + 1];
      if (next === undefined || !(REGEX_META.has(next) || next === '/' || next === '-')) break;
      chars.push(next);
      i += 2;
    } else if (REGEX_META.has(c)) {
      break;
    } else {
      chars.push(c);
      i++;
    }
  }
  if (QUANTIFIERS.has(source[i] ?? '')) chars.pop();
  const prefix = chars.join('');
  return prefix === '' ? undefined : prefix;
};

const keyMatcher = (pattern: KeyPattern): Matcher | undefined => {
  if (typeof pattern === 'string') return pattern === '' ? undefined : { prefix: pattern };
  const prefix = literalPrefixOf(pattern);
  return prefix === undefined ? undefined : { prefix };
};

/** `a` accepts only strings `b` accepts. */
const implies = (a: Matcher, b: Matcher): boolean => {
  const av = 'equals' in a ? a.equals : a.prefix;
  return 'prefix' in b ? av.startsWith(b.prefix) : 'equals' in a && a.equals === b.equals;
};

/** The alternatives, without any another one already accepts, in a stable order. */
const union = (matchers: readonly Matcher[]): Matcher[] => {
  const out: Matcher[] = [];
  for (const m of matchers) {
    if (out.some((o) => implies(m, o))) continue;
    for (let i = out.length - 1; i >= 0; i--) if (implies(out[i] as Matcher, m)) out.splice(i, 1);
    out.push(m);
  }
  return out.sort((x, y) => JSON.stringify(x).localeCompare(JSON.stringify(y)));
};

/** Every record `a` matches, `b` matches too. */
const subsumed = (a: Clause, b: Clause): boolean => {
  for (const [field, bs] of b) {
    const as = a.get(field);
    if (as === undefined || !as.every((m) => bs.some((o) => implies(m, o)))) return false;
  }
  return true;
};

const sameMatchers = (a: readonly Matcher[], b: readonly Matcher[]): boolean => JSON.stringify(union(a)) === JSON.stringify(union(b));

/** The one clause matching exactly what `a` or `b` match, when they differ in one field only. */
const exactMerge = (a: Clause, b: Clause): Clause | undefined => {
  if (a.size !== b.size) return undefined;
  let differing: string | undefined;
  for (const [field, as] of a) {
    const bs = b.get(field);
    if (bs === undefined) return undefined;
    if (sameMatchers(as, bs)) continue;
    if (differing !== undefined) return undefined;
    differing = field;
  }
  const merged = new Map(a);
  if (differing !== undefined) merged.set(differing, union([...(a.get(differing) as Matcher[]), ...(b.get(differing) as Matcher[])]));
  return merged;
};

/** A clause matching everything `a` or `b` match, and maybe more: fields of one only are dropped, the others joined. */
const wideMerge = (a: Clause, b: Clause): Clause => {
  const merged: Clause = new Map();
  for (const [field, as] of a) {
    const bs = b.get(field);
    if (bs !== undefined) merged.set(field, union([...as, ...bs]));
  }
  return merged;
};

/** Drops clauses another one covers and joins those that differ in one field, until nothing changes. */
const normalize = (clauses: Clause[]): Clause[] => {
  let out = [...clauses];
  for (let changed = true; changed; ) {
    changed = false;
    out = out.filter((c, i) => !out.some((o, j) => j !== i && subsumed(c, o) && (!subsumed(o, c) || j < i)));
    outer: for (let i = 0; i < out.length; i++) {
      for (let j = i + 1; j < out.length; j++) {
        const merged = exactMerge(out[i] as Clause, out[j] as Clause);
        if (merged === undefined) continue;
        out = [...out.slice(0, i), merged, ...out.slice(i + 1, j), ...out.slice(j + 1)];
        changed = true;
        break outer;
      }
    }
  }
  return out;
};

/** The clause as a Lambda filter pattern. */
const toPattern = (clause: Clause): Record<string, unknown> => {
  const pattern: Record<string, unknown> = {};
  for (const field of [...clause.keys()].sort()) {
    const path = JSON.parse(field) as string[];
    let node = pattern;
    for (const step of path.slice(0, -1)) node = (node[step] ??= {}) as Record<string, unknown>;
    node[path[path.length - 1] as string] = (clause.get(field) as Matcher[]).map((m) => ('equals' in m ? m.equals : { prefix: m.prefix }));
  }
  return pattern;
};

const lengthOf = (clause: Clause): number => JSON.stringify(toPattern(clause)).length;

/** The key conditions every record of the entity satisfies (it may match more). */
const compileEntity = (entity: Entity<unknown> | undefined, what: string, widenings: string[]): Clause => {
  const clause: Clause = new Map();
  for (const [attribute, pattern] of Object.entries(entity?.key ?? {})) {
    const m = keyMatcher(pattern);
    if (m) clause.set(keyPath(attribute), [m]);
    else widenings.push(`${what}: key ${attribute} ${String(pattern)} is not a literal prefix, so the filter does not look at ${attribute}`);
  }
  return clause;
};

/** The clause a route's records all satisfy; `null` when it takes nothing; an empty clause when it could take anything. */
const compileRoute = (route: Route, entities: ReadonlyMap<string, Entity<unknown>>, widenings: string[]): Clause | null => {
  if (route.entity === '*') return new Map();
  // A backfill event never comes from the stream, so `.on('backfill')` passes no stream record.
  let kinds: string[] | undefined = route.kinds?.flatMap((k) => (k === 'backfill' ? [] : [KIND_NAMES[k]]));
  const clause = compileEntity(route.entityRef ?? entities.get(route.entity), route.description, widenings);
  route.predicates.forEach((predicate, i) => {
    if (predicate === expired) {
      // An expired record is always a REMOVE: DynamoDB's TTL process only deletes.
      kinds = (kinds ?? ['REMOVE']).filter((k) => k === 'REMOVE');
      clause.set(IDENTITY_TYPE, [{ equals: 'Service' }]);
      clause.set(IDENTITY_PRINCIPAL, [{ equals: 'dynamodb.amazonaws.com' }]);
    } else {
      widenings.push(`${route.description}: its .when() predicate #${i + 1} is a function Lambda cannot run, so the filter passes every record it could reject`);
    }
  });
  if (kinds?.length === 0) return null;
  if (kinds) clause.set(EVENT_NAME, kinds.map((equals) => ({ equals })));
  return clause;
};

const positiveInteger = (field: string, value: number, max: number): number => {
  if (!Number.isInteger(value) || value < 1 || value > max) {
    throw new ConfigError(field, `must be an integer from 1 to ${max}, got \`${String(value)}\`. Use Lambda's quota for your account (5 filters by default, 4096 characters a pattern).`);
  }
  return value;
};

/**
 * Compiles the app's routes into Lambda event filter patterns that pass every record some route
 * takes (and every record a route would dead-letter), and as few others as Lambda's pattern
 * language and limits allow. Where a route cannot be expressed (a `.when()` function, a regular
 * expression without a literal prefix), the filter is widened, never narrowed; `widenings` says
 * where.
 *
 * @example
 * const { patterns, widenings } = compileLambdaFilter(app);
 */
export const compileLambdaFilter = (app: App, options: LambdaFilterOptions = {}): CompiledLambdaFilter => {
  const maxFilters = positiveInteger('maxFilters', options.maxFilters ?? 5, 20);
  const maxPatternLength = positiveInteger('maxPatternLength', options.maxPatternLength ?? 4096, 4096);
  const widenings: string[] = [];
  const entities = new Map(app.entities.map((e) => [e.name, e]));
  const invalidItems = options.invalidItems ?? 'routed';
  if (invalidItems !== 'routed' && invalidItems !== 'all') throw new ConfigError('invalidItems', `must be 'routed' or 'all', got \`${String(invalidItems)}\`.`);
  const compiled = app.routes.map((r) => compileRoute(r, entities, widenings));
  const matchAll = (why: string): CompiledLambdaFilter => ({ patterns: undefined, widenings: [...widenings, why] });
  const everything = app.routes.find((_, i) => compiled[i]?.size === 0);
  if (everything) return matchAll(`${everything.description} can take any record, so there is no filter`);
  if (invalidItems === 'all') {
    for (const e of app.entities.filter((x) => x.schema !== undefined)) {
      const clause = compileEntity(e, e.name, widenings);
      if (clause.size === 0) return matchAll(`entity ${e.name} has a schema and no key prefix, and invalidItems is 'all', so there is no filter`);
      compiled.push(clause);
    }
  }
  let clauses = normalize(compiled.filter((c): c is Clause => c !== null));

  for (;;) {
    if (clauses.some((c) => c.size === 0)) return matchAll('the limits left a filter without conditions, so there is no filter');
    const tooLong = clauses.findIndex((c) => lengthOf(c) > maxPatternLength);
    if (tooLong >= 0) {
      // The largest condition goes first: it frees the most room for what is dropped.
      const clause = clauses[tooLong] as Clause;
      const [field] = [...clause].sort(([, a], [, b]) => JSON.stringify(b).length - JSON.stringify(a).length)[0] as [string, Matcher[]];
      const wider = new Map(clause);
      wider.delete(field);
      widenings.push(`a pattern was longer than ${maxPatternLength} characters: its condition on ${(JSON.parse(field) as string[]).join('.')} was dropped`);
      clauses = normalize([...clauses.slice(0, tooLong), wider, ...clauses.slice(tooLong + 1)]);
      continue;
    }
    if (clauses.length <= maxFilters) break;
    // The two clauses with the most fields in common lose the least when joined.
    let best: [number, number, number] = [0, 1, -1];
    for (let i = 0; i < clauses.length; i++) {
      for (let j = i + 1; j < clauses.length; j++) {
        const common = wideMerge(clauses[i] as Clause, clauses[j] as Clause).size;
        if (common > best[2]) best = [i, j, common];
      }
    }
    const [i, j] = best;
    widenings.push(`more than ${maxFilters} filters: two were joined into a wider one`);
    const merged = wideMerge(clauses[i] as Clause, clauses[j] as Clause);
    clauses = normalize([...clauses.filter((_, k) => k !== i && k !== j), merged]);
  }
  // Only routes that take nothing (`.on('insert').when(expired)`): a mapping cannot hold zero
  // filters, and a pattern that matches nothing would rest on a field DynamoDB might one day send.
  if (clauses.length === 0) return matchAll('no route can take any record; without a filter the function sees each and skips it');
  return { patterns: clauses.map(toPattern), widenings };
};

/**
 * The event source mapping's `FilterCriteria` for the app's routes, so Lambda is not invoked for
 * changes no route takes; `undefined` when every record must reach the function. It never drops
 * a record some route would take or dead-letter: conditions it cannot express are left out, which
 * widens the filter (see {@link compileLambdaFilter} for what was widened).
 *
 * @example
 * new CfnEventSourceMapping(stack, 'Mapping', { ..., filterCriteria: lambdaFilterCriteria(app) });
 * // or with the SDK: CreateEventSourceMappingCommand({ ..., FilterCriteria: lambdaFilterCriteria(app) })
 */
export const lambdaFilterCriteria = (app: App, options: LambdaFilterOptions = {}): FilterCriteria | undefined => {
  const { patterns } = compileLambdaFilter(app, options);
  if (patterns === undefined) return undefined;
  return { Filters: patterns.map((p) => ({ Pattern: JSON.stringify(p) })) };
};
