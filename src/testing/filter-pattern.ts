/**
 * An evaluator of Lambda's event filter patterns, for tests: what the event source mapping does
 * with a record before it invokes the function. It covers the comparison operators of AWS's
 * "Filter rule syntax" table (null, empty, equals, equals-ignore-case, and, or, `$or`,
 * anything-but, numeric, exists, prefix, suffix); a pattern it does not understand throws rather
 * than guess.
 */

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

const numericHolds = (ops: readonly unknown[], value: number): boolean => {
  for (let i = 0; i < ops.length; i += 2) {
    const op = ops[i];
    const bound = ops[i + 1];
    if (typeof bound !== 'number') throw new TypeError(`numeric: expected a number after \`${String(op)}\`, got ${JSON.stringify(bound)}`);
    const holds =
      op === '=' ? value === bound : op === '<' ? value < bound : op === '<=' ? value <= bound : op === '>' ? value > bound : op === '>=' ? value >= bound : undefined;
    if (holds === undefined) throw new TypeError(`numeric: unknown operator ${JSON.stringify(op)}`);
    if (!holds) return false;
  }
  return true;
};

/** One matcher of a leaf's list against one scalar value that is present. */
const scalarMatches = (matcher: unknown, value: unknown): boolean => {
  if (!isObject(matcher)) return matcher === value;
  const [op, arg] = Object.entries(matcher)[0] ?? [];
  switch (op) {
    case 'prefix':
      return typeof value === 'string' && typeof arg === 'string' && value.startsWith(arg);
    case 'suffix':
      return typeof value === 'string' && typeof arg === 'string' && value.endsWith(arg);
    case 'equals-ignore-case':
      return typeof value === 'string' && typeof arg === 'string' && value.toLowerCase() === arg.toLowerCase();
    case 'numeric':
      return typeof value === 'number' && numericHolds(arg as unknown[], value);
    case 'anything-but':
      if (Array.isArray(arg)) return !arg.includes(value as Json);
      if (isObject(arg)) return !scalarMatches(arg, value);
      return value !== arg;
    case 'exists':
      return arg === true;
    default:
      throw new TypeError(`Unsupported filter operator ${JSON.stringify(op)}`);
  }
};

/** A leaf's list of alternatives against the record's value there (absent: `present` false). */
const leafMatches = (matchers: readonly unknown[], present: boolean, value: unknown): boolean => {
  if (!present) return matchers.some((m) => isObject(m) && m['exists'] === false);
  // A list in the record matches when one of its elements does.
  const values = Array.isArray(value) ? value : [value];
  return matchers.some((m) => !(isObject(m) && m['exists'] === false) && values.some((v) => scalarMatches(m, v)));
};

const objectMatches = (pattern: Record<string, unknown>, value: unknown): boolean => {
  for (const [key, sub] of Object.entries(pattern)) {
    if (key === '$or') {
      if (!Array.isArray(sub) || !sub.some((alternative) => isObject(alternative) && objectMatches(alternative, value))) return false;
      continue;
    }
    const present = isObject(value) && Object.hasOwn(value, key);
    const field = present ? (value as Record<string, unknown>)[key] : undefined;
    if (Array.isArray(sub)) {
      if (!leafMatches(sub, present, field)) return false;
    } else if (isObject(sub)) {
      // Patterns match flattened paths: under a missing object every leaf is absent, which
      // `exists: false` accepts and every other matcher rejects.
      if (!objectMatches(sub, field)) return false;
    } else {
      throw new TypeError(`A filter pattern's values are lists or objects, got ${JSON.stringify(sub)} at \`${key}\``);
    }
  }
  return true;
};

/**
 * True when Lambda's filter pattern (an object, or its JSON as in `FilterCriteria`) matches the
 * record, as the event source mapping decides it.
 *
 * @example
 * matchesFilterPattern({ eventName: ['INSERT'] }, records.insert({ PK: 'USER#1', SK: 'TASK#1' })) // true
 */
export const matchesFilterPattern = (pattern: string | Record<string, unknown>, record: unknown): boolean =>
  objectMatches(typeof pattern === 'string' ? (JSON.parse(pattern) as Record<string, unknown>) : pattern, record);

/**
 * True when Lambda would pass the record to the function: no criteria, or some filter matches.
 *
 * @example
 * const kept = records.filter((r) => passesFilterCriteria(lambdaFilterCriteria(app), r));
 */
export const passesFilterCriteria = (criteria: { readonly Filters: readonly { readonly Pattern: string }[] } | undefined, record: unknown): boolean =>
  criteria === undefined || criteria.Filters.some((f) => matchesFilterPattern(f.Pattern, record));
