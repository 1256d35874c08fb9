import { describe, expect, it } from 'vitest';
import { ConfigError, defineApp, entity, expired, route } from '../../src/index.js';
import type { StandardSchemaV1 } from '@standard-schema/spec';
import type { Item, Route } from '../../src/index.js';
import { compileLambdaFilter, lambdaFilterCriteria } from '../../src/lambda/index.js';
import { literalPrefixOf } from '../../src/lambda/filter-criteria.js';
import { MemorySink, passesFilterCriteria, streamRecords } from '../../src/testing/index.js';

const sink = new MemorySink({ name: 'sink' });
const User = entity('User', { key: { PK: 'USER#', SK: 'PROFILE' } });
const Task = entity('Task', { key: { PK: 'USER#', SK: 'TASK#' } });
const Order = entity('Order', { key: { PK: /^ORDER#\d+$/ } });
const Audit = entity('Audit', { key: { PK: /AUDIT/ } });
const app = (...routes: Route[]) => defineApp({ table: 'TaskApp', routes });
const records = streamRecords();

describe('lambdaFilterCriteria', () => {
  it('compiles entity key prefixes and event kinds, and lets through only what the routes take', () => {
    // Prepare
    const criteria = lambdaFilterCriteria(app(route(Task).on('modify').when((e) => e.changed.includes('Status')).to(sink), route(User).to(sink)));
    // Assess
    expect(criteria?.Filters.map((f) => JSON.parse(f.Pattern) as unknown)).toEqual([
      { dynamodb: { Keys: { PK: { S: [{ prefix: 'USER#' }] }, SK: { S: [{ prefix: 'TASK#' }] } } }, eventName: ['MODIFY'] },
      { dynamodb: { Keys: { PK: { S: [{ prefix: 'USER#' }] }, SK: { S: [{ prefix: 'PROFILE' }] } } } },
    ]);
    const task = { PK: 'USER#1', SK: 'TASK#1', Status: 'OPEN' };
    expect(passesFilterCriteria(criteria, records.modify(task, { ...task, Status: 'DONE' }))).toBe(true);
    expect(passesFilterCriteria(criteria, records.insert(task))).toBe(false);
    expect(passesFilterCriteria(criteria, records.remove({ PK: 'USER#1', SK: 'PROFILE' }))).toBe(true);
    expect(passesFilterCriteria(criteria, records.insert({ PK: 'ORG#1', SK: 'PROFILE' }))).toBe(false);
  });

  it("has no filter when a '*' route takes every record", () => {
    const compiled = compileLambdaFilter(app(route(Task).on('insert').to(sink), route('*').to(sink)));
    expect(compiled.patterns).toBeUndefined();
    expect(compiled.widenings.join('\n')).toMatch(/\* -> sink can take any record/);
    expect(lambdaFilterCriteria(app(route('*').to(sink)))).toBeUndefined();
  });

  it('compiles expired into the TTL identity and REMOVE, and passes only TTL deletes', () => {
    const criteria = lambdaFilterCriteria(app(route(Task).when(expired).to(sink)));
    expect(criteria?.Filters.map((f) => JSON.parse(f.Pattern) as unknown)).toEqual([
      {
        dynamodb: { Keys: { PK: { S: [{ prefix: 'USER#' }] }, SK: { S: [{ prefix: 'TASK#' }] } } },
        eventName: ['REMOVE'],
        userIdentity: { principalId: ['dynamodb.amazonaws.com'], type: ['Service'] },
      },
    ]);
    const task = { PK: 'USER#1', SK: 'TASK#1' };
    expect(passesFilterCriteria(criteria, records.remove(task, { ttl: true }))).toBe(true);
    expect(passesFilterCriteria(criteria, records.remove(task))).toBe(false);
  });

  it('ignores a .when() function (wider, never narrower) and says so', () => {
    const compiled = compileLambdaFilter(app(route(Task).when((e) => e.expired).to(sink)));
    expect(compiled.patterns).toEqual([{ dynamodb: { Keys: { PK: { S: [{ prefix: 'USER#' }] }, SK: { S: [{ prefix: 'TASK#' }] } } } }]);
    expect(compiled.widenings).toEqual([expect.stringMatching(/Task -> sink: its \.when\(\) predicate #1 is a function Lambda cannot run/)]);
  });

  it("uses a regular expression's literal prefix, and drops the key condition of one without", () => {
    const compiled = compileLambdaFilter(app(route(Order).on('insert').to(sink), route(Audit).on('remove').to(sink)));
    expect(compiled.patterns).toEqual([{ dynamodb: { Keys: { PK: { S: [{ prefix: 'ORDER#' }] } } }, eventName: ['INSERT'] }, { eventName: ['REMOVE'] }]);
    expect(compiled.widenings).toEqual([expect.stringMatching(/Audit.remove -> sink: key PK \/AUDIT\/ is not a literal prefix/)]);
  });

  it('has no filter for a route whose entity it cannot tell apart and that takes every kind', () => {
    expect(lambdaFilterCriteria(app(route(Task).on('insert').to(sink), route(Audit).to(sink)))).toBeUndefined();
  });

  it('joins filters one condition apart exactly, and drops a filter another covers', () => {
    const Sub = entity('Sub', { key: { PK: 'USER#1', SK: 'TASK#' } });
    const compiled = compileLambdaFilter(app(route(Task).on('insert').to(sink), route(Task).on('modify').to(sink), route(Sub).on('insert').to(sink)));
    expect(compiled.patterns).toEqual([{ dynamodb: { Keys: { PK: { S: [{ prefix: 'USER#' }] }, SK: { S: [{ prefix: 'TASK#' }] } } }, eventName: ['INSERT', 'MODIFY'] }]);
    expect(compiled.widenings).toEqual([]);
  });

  it('widens, never narrows, to stay within the number of filters', () => {
    // Prepare: seven entities, each with its own kind, so no two filters join exactly.
    const routes = Array.from({ length: 7 }, (_, i) => route(entity(`E${i}`, { key: { PK: `P${i}#`, SK: `S${i}#` } })).on((['insert', 'modify', 'remove'] as const)[i % 3] as 'insert').to(sink));
    const wide = app(...routes);
    // Act
    const criteria = lambdaFilterCriteria(wide, { maxFilters: 3 });
    // Assess
    expect(criteria?.Filters.length).toBeLessThanOrEqual(3);
    expect(compileLambdaFilter(wide, { maxFilters: 3 }).widenings).toContain('more than 3 filters: two were joined into a wider one');
    for (let i = 0; i < 7; i++) {
      const item = { PK: `P${i}#x`, SK: `S${i}#y` };
      const r = [records.insert(item), records.modify(item, item), records.remove(item)][i % 3];
      expect(passesFilterCriteria(criteria, r)).toBe(true);
    }
  });

  it('drops the largest condition of a pattern longer than the limit', () => {
    const Long = entity('Long', { key: { PK: 'L'.repeat(5000), SK: 'X#' } });
    const compiled = compileLambdaFilter(app(route(Long).on('insert').to(sink)));
    expect(compiled.patterns).toEqual([{ dynamodb: { Keys: { SK: { S: [{ prefix: 'X#' }] } } }, eventName: ['INSERT'] }]);
    expect(compiled.widenings).toEqual(['a pattern was longer than 4096 characters: its condition on dynamodb.Keys.PK.S was dropped']);
  });

  it('has no filter when the routes take nothing at all', () => {
    expect(lambdaFilterCriteria(app(route(Task).on('insert').when(expired).to(sink)))).toBeUndefined();
  });

  it("passes every record of an entity with a schema with invalidItems: 'all', so the engine can dead-letter an invalid one", () => {
    const schema: StandardSchemaV1<unknown, Item> = { '~standard': { version: 1, vendor: 'test', validate: (value: unknown) => ({ value: value as Item }) } };
    const Checked = entity('Checked', { key: { PK: 'C#' }, schema });
    const a = app(route(Checked).on('modify').to(sink));
    expect(compileLambdaFilter(a).patterns).toEqual([{ dynamodb: { Keys: { PK: { S: [{ prefix: 'C#' }] } } }, eventName: ['MODIFY'] }]);
    expect(compileLambdaFilter(a, { invalidItems: 'all' }).patterns).toEqual([{ dynamodb: { Keys: { PK: { S: [{ prefix: 'C#' }] } } } }]);
    expect(() => lambdaFilterCriteria(a, { invalidItems: 'some' as 'all' })).toThrow(/`invalidItems` must be 'routed' or 'all'/);
  });

  it('rejects limits Lambda does not have, naming the option', () => {
    const a = app(route(Task).to(sink));
    expect(() => lambdaFilterCriteria(a, { maxFilters: 0 })).toThrow(ConfigError);
    expect(() => lambdaFilterCriteria(a, { maxPatternLength: 5000 })).toThrow(/`maxPatternLength` must be an integer from 1 to 4096/);
  });
});

describe('literalPrefixOf', () => {
  it.each([
    [/^ORDER#\d+$/, 'ORDER#'],
    [/^ab?c/, 'a'],
    [/^ab*/, 'a'],
    [/^ab{2}/, 'a'],
    [/^ab+/, 'a'],
    [/^a\.b/, 'a.b'],
    [/^a\/b/, 'a/b'],
    [/^a(b|c)/, 'a'],
    [/^a|b/, undefined],
    [/^(a|b)/, undefined],
    [/^a/i, undefined],
    [/^a/m, undefined],
    [/^a/g, undefined],
    [/a/, undefined],
    [/^\d/, undefined],
    [/^[ab]c/, undefined],
  ])('%s -> %s', (pattern, prefix) => {
    expect(literalPrefixOf(pattern)).toBe(prefix);
  });
});
