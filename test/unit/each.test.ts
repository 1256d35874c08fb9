import { describe, expect, it } from 'vitest';
import { ConfigError, defineApp, each, Engine, entity, PermanentError, route } from '../../src/index.js';
import type { AppConfig, ChangeEvent } from '../../src/index.js';
import { createStreamHandler } from '../../src/lambda/index.js';
import { FakeClock, memoryLogger, MemoryDeadLetterQueue, streamRecords } from '../../src/testing/index.js';

type Task = { PK: string; SK: string; Status: string; Version: number };
const Task = entity<Task>('Task', { key: { PK: 'USER#', SK: 'TASK#' } });

const task = (k: number, version: number): Task => ({ PK: `USER#${k}`, SK: `TASK#${k}`, Status: 'OPEN', Version: version });

/** n modify records over `keys` keys, round-robin, each bumping its key's Version by one. */
const workload = (n: number, keys: number) => {
  const records = streamRecords();
  return Array.from({ length: n }, (_, i) => records.modify(task(i % keys, Math.floor(i / keys)), task(i % keys, Math.floor(i / keys) + 1)));
};

const label = (e: ChangeEvent<Task>) => `${e.newImage?.PK ?? e.oldImage?.PK}@${e.newImage?.Version}`;
/** A few event-loop turns, different per call, so calls of different items finish out of step. */
const turns = async (n: number) => {
  for (let i = 0; i < n; i++) await new Promise((resolve) => setImmediate(resolve));
};

const engineFor = (config: Partial<AppConfig> & Pick<AppConfig, 'routes'>) => {
  const clock = new FakeClock();
  const app = defineApp({ table: 'TaskApp', retry: { maxAttempts: 3 }, ...config });
  return new Engine({ app, logger: memoryLogger(), clock });
};

describe('each(): a function as a destination', () => {
  it('calls the function once per event, one item’s events one after another in stream order, items concurrently', async () => {
    // Prepare
    const calls: string[] = [];
    const running = new Set<string>();
    let overlapSameItem = false;
    let maxRunning = 0;
    const engine = engineFor({
      routes: [
        route(Task).to(
          each(async (event) => {
            const key = String(event.key['PK']);
            if ([...running].some((r) => r === key)) overlapSameItem = true;
            running.add(key);
            maxRunning = Math.max(maxRunning, running.size);
            calls.push(label(event));
            await turns(1 + ((event.newImage?.Version ?? 0) * 7) % 5);
            running.delete(key);
          }),
        ),
      ],
    });

    // Act
    const outcome = await engine.process(workload(60, 6));

    // Assess
    expect(outcome.counts.delivered).toBe(60);
    expect(overlapSameItem).toBe(false);
    expect(maxRunning).toBeGreaterThan(1);
    for (let k = 0; k < 6; k++) expect(calls.filter((c) => c.startsWith(`USER#${k}@`))).toEqual(Array.from({ length: 10 }, (_, v) => `USER#${k}@${v + 1}`));
  });

  it('retries an event whose call throws, with backoff, before the item’s next event', async () => {
    // Prepare: USER#1@1 throws twice.
    const calls: string[] = [];
    const failures = new Map<string, number>();
    const engine = engineFor({
      routes: [
        route(Task).to(
          each(async (event) => {
            calls.push(label(event));
            if (label(event) === 'USER#1@1' && (failures.get('USER#1@1') ?? 0) < 2) {
              failures.set('USER#1@1', (failures.get('USER#1@1') ?? 0) + 1);
              throw new Error('downstream unavailable');
            }
          }),
        ),
      ],
    });

    // Act
    const outcome = await engine.process(workload(6, 3));

    // Assess
    expect(outcome.counts.delivered).toBe(6);
    expect(outcome.retries).toBe(2);
    expect(calls.filter((c) => c.startsWith('USER#1@'))).toEqual(['USER#1@1', 'USER#1@1', 'USER#1@1', 'USER#1@2']);
  });

  it('dead-letters an event after the last attempt, with the error, and its item’s lane goes on', async () => {
    // Prepare
    const dlq = new MemoryDeadLetterQueue();
    const calls: string[] = [];
    const engine = engineFor({
      deadLetter: dlq,
      routes: [
        route(Task).to(
          each(
            async (event) => {
              calls.push(label(event));
              if (label(event) === 'USER#0@1') throw new Error('downstream said no');
            },
            { name: 'notify' },
          ),
        ),
      ],
    });

    // Act
    const outcome = await engine.process(workload(4, 2));

    // Assess
    expect(outcome.statuses).toEqual(['dead-lettered', 'delivered', 'delivered', 'delivered']);
    expect(dlq.letters).toHaveLength(1);
    expect(dlq.letters[0]).toMatchObject({ sink: 'notify', attempts: 3, error: { name: 'Error', message: 'downstream said no', class: 'TRANSIENT' } });
    expect(calls.filter((c) => c === 'USER#0@1')).toHaveLength(3);
    expect(calls).toContain('USER#0@2');
  });

  it('dead-letters at once on a PermanentError', async () => {
    // Prepare
    const dlq = new MemoryDeadLetterQueue();
    let calls = 0;
    const engine = engineFor({
      deadLetter: dlq,
      routes: [
        route(Task).to(
          each(async () => {
            calls++;
            throw new PermanentError('Task has no Email; nothing to notify');
          }),
        ),
      ],
    });

    // Act
    const outcome = await engine.process(workload(1, 1));

    // Assess
    expect(outcome.statuses).toEqual(['dead-lettered']);
    expect(calls).toBe(1);
    expect(dlq.letters[0]).toMatchObject({ attempts: 1, error: { name: 'PermanentError', class: 'PERMANENT' } });
  });

  it('blocks the item’s lane when attempts run out and there is no dead-letter queue', async () => {
    // Prepare
    const calls: string[] = [];
    const engine = engineFor({
      routes: [
        route(Task).to(
          each(async (event) => {
            calls.push(label(event));
            if (label(event) === 'USER#0@1') throw new Error('down');
          }),
        ),
      ],
    });

    // Act
    const outcome = await engine.process(workload(4, 2));

    // Assess: USER#0@2 is never called; the other item is delivered.
    expect(outcome.statuses).toEqual(['blocked', 'delivered', 'blocked', 'delivered']);
    expect(outcome.watermark).toBe(0);
    expect(calls).not.toContain('USER#0@2');
  });

  it('gets what a route’s transform makes, typed', async () => {
    const got: string[] = [];
    const engine = engineFor({ routes: [route(Task).transform((e) => ({ id: String(e.key['PK']), version: e.newImage?.Version ?? 0 })).to(each(async (payload) => void got.push(`${payload.id}:${payload.version}`)))] });
    await engine.process(workload(2, 2));
    expect(got.sort()).toEqual(['USER#0:1', 'USER#1:1']);
  });

  it('in Lambda: a call still failing at the end is reported in batchItemFailures and called again on re-delivery', async () => {
    // Prepare: the first delivery's calls for USER#1@1 all fail; the re-delivery's succeed.
    let failing = true;
    const calls: string[] = [];
    const clock = new FakeClock();
    const app = defineApp({ table: 'TaskApp', retry: { maxAttempts: 2 }, routes: [route(Task).to(each(async (event) => {
      calls.push(label(event));
      if (failing && label(event) === 'USER#1@1') throw new Error('down');
    }))] });
    const handler = createStreamHandler(app, { clock, logger: memoryLogger(), random: () => 0.5 });
    const records = workload(4, 2);

    // Act
    const first = await handler({ Records: records }, { getRemainingTimeInMillis: () => 60_000 });
    failing = false;
    const again = await handler({ Records: records.slice(1) }, { getRemainingTimeInMillis: () => 60_000 });

    // Assess
    expect(first).toEqual({ batchItemFailures: [{ itemIdentifier: records[1]?.dynamodb.SequenceNumber }] });
    expect(again).toEqual({ batchItemFailures: [] });
    expect(calls.filter((c) => c.startsWith('USER#1@'))).toEqual(['USER#1@1', 'USER#1@1', 'USER#1@1', 'USER#1@2']);
  });

  it('refuses two unnamed functions in one app, naming the fix, and a non-function at once', () => {
    expect(() => defineApp({ table: 'T', routes: [route('*').to(each(async () => {})), route('*').to(each(async () => {}))] })).toThrow('is used by two different sinks');
    expect(() => each('notify' as unknown as () => void)).toThrow(ConfigError);
    expect(each(async function notifyOwner() {}).name).toBe('notifyOwner');
  });
});
