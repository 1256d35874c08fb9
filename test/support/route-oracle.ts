import { validateEntity } from '../../src/entities.js';
import { Engine, expired, systemClock } from '../../src/index.js';
import type { App, ChangeEvent, ChangeKind } from '../../src/index.js';
import { silentLogger } from '../../src/testing/index.js';

const KIND_OF: Readonly<Record<string, ChangeKind>> = { INSERT: 'insert', MODIFY: 'modify', REMOVE: 'remove' };

interface RawRecord {
  readonly eventName?: unknown;
  readonly dynamodb?: { readonly Keys?: unknown };
  readonly userIdentity?: { readonly type?: unknown; readonly principalId?: unknown };
}

/**
 * Whether a route could take a record that cannot be routed normally (it does not decode, or
 * fails its entity's schema), so that it is dead-lettered on its way: a route's entity (from the
 * raw key) and kind match, and so does `expired`, the one predicate a record decides without its
 * images. Other predicates cannot run on such a record, so they count as accepting it.
 */
export const couldTake = (app: App, raw: RawRecord): boolean => {
  const kind = KIND_OF[String(raw.eventName)];
  const keys = raw.dynamodb?.Keys;
  const name = keys !== null && typeof keys === 'object' ? app.entityOf?.(keys as never) : undefined;
  const ttl = kind === 'remove' && raw.userIdentity?.type === 'Service' && raw.userIdentity.principalId === 'dynamodb.amazonaws.com';
  return app.routes.some(
    (r) => (r.entity === '*' || r.entity === name) && (r.kinds === undefined || (kind !== undefined && r.kinds.includes(kind))) && (!r.predicates.includes(expired) || ttl),
  );
};

/**
 * The reference a Lambda filter must cover: true when the library's own routing, as the engine
 * runs it (decode, entity schema, routes), sends the record to a sink, or dead-letters it while a
 * route takes it or could take it (a predicate or transform that throws, a malformed record, an
 * image that fails its schema; see {@link couldTake}). With `invalidItems: 'all'`, every item that
 * fails its schema counts, as the engine dead-letters it before routing.
 */
export const routesWant = async (
  app: App,
  raw: RawRecord,
  engine = new Engine({ app, logger: silentLogger, clock: systemClock }),
  options: { invalidItems?: 'routed' | 'all' } = {},
): Promise<boolean> => {
  let event: ChangeEvent;
  try {
    event = engine.decode(raw, {});
  } catch {
    return couldTake(app, raw);
  }
  try {
    event = await validateEntity(event, app.entities.find((e) => e.name === event.entity));
  } catch {
    // 'all': the engine dead-letters an invalid item before routing, whatever its kind.
    return options.invalidItems === 'all' || couldTake(app, raw);
  }
  try {
    return engine.targetsOf(event).length > 0;
  } catch {
    return true; // a predicate or transform threw: the record is dead-lettered by its route
  }
};
