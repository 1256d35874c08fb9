import type { Entity } from './entities.js';
import type { ChangeEvent, ChangeKind } from './events.js';
import type { Sink } from './ports.js';

/** A finished route: which events go to which sink, in what form. Build one with {@link route}. */
export interface Route {
  /** `'*'` for every event, otherwise an entity name. */
  readonly entity: string;
  /** The entity object when the route was built from one (its schema is checked before routing). */
  readonly entityRef: Entity<unknown> | undefined;
  readonly kinds: readonly ChangeKind[] | undefined;
  readonly predicates: readonly ((event: ChangeEvent) => boolean)[];
  readonly transform: ((event: ChangeEvent) => unknown) | undefined;
  readonly sink: Sink<unknown>;
  /** `Task.modify -> eventbridge`: for logs and errors. */
  readonly description: string;
}

/** Builds a {@link Route}; every step returns a new builder, so builders can be shared. */
export interface RouteBuilder<E, P = E> {
  /** Only events of these kinds. */
  on<K extends ChangeKind>(...kinds: K[]): RouteBuilder<Extract<E, { kind: K }>, Extract<E, { kind: K }>>;
  /** Only events the predicate accepts; several `when`s must all accept. A predicate that throws dead-letters the record. */
  when(predicate: (event: E) => boolean): RouteBuilder<E, P>;
  /**
   * What the sink receives instead of the event; `undefined` skips this route for the event. A
   * transform that throws dead-letters the record.
   */
  transform<R>(fn: (event: E) => R | undefined): RouteBuilder<E, R>;
  /** The destination: finishes the route. */
  to(sink: Sink<P>): Route;
}

interface Draft {
  entity: string;
  entityRef: Entity<unknown> | undefined;
  kinds: ChangeKind[] | undefined;
  predicates: ((event: ChangeEvent) => boolean)[];
  transform: ((event: ChangeEvent) => unknown) | undefined;
}

const builder = <E, P>(draft: Draft): RouteBuilder<E, P> => ({
  on: (...kinds) => builder({ ...draft, kinds: [...new Set([...(draft.kinds ?? []), ...kinds])] }),
  when: (predicate) => builder({ ...draft, predicates: [...draft.predicates, predicate as (event: ChangeEvent) => boolean] }),
  transform: (fn) => builder({ ...draft, transform: fn as (event: ChangeEvent) => unknown }),
  to: (sink) => ({
    ...draft,
    sink: sink as Sink<unknown>,
    description: `${draft.entity}${draft.kinds ? `.${draft.kinds.join('|')}` : ''} -> ${(sink as { name?: unknown } | undefined)?.name ?? '?'}`,
  }),
});

type EventOf<S> = S extends Entity<infer T> ? ChangeEvent<T> : ChangeEvent;

/**
 * Starts a route for one entity (the object from {@link entity}, or its name) or for every event (`'*'`).
 *
 * @example
 * route(Task).on('modify').when((e) => e.changed.includes('Status')).to(eventBridge({ busName: 'app' }))
 */
export const route = <S extends Entity<unknown> | string>(source: S): RouteBuilder<EventOf<S>> => {
  const isEntity = typeof source === 'object' && source !== null;
  return builder({
    entity: isEntity ? (source as Entity<unknown>).name : (source as string),
    entityRef: isEntity ? (source as Entity<unknown>) : undefined,
    kinds: undefined,
    predicates: [],
    transform: undefined,
  });
};

/**
 * A `.when()` predicate that keeps only deletes made by DynamoDB's time-to-live process
 * (`event.expired`). Unlike an equivalent arrow function, the Lambda filter compiler recognises it
 * ({@link lambdaFilterCriteria} in `dynamo-cdc/lambda`), so Lambda is not invoked for the other
 * changes of the route's entity.
 *
 * @example
 * route(Task).on('remove').when(expired).to(s3Export({ bucket: 'archive' }))
 */
export const expired = (event: { readonly expired: boolean }): boolean => event.expired;
