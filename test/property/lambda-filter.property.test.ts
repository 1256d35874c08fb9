import type { StandardSchemaV1 } from '@standard-schema/spec';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { defineApp, Engine, entity, expired, route } from '../../src/index.js';
import type { App, ChangeEvent, ChangeKind, Entity, Item, KeyPattern, Route, RouteBuilder } from '../../src/index.js';
import { lambdaFilterCriteria } from '../../src/lambda/index.js';
import type { LambdaFilterOptions } from '../../src/lambda/index.js';
import { FakeClock, MemorySink, passesFilterCriteria, silentLogger } from '../../src/testing/index.js';
import { routesWant } from '../support/route-oracle.js';
import { fuzzConfig, reportFuzz } from './fuzz-config.js';

/**
 * Filter ⊇ routes: for random apps (entities by prefixes and regular expressions, kinds,
 * `.when()` predicates, TTL-only routes, `'*'`) and random Lambda records (TTL removes, missing
 * images, number and binary keys, bad numbers, schema failures), every record some route takes,
 * or would dead-letter, passes the compiled `FilterCriteria`, evaluated as Lambda does.
 */

const ALPHABET = ['A', 'B', '#', '1'];
const PREFIXES = ['A', 'A#', 'AB', 'B', 'B#1', '#', '1', ''];
const REGEXES = [/^A#/, /^A#1/, /^(A|B)#/, /A/, /^A+B/, /^AB?#/, /^A|^B/, /^a/i, /1$/, /^B#.*1$/, new RegExp('^A\\#'), /^A\d/, /^[AB]/, /^A{2}/, /^(?:AB)1/];
const KINDS: readonly ChangeKind[] = ['insert', 'modify', 'remove'];

/** A Standard Schema that rejects an image with `bad: true`. */
const schema: StandardSchemaV1<unknown, unknown> = {
  '~standard': {
    version: 1,
    vendor: 'test',
    validate: (value) => ((value as { bad?: unknown }).bad === true ? { issues: [{ message: 'bad item', path: ['bad'] }] } : { value }),
  },
};

const keyPattern: fc.Arbitrary<KeyPattern> = fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...PREFIXES) }, { weight: 2, arbitrary: fc.constantFrom(...REGEXES) });

interface EntitySpec {
  readonly pk: KeyPattern | undefined;
  readonly sk: KeyPattern | undefined;
  readonly schema: boolean;
}

type PredicateSpec = 'expired' | 'flag' | 'hash' | 'throws' | 'never';

interface RouteSpec {
  readonly target: number | '*';
  readonly kinds: ChangeKind[] | undefined;
  readonly predicates: PredicateSpec[];
  readonly skipsSome: boolean;
}

interface AppSpec {
  readonly entities: EntitySpec[];
  readonly routes: RouteSpec[];
  readonly limits: LambdaFilterOptions;
}

const appSpec: fc.Arbitrary<AppSpec> = fc
  .array(fc.record({ pk: fc.option(keyPattern, { nil: undefined }), sk: fc.option(keyPattern, { nil: undefined }), schema: fc.boolean() }), { minLength: 1, maxLength: 5 })
  .chain((entities) =>
    fc.record({
      entities: fc.constant(entities),
      routes: fc.array(
        fc.record({
          target: fc.oneof({ weight: 1, arbitrary: fc.constant('*' as const) }, { weight: 12, arbitrary: fc.nat(entities.length - 1) }),
          kinds: fc.option(fc.subarray([...KINDS], { minLength: 1 }), { nil: undefined }),
          predicates: fc.array(fc.constantFrom<PredicateSpec>('expired', 'flag', 'hash', 'throws', 'never'), { maxLength: 2 }),
          skipsSome: fc.boolean(),
        }),
        { minLength: 1, maxLength: 8 },
      ),
      limits: fc.record({ maxFilters: fc.integer({ min: 1, max: 5 }), maxPatternLength: fc.oneof({ weight: 3, arbitrary: fc.constant(4096) }, { weight: 1, arbitrary: fc.integer({ min: 40, max: 300 }) }), invalidItems: fc.constantFrom<'routed' | 'all'>('routed', 'all') }),
    }),
  );

const hash = (s: string): number => [...s].reduce((h, c) => (h * 31 + c.charCodeAt(0)) | 0, 7);

const PREDICATES: Record<PredicateSpec, (e: ChangeEvent) => boolean> = {
  expired,
  flag: (e) => (e.newImage ?? e.oldImage)?.['flag'] === true,
  hash: (e) => hash(e.eventID) % 3 === 0,
  throws: (e) => {
    if (hash(e.eventID) % 4 === 0) throw new Error('predicate failed');
    return true;
  },
  never: () => false,
};

const buildApp = (spec: AppSpec): App => {
  const entities: Entity[] = spec.entities.map((e, i) => {
    const key: Record<string, KeyPattern> = {};
    if (e.pk !== undefined) key['PK'] = e.pk;
    if (e.sk !== undefined) key['SK'] = e.sk;
    return entity(`E${i}`, { key, ...(e.schema ? { schema: schema as StandardSchemaV1<unknown, Item> } : {}) });
  });
  const sink = new MemorySink({ name: 'sink' });
  const routes: Route[] = spec.routes.map((r) => {
    let b: RouteBuilder<ChangeEvent> = r.target === '*' ? route('*') : route(entities[r.target] as Entity);
    if (r.kinds) b = b.on(...r.kinds);
    for (const p of r.predicates) b = b.when(PREDICATES[p]);
    if (r.skipsSome) b = b.transform((e) => (hash(e.eventID) % 2 === 0 ? undefined : e));
    return b.to(sink);
  });
  return defineApp({ table: 'T', routes, entities: entities as Entity<unknown>[] });
};

/** A key attribute as DynamoDB might send it: a string over a small alphabet (so prefixes collide), a number or a binary. */
const keyValue = fc.oneof(
  { weight: 4, arbitrary: fc.array(fc.constantFrom(...ALPHABET), { maxLength: 4 }).map((cs) => ({ S: cs.join('') })) },
  // Most keys start with a prefix some entity may use, so routes match often.
  { weight: 6, arbitrary: fc.tuple(fc.constantFrom(...PREFIXES), fc.array(fc.constantFrom(...ALPHABET), { maxLength: 2 })).map(([p, cs]) => ({ S: p + cs.join('') })) },
  { weight: 1, arbitrary: fc.integer({ min: -5, max: 500 }).map((n) => ({ N: String(n) })) },
  { weight: 1, arbitrary: fc.constant({ B: 'QSMx' }) },
);

const image = fc.record({ flag: fc.boolean(), bad: fc.boolean(), badNumber: fc.boolean() }, { requiredKeys: [] }).map((f) => ({
  Title: { S: 't' },
  ...(f.flag !== undefined ? { flag: { BOOL: f.flag } } : {}),
  ...(f.bad ? { bad: { BOOL: true } } : {}),
  ...(f.badNumber ? { Count: { N: 'not-a-number' } } : {}),
}));

let seq = 0;
const record = fc
  .record({
    eventName: fc.oneof({ weight: 20, arbitrary: fc.constantFrom('INSERT', 'MODIFY', 'REMOVE') }, { weight: 1, arbitrary: fc.constant('BOGUS') }),
    pk: fc.option(keyValue, { nil: undefined, freq: 12 }),
    sk: fc.option(keyValue, { nil: undefined, freq: 4 }),
    newImage: fc.option(image, { nil: undefined, freq: 6 }),
    oldImage: fc.option(image, { nil: undefined, freq: 6 }),
    ttl: fc.boolean(),
    id: fc.integer({ min: 0, max: 1_000_000 }),
  })
  .map((r) => {
    seq++;
    const keys = { ...(r.pk ? { PK: r.pk } : {}), ...(r.sk ? { SK: r.sk } : {}) };
    return {
      eventID: `ev${r.id}`,
      eventName: r.eventName,
      eventVersion: '1.1',
      eventSource: 'aws:dynamodb',
      awsRegion: 'us-east-1',
      eventSourceARN: 'arn:aws:dynamodb:us-east-1:123456789012:table/T/stream/2026-01-01T00:00:00.000',
      dynamodb: {
        ApproximateCreationDateTime: 1_767_225_600,
        Keys: keys,
        ...(r.newImage && r.eventName !== 'REMOVE' ? { NewImage: { ...keys, ...r.newImage } } : {}),
        ...(r.oldImage && r.eventName !== 'INSERT' ? { OldImage: { ...keys, ...r.oldImage } } : {}),
        SequenceNumber: String(100_000 + seq),
        SizeBytes: 10,
        StreamViewType: 'NEW_AND_OLD_IMAGES',
      },
      ...(r.ttl ? { userIdentity: { type: 'Service', principalId: 'dynamodb.amazonaws.com' } } : {}),
    };
  });

describe('lambdaFilterCriteria (property)', () => {
  const config = fuzzConfig(1000);

  it('passes every record some route takes or would dead-letter (filter ⊇ routes), within the limits', async () => {
    let dropped = 0;
    let total = 0;
    const details = await fc.check(
      fc.asyncProperty(appSpec, fc.array(record, { minLength: 5, maxLength: 40 }), async (spec, records) => {
        const app = buildApp(spec);
        const engine = new Engine({ app, logger: silentLogger, clock: new FakeClock() });
        const criteria = lambdaFilterCriteria(app, spec.limits);
        if (criteria) {
          expect(criteria.Filters.length).toBeLessThanOrEqual(spec.limits.maxFilters as number);
          for (const f of criteria.Filters) expect(f.Pattern.length).toBeLessThanOrEqual(spec.limits.maxPatternLength as number);
        }
        for (const raw of records) {
          total++;
          const passes = passesFilterCriteria(criteria, raw);
          if (!passes) dropped++;
          if (!passes && (await routesWant(app, raw, engine, spec.limits))) {
            throw new Error(`dropped a wanted record ${JSON.stringify(raw)}\nfilter: ${JSON.stringify(criteria)}\nroutes: ${app.routes.map((r) => r.description).join(', ')}`);
          }
        }
      }),
      { seed: config.seed, numRuns: config.numRuns },
    );
    reportFuzz({ suite: 'lambda-filter', cases: details.numRuns, failures: details.failed ? 1 : 0, seed: config.seed, records: total, dropped });
    if (details.failed) {
      const error = details.errorInstance as Error | undefined;
      expect.fail(`${error?.message ?? String(details.errorInstance)}\n\n${fc.defaultReportMessage(details) ?? 'property failed'}\nReproduce: FUZZ_SEED=${config.seed} FUZZ_RUNS=${config.numRuns} npx vitest run --config test/property/vitest.config.ts test/property/lambda-filter.property.test.ts`);
    }
    // Not a vacuous filter: it drops a good share of the records no route wants.
    expect(dropped).toBeGreaterThan(total / 10);
  });
});
