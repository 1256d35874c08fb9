import { describe, expect, it } from 'vitest';
import { ConfigError, defineApp, entity, route } from '../../src/index.js';
import type { AppConfig } from '../../src/index.js';
import { MemorySink } from '../../src/testing/index.js';

const sink = new MemorySink();
const valid: AppConfig = { table: 'TaskApp', routes: [route('*').to(sink)] };

describe('defineApp', () => {
  it('fills in the defaults', () => {
    expect(defineApp(valid)).toMatchObject({ ordering: 'item', concurrency: 256, numbers: 'number', retry: { maxAttempts: 6, baseDelayMs: 100, maxDelayMs: 20_000 } });
  });

  it.each<[string, Record<string, unknown>, string, RegExp]>([
    ['a missing table', { table: '' }, 'table', /Set table: 'MyTable'/],
    ['an unknown ordering', { ordering: 'random' }, 'ordering', /'item', 'partitionKey' or a function/],
    ['partitionKey ordering without the attribute', { ordering: 'partitionKey' }, 'partitionKey', /Set partitionKey: 'PK'/],
    ['no routes', { routes: [] }, 'routes', /non-empty array/],
    ['a route without a sink', { routes: [{ entity: '*' }] }, 'routes[0].sink', /\.to\(sink\)/],
    ['a sink without limits', { routes: [route('*').to({ name: 'x', send: async () => ({ failed: [] }) } as never)] }, 'routes[0].sink.limits.maxRecords', /integer >= 1, got `undefined`/],
    ['two sinks with one name', { routes: [route('*').to(new MemorySink()), route('*').to(new MemorySink())] }, 'routes[1].sink.name', /Give each sink its own name/],
    ['zero attempts', { retry: { maxAttempts: 0 } }, 'retry.maxAttempts', /must be an integer >= 1, got `0` \(number\)\. Set it to 1 or more/],
    ['a fractional delay', { retry: { baseDelayMs: 1.5 } }, 'retry.baseDelayMs', /integer >= 0, got `1.5` \(number\)/],
    ['a ceiling below the base', { retry: { baseDelayMs: 500, maxDelayMs: 100 } }, 'retry.maxDelayMs', /must be >= retry.baseDelayMs/],
    ['zero concurrency', { concurrency: 0 }, 'concurrency', /integer >= 1/],
    ['a dead-letter queue without send', { deadLetter: { name: 'x' } }, 'deadLetter', /send\(\) method/],
    ['an unknown number mode', { numbers: 'float' }, 'numbers', /'number', 'auto' or 'exact'/],
    ['a route to an undeclared entity', { routes: [route('Order').to(sink)] }, 'routes[0]', /entity `Order`, which is not declared/],
    ['two entities with one name', { routes: [route(entity('Task', { key: { PK: 'A' } })).to(sink), route(entity('Task', { key: { PK: 'B' } })).to(sink)] }, 'entities', /two different entities named `Task`/],
  ])('rejects %s, naming the field and the fix', (_what, override, field, message) => {
    // Act
    let error: unknown;
    try {
      defineApp({ ...valid, ...override } as AppConfig);
    } catch (e) {
      error = e;
    }

    // Assess
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).field).toBe(field);
    expect((error as ConfigError).message).toContain(`\`${field}\``);
    expect((error as ConfigError).message).toMatch(message);
  });
});
