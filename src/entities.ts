import type { StandardSchemaV1 } from '@standard-schema/spec';
import { SchemaValidationError } from './errors.js';
import type { AttributeValue, ChangeEvent, Item } from './events.js';

/** A key attribute's pattern: a string prefix (`'USER#'`) or a regular expression. */
export type KeyPattern = string | RegExp;

/** Options of {@link entity}. */
export interface EntityOptions<T> {
  /**
   * Key attribute name to pattern, matched against the record's key (single-table design). Every
   * listed attribute must be a string that matches; attributes not listed are not looked at.
   * @example { PK: 'USER#', SK: 'TASK#' }
   */
  readonly key: Readonly<Record<string, KeyPattern>>;
  /**
   * A Standard Schema (zod, valibot, arktype, ...) the item must satisfy. A record whose image fails
   * it is a PERMANENT failure of that record and goes to the dead-letter queue with the issues found.
   * The schema's output replaces the image, so transforms and defaults apply.
   */
  readonly schema?: StandardSchemaV1<unknown, T>;
}

/** A kind of item in the table, recognised by its key. Build one with {@link entity}. */
export interface Entity<T = Item> {
  readonly name: string;
  readonly key: Readonly<Record<string, KeyPattern>>;
  readonly schema: StandardSchemaV1<unknown, T> | undefined;
  /** True when the raw key matches every pattern. */
  matches(keys: Readonly<Record<string, AttributeValue>>): boolean;
  /** Phantom member that carries `T` for the type checker; always `undefined`. */
  readonly __type?: T;
}

/**
 * Declares an entity of a single-table design by its key patterns.
 *
 * @example
 * type Task = { PK: string; SK: string; Status: 'OPEN' | 'DONE'; Version: number };
 * const Task = entity<Task>('Task', { key: { PK: 'USER#', SK: 'TASK#' } });
 */
export const entity = <T = Item>(name: string, options: EntityOptions<T>): Entity<T> => {
  const patterns = Object.entries(options.key);
  return {
    name,
    key: options.key,
    schema: options.schema,
    matches(keys) {
      for (const [attribute, pattern] of patterns) {
        const value = (keys[attribute] as { S?: string } | undefined)?.S;
        if (value === undefined) return false;
        if (typeof pattern === 'string' ? !value.startsWith(pattern) : !pattern.test(value)) return false;
      }
      return true;
    },
  };
};

/** The first entity, in declaration order, whose patterns match the key. */
export const entityResolver = (entities: readonly Entity<unknown>[]) => {
  if (entities.length === 0) return undefined;
  return (keys: Readonly<Record<string, AttributeValue>>): string | undefined => {
    for (const e of entities) if (e.matches(keys)) return e.name;
    return undefined;
  };
};

const pathOf = (issue: StandardSchemaV1.Issue): string =>
  (issue.path ?? []).map((p) => String(typeof p === 'object' && p !== null && 'key' in p ? p.key : p)).join('.');

const check = async <T>(e: Entity<T>, image: unknown): Promise<T> => {
  const schema = e.schema as StandardSchemaV1<unknown, T>;
  let result = schema['~standard'].validate(image);
  if (result instanceof Promise) result = await result;
  if (result.issues) throw new SchemaValidationError(e.name, result.issues.map((i) => ({ path: pathOf(i), message: i.message })));
  return result.value;
};

/**
 * Checks the event's images against its entity's schema and returns the event with the schema's
 * output as its images. Throws {@link SchemaValidationError} when an image fails.
 */
export const validateEntity = async (event: ChangeEvent, e: Entity<unknown> | undefined): Promise<ChangeEvent> => {
  if (!e?.schema) return event;
  const newImage = event.newImage === undefined ? undefined : await check(e, event.newImage);
  const oldImage = event.oldImage === undefined ? undefined : await check(e, event.oldImage);
  return { ...event, newImage, oldImage } as ChangeEvent;
};
