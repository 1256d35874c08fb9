import { createHash } from 'node:crypto';
import { createServer } from 'node:http';
import type { IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Client } from '@opensearch-project/opensearch';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { classify, ConfigError, decodeRecord, defineApp, Engine, entity, route } from '../../src/index.js';
import type { AppConfig, ChangeEvent, FailureClass, Sink } from '../../src/index.js';
import { bulkItemErrorClasses, classifyBulkItem, keyDocumentId, OpenSearchRequestError, openSearch } from '../../src/sinks/opensearch/index.js';
import type { BulkItemOutcome, OpenSearchSinkOptions } from '../../src/sinks/opensearch/index.js';
import { FakeClock, memoryLogger, MemoryDeadLetterQueue, streamRecords } from '../../src/testing/index.js';
import type { LambdaStreamRecord } from '../../src/testing/index.js';

type Task = { PK: string; SK: string; TaskId: string; Status: 'OPEN' | 'IN_PROGRESS' | 'DONE'; Version: number; Body?: string };
const Task = entity<Task>('Task', { key: { PK: 'USER#', SK: 'TASK#' } });

/** One action of a bulk body, as the server parsed it. */
interface BulkAction {
  readonly action: 'index' | 'delete';
  readonly index: string;
  readonly id: string;
  readonly routing: string | undefined;
  /** Exact: read from the raw line, since JSON.parse would round a version above 2^53. */
  readonly version: bigint | undefined;
  readonly versionType: string | undefined;
  readonly source: Record<string, unknown> | undefined;
}

/** A bulk request as received. */
interface BulkRequest {
  readonly method: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
  readonly bytes: number;
  readonly actions: readonly BulkAction[];
}

/** What the server answers for one action instead of applying it. */
interface ItemAnswer {
  readonly status: number;
  readonly type?: string;
  readonly reason?: string;
}

/** A document the server holds; `source` undefined is a delete's tombstone, which keeps its version. */
interface StoredDocument {
  readonly version: bigint | undefined;
  readonly source: Record<string, unknown> | undefined;
}

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

const META_KEYS = new Set(['_index', '_id', 'routing', 'version', 'version_type']);

/** Parses an NDJSON bulk body; every deviation from the format goes to `problems`. */
const parseBulk = (body: string, contentType: string | undefined, problems: string[]): BulkAction[] => {
  if (!contentType?.startsWith('application/x-ndjson')) problems.push(`content-type ${String(contentType)}`);
  if (!body.endsWith('\n')) problems.push('body does not end with a newline');
  const lines = body.slice(0, -1).split('\n');
  const actions: BulkAction[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as string;
    const parsed: unknown = JSON.parse(line);
    const kinds = isObject(parsed) ? Object.keys(parsed) : [];
    const kind = kinds[0];
    if (kinds.length !== 1 || (kind !== 'index' && kind !== 'delete')) {
      problems.push(`line ${i} is not an index or delete action: ${line}`);
      continue;
    }
    const meta = (parsed as Record<string, unknown>)[kind];
    if (!isObject(meta) || typeof meta['_index'] !== 'string' || typeof meta['_id'] !== 'string' || meta['_id'] === '') {
      problems.push(`line ${i} lacks _index or _id: ${line}`);
      continue;
    }
    for (const k of Object.keys(meta)) if (!META_KEYS.has(k)) problems.push(`line ${i} has unexpected metadata ${k}`);
    if (meta['routing'] !== undefined && typeof meta['routing'] !== 'string') problems.push(`line ${i} has a routing that is not a string`);
    const versionDigits = /"version":(\d+)[,}]/.exec(line)?.[1];
    if ((meta['version'] === undefined) !== (versionDigits === undefined)) problems.push(`line ${i} has a version that is not an integer: ${line}`);
    if (meta['version'] !== undefined && meta['version_type'] !== 'external_gte') problems.push(`line ${i} has version_type ${String(meta['version_type'])}`);
    let source: Record<string, unknown> | undefined;
    if (kind === 'index') {
      i++;
      const next: unknown = lines[i] === undefined ? undefined : JSON.parse(lines[i] as string);
      if (!isObject(next)) problems.push(`line ${i} should be the document of the index action before it`);
      else source = next;
    }
    actions.push({
      action: kind,
      index: meta['_index'],
      id: meta['_id'],
      routing: meta['routing'] as string | undefined,
      version: versionDigits === undefined ? undefined : BigInt(versionDigits),
      versionType: meta['version_type'] as string | undefined,
      source,
    });
  }
  return actions;
};

/**
 * A local stand-in for the OpenSearch bulk API: it checks each NDJSON body, applies the actions in
 * order with OpenSearch's `external_gte` version check (a write with a lower version than the
 * document's, tombstones included, is a 409 version_conflict_engine_exception), and answers per-item
 * results. `answer` scripts other results per action; `failRequests` fails whole requests.
 */
const startBulkServer = async () => {
  const requests: BulkRequest[] = [];
  const problems: string[] = [];
  const docs = new Map<string, StoredDocument>();
  const seen = new Map<string, number>();
  let script: (action: BulkAction, attempt: number) => ItemAnswer | undefined = () => undefined;
  let failing: { count: number; status: number; type: string } | undefined;
  let hold: Promise<void> | undefined;

  const apply = (a: BulkAction): { status: number; result?: string; type?: string; reason?: string; version: bigint } => {
    const key = `${a.index}/${a.id}`;
    const stored = docs.get(key);
    const version = a.version ?? (stored?.version ?? 0n) + 1n;
    if (a.version !== undefined && stored?.version !== undefined && stored.version > a.version) {
      return { status: 409, type: 'version_conflict_engine_exception', reason: `[${a.id}]: version conflict, current version [${stored.version}] is higher than the one provided [${a.version}]`, version: stored.version };
    }
    if (a.action === 'delete') {
      docs.set(key, { version, source: undefined });
      return stored?.source ? { status: 200, result: 'deleted', version } : { status: 404, result: 'not_found', version };
    }
    docs.set(key, { version, source: a.source });
    return stored?.source ? { status: 200, result: 'updated', version } : { status: 201, result: 'created', version };
  };

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      void (async () => {
        const json = (status: number, body: unknown) => {
          res.writeHead(status, { 'content-type': 'application/json' });
          res.end(JSON.stringify(body));
        };
        if (req.url?.split('?')[0] !== '/_bulk') return json(200, {});
        const raw = Buffer.concat(chunks);
        const body = raw.toString('utf8');
        const actions = parseBulk(body, req.headers['content-type'], problems);
        requests.push({ method: req.method ?? '', headers: req.headers, body, bytes: raw.length, actions });
        if (hold) await hold;
        if (failing && failing.count > 0) {
          failing.count--;
          const reason = `${failing.type} for this test`;
          return json(failing.status, { error: { root_cause: [{ type: failing.type, reason }], type: failing.type, reason }, status: failing.status });
        }
        const items = actions.map((a) => {
          const k = `${a.index}/${a.id}/${String(a.version)}`;
          const attempt = (seen.get(k) ?? 0) + 1;
          seen.set(k, attempt);
          const scripted = script(a, attempt);
          const r = scripted ? { ...scripted, version: a.version ?? 1n } : apply(a);
          const error = r.type === undefined ? {} : { error: { type: r.type, reason: r.reason ?? r.type } };
          return { [a.action]: { _index: a.index, _id: a.id, _version: Number(r.version), status: r.status, ...('result' in r ? { result: r.result } : {}), ...error } };
        });
        json(200, { took: 1, errors: items.some((i) => Object.values(i).some((r) => r.status >= 300)), items });
      })();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    problems,
    docs,
    /** Scripts the answer for actions (attempt: how many times this id and version arrived, 1 first); `undefined` applies it. */
    answer(fn: (action: BulkAction, attempt: number) => ItemAnswer | undefined) {
      script = fn;
    },
    /** The next `count` bulk requests fail as a whole with this status. */
    failRequests(count: number, status: number, type = status === 429 ? 'es_rejected_execution_exception' : 'unavailable_shards_exception') {
      failing = { count, status, type };
    },
    /** Holds answers until the returned function is called. */
    holdAnswers(): () => void {
      let release = () => {};
      hold = new Promise<void>((resolve) => (release = resolve));
      return () => {
        hold = undefined;
        release();
      };
    },
    document: (index: string, id: string) => docs.get(`${index}/${id}`),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
};

type BulkServer = Awaited<ReturnType<typeof startBulkServer>>;

const servers: BulkServer[] = [];
const bulkServer = async () => {
  const s = await startBulkServer();
  servers.push(s);
  return s;
};
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

const task = (k: number | string, extra: Partial<Task> = {}): Task => ({ PK: `USER#${k}`, SK: `TASK#${k}`, TaskId: `${k}`, Status: 'OPEN', Version: 1, ...extra });

const setup = (sink: Sink<ChangeEvent>, config: Partial<AppConfig> = {}) => {
  const clock = new FakeClock();
  const deadLetter = new MemoryDeadLetterQueue();
  const app = defineApp({ table: 'TaskApp', routes: [route('*').to(sink)], deadLetter, ...config });
  return { clock, deadLetter, engine: new Engine({ app, logger: memoryLogger(), clock, random: () => 0.5 }) };
};

const sinkFor = (server: BulkServer, options: Partial<OpenSearchSinkOptions> = {}) => openSearch({ index: 'tasks', node: server.url, ...options });

const signal = () => new AbortController().signal;

/** Sets the creation time of a record (epoch seconds, as Lambda gives it). */
const at = (record: LambdaStreamRecord, epochSeconds: number): LambdaStreamRecord => {
  record.dynamodb.ApproximateCreationDateTime = epochSeconds;
  return record;
};

describe('openSearch', () => {
  describe('configuration', () => {
    it('throws a ConfigError naming openSearch.index and the fix when the index is missing', () => {
      // Act
      const attempt = () => openSearch({ node: 'http://127.0.0.1:9200' } as OpenSearchSinkOptions);

      // Assess
      expect(attempt).toThrow(ConfigError);
      expect(attempt).toThrow(/`openSearch\.index` must be an index name or a function \(event\) => string, got `undefined` \(undefined\)\. Set index to the index or alias to write to/);
    });

    it.each<[string, Partial<OpenSearchSinkOptions>, string]>([
      ['an upper-case index name', { index: 'Tasks' }, 'openSearch.index'],
      ['an index name with a space', { index: 'my tasks' }, 'openSearch.index'],
      ['an index name starting with _', { index: '_tasks' }, 'openSearch.index'],
      ['no node and no client', { node: undefined }, 'openSearch.node'],
      ['a node that is not a URL', { node: 'localhost:9200' }, 'openSearch.node'],
      ['a node next to a client', { client: new Client({ node: 'http://127.0.0.1:9200' }) }, 'openSearch.node'],
      ['aws without a region', { aws: { region: '' } }, 'openSearch.aws.region'],
      ['an unknown aws service', { aws: { region: 'eu-west-1', service: 'opensearch' as 'es' } }, 'openSearch.aws.service'],
      ['zero maxRecords', { maxRecords: 0 }, 'openSearch.maxRecords'],
      ['fractional maxBytes', { maxBytes: 1000.5 }, 'openSearch.maxBytes'],
      ['a version that is not a function', { version: 3 as unknown as false }, 'openSearch.version'],
      ['an id that is not a function', { id: 'PK' as unknown as () => string }, 'openSearch.id'],
      ['an empty name', { name: '' }, 'openSearch.name'],
    ])('rejects %s', (_what, options, field) => {
      // Act
      const attempt = () => openSearch({ index: 'tasks', node: 'http://127.0.0.1:9200', ...options });

      // Assess
      expect(attempt).toThrow(ConfigError);
      expect(attempt).toThrow(expect.objectContaining({ field }));
    });

    it('declares its limits, order within a request and defaults', () => {
      // Act
      const sink = openSearch({ index: 'tasks', node: 'http://127.0.0.1:9200' });

      // Assess
      expect(sink.name).toBe('opensearch');
      expect(sink.limits).toEqual({ maxRecords: 1000, maxBytes: 5 * 1024 * 1024 });
      expect(sink.preservesOrderWithinRequest).toBe(true);
    });

    it('types its events from a typed route', () => {
      // Act: compiles only if the sink takes the route's ChangeEvent<Task>.
      const r = route(Task).to(openSearch({ index: 'tasks', node: 'http://127.0.0.1:9200', document: (e) => ({ status: e.newImage.Status.toLowerCase() }) }));

      // Assess
      expect(r.description).toBe('Task -> opensearch');
    });
  });

  describe('bulk body', () => {
    it('indexes inserts and modifies with the item key as id, the creation time as external version and newImage as the document', async () => {
      // Prepare
      const server = await bulkServer();
      const records = streamRecords();
      const insert = records.insert(task(1));
      const modify = records.modify(task(2), task(2, { Status: 'DONE', Version: 2, Tags: new Set(['a']) } as Partial<Task>));
      const { engine } = setup(sinkFor(server));

      // Act
      const outcome = await engine.process([insert, modify]);

      // Assess
      expect(outcome.counts.delivered).toBe(2);
      expect(server.problems).toEqual([]);
      const actions = server.requests.flatMap((r) => r.actions);
      expect(actions).toEqual([
        { action: 'index', index: 'tasks', id: 'USER#1|TASK#1', routing: undefined, version: BigInt(insert.dynamodb.ApproximateCreationDateTime * 1000), versionType: 'external_gte', source: task(1) },
        { action: 'index', index: 'tasks', id: 'USER#2|TASK#2', routing: undefined, version: BigInt(modify.dynamodb.ApproximateCreationDateTime * 1000), versionType: 'external_gte', source: { ...task(2, { Status: 'DONE', Version: 2 }), Tags: ['a'] } },
      ]);
      expect(server.requests[0]?.method).toBe('POST');
    });

    it('deletes on remove: an action line with the version and no document line', async () => {
      // Prepare
      const server = await bulkServer();
      const records = streamRecords();
      const insert = records.insert(task(1));
      const remove = records.remove(task(1));
      const { engine } = setup(sinkFor(server));

      // Act
      const outcome = await engine.process([insert, remove]);

      // Assess
      expect(outcome.counts.delivered).toBe(2);
      expect(server.problems).toEqual([]);
      const last = server.requests.at(-1) as BulkRequest;
      expect(last.body.endsWith(`{"delete":{"_index":"tasks","_id":"USER#1|TASK#1","version":${remove.dynamodb.ApproximateCreationDateTime * 1000},"version_type":"external_gte"}}\n`)).toBe(true);
      expect(server.document('tasks', 'USER#1|TASK#1')).toEqual({ version: BigInt(remove.dynamodb.ApproximateCreationDateTime * 1000), source: undefined });
    });

    it('counts a delete of a document that is not there as delivered', async () => {
      // Prepare
      const server = await bulkServer();
      server.answer((a) => (a.action === 'delete' ? { status: 404 } : undefined)); // result: not_found
      const { engine, deadLetter } = setup(sinkFor(server));

      // Act
      const outcome = await engine.process([streamRecords().remove(task(9))]);

      // Assess: nothing to delete is nothing to retry.
      expect(outcome.counts.delivered).toBe(1);
      expect(outcome.retries).toBe(0);
      expect(deadLetter.letters).toEqual([]);
      expect(server.requests).toHaveLength(1);
    });

    it('uses the index, id, routing, document and version functions', async () => {
      // Prepare
      const server = await bulkServer();
      const sink = openSearch({
        node: server.url,
        index: (e) => `tasks-${String(e.newImage?.['Status'] ?? e.oldImage?.['Status']).toLowerCase()}`,
        id: (e) => String(e.key['SK']),
        routing: (e) => String(e.key['PK']),
        document: (e) => ({ taskId: e.newImage['TaskId'], eventID: e.eventID }),
        version: (e) => BigInt(e.newImage?.['Version'] as number) * 10n ** 17n,
      });
      const record = streamRecords().insert(task(7, { Version: 90 }));
      const { engine } = setup(sink);

      // Act
      const outcome = await engine.process([record]);

      // Assess: 9 * 10^18 is beyond 2^53 and arrives exact.
      expect(outcome.counts.delivered).toBe(1);
      expect(server.problems).toEqual([]);
      expect(server.requests[0]?.actions).toEqual([
        { action: 'index', index: 'tasks-open', id: 'TASK#7', routing: 'USER#7', version: 9_000_000_000_000_000_000n, versionType: 'external_gte', source: { taskId: '7', eventID: record.eventID } },
      ]);
    });

    it('writes without versions when version is false', async () => {
      // Prepare
      const server = await bulkServer();
      const { engine } = setup(sinkFor(server, { version: false }));

      // Act
      await engine.process([streamRecords().insert(task(1))]);

      // Assess
      expect(server.requests[0]?.body.split('\n')[0]).toBe('{"index":{"_index":"tasks","_id":"USER#1|TASK#1"}}');
    });

    it('makes sizeOf the exact UTF-8 bytes of the lines it sends', async () => {
      // Prepare
      const server = await bulkServer();
      const sink = sinkFor(server);
      const events = [decodeRecord(streamRecords().insert(task('ü', { Body: 'änderung ✓ 😀' }))), decodeRecord(streamRecords().remove(task(2)))];

      // Act
      await sink.send(events, signal());

      // Assess
      expect(server.requests[0]?.bytes).toBe(events.reduce((n, e) => n + sink.sizeOf(e), 0));
    });
  });

  describe('serialisation', () => {
    it('builds each event\'s lines once, however often it is sized and sent', async () => {
      // Prepare: the first attempt of one item is throttled, so it is sent twice.
      const server = await bulkServer();
      server.answer((a, attempt) => (a.id === 'USER#1|TASK#1' && attempt === 1 ? { status: 429, type: 'es_rejected_execution_exception' } : undefined));
      const built: string[] = [];
      const sink = sinkFor(server, {
        document: (e) => {
          built.push(e.eventID);
          return e.newImage;
        },
      });
      const records = streamRecords();
      const batch = [records.insert(task(0)), records.insert(task(1))];
      const { engine } = setup(sink);

      // Act
      const outcome = await engine.process(batch);

      // Assess
      expect(outcome.counts.delivered).toBe(2);
      expect(server.requests.flatMap((r) => r.actions)).toHaveLength(3);
      expect(built.sort()).toEqual(batch.map((r) => r.eventID).sort());
    });
  });

  describe('bulk limits', () => {
    it('never puts more than maxRecords actions in one request', async () => {
      // Prepare
      const server = await bulkServer();
      const records = streamRecords();
      const { engine } = setup(sinkFor(server, { maxRecords: 4 }));

      // Act
      const outcome = await engine.process(Array.from({ length: 10 }, (_, i) => records.insert(task(i))));

      // Assess
      expect(outcome.counts.delivered).toBe(10);
      expect(server.requests.map((r) => r.actions.length)).toEqual([4, 4, 2]);
      expect(server.requests.flatMap((r) => r.actions.map((a) => a.id))).toEqual(Array.from({ length: 10 }, (_, i) => `USER#${i}|TASK#${i}`));
    });

    it('never sends a request body larger than maxBytes', async () => {
      // Prepare
      const server = await bulkServer();
      const records = streamRecords();
      const raw = Array.from({ length: 12 }, (_, i) => records.insert(task(i, { Body: 'x'.repeat(200 + 150 * (i % 4)) })));
      const probe = sinkFor(server);
      const sizes = raw.map((r) => probe.sizeOf(decodeRecord(r)));
      const maxBytes = Math.max(...sizes) * 3;
      const { engine } = setup(sinkFor(server, { maxBytes }));

      // Act
      const outcome = await engine.process(raw);

      // Assess
      expect(outcome.counts.delivered).toBe(12);
      for (const r of server.requests) expect(r.bytes).toBeLessThanOrEqual(maxBytes);
      // As few requests as the limit allows: a greedy cut of the sizes in stream order.
      let greedy = 0;
      let open = Infinity;
      for (const size of sizes) {
        if (open + size > maxBytes) {
          greedy++;
          open = 0;
        }
        open += size;
      }
      expect(greedy).toBeGreaterThan(2);
      expect(server.requests).toHaveLength(greedy);
      expect(server.requests.reduce((n, r) => n + r.bytes, 0)).toBe(sizes.reduce((a, b) => a + b, 0));
    });

    it('dead-letters an event whose lines alone exceed maxBytes, without sending it', async () => {
      // Prepare
      const server = await bulkServer();
      const records = streamRecords();
      const { engine, deadLetter } = setup(sinkFor(server, { maxBytes: 600 }));

      // Act
      const outcome = await engine.process([records.insert(task(1, { Body: 'x'.repeat(1000) })), records.insert(task(2))]);

      // Assess
      expect(outcome.counts).toMatchObject({ delivered: 1, 'dead-lettered': 1 });
      expect(deadLetter.letters[0]?.error).toMatchObject({ name: 'OversizedDocumentError', class: 'PERMANENT' });
      expect(deadLetter.letters[0]?.error.message).toMatch(/Raise `maxBytes`/);
      expect(server.requests.flatMap((r) => r.actions.map((a) => a.id))).toEqual(['USER#2|TASK#2']);
    });
  });

  describe('per-item results', () => {
    it('retries a 429 item on its own and then delivers it', async () => {
      // Prepare
      const server = await bulkServer();
      server.answer((a, attempt) => (a.id === 'USER#1|TASK#1' && attempt === 1 ? { status: 429, type: 'es_rejected_execution_exception', reason: 'rejected execution of coordinating operation' } : undefined));
      const records = streamRecords();
      const { engine, clock } = setup(sinkFor(server));
      const start = clock.now();

      // Act
      const outcome = await engine.process([0, 1, 2].map((i) => records.insert(task(i))));

      // Assess
      expect(outcome.counts.delivered).toBe(3);
      expect(outcome.retries).toBe(1);
      expect(server.requests.map((r) => r.actions.map((a) => a.id))).toEqual([['USER#0|TASK#0', 'USER#1|TASK#1', 'USER#2|TASK#2'], ['USER#1|TASK#1']]);
      expect(server.document('tasks', 'USER#1|TASK#1')?.source).toEqual(task(1));
      // THROTTLING waits on the longer throttling base (500 ms, jitter 0.5 -> 250 ms).
      expect(clock.now() - start).toBe(250);
    });

    it('retries a 5xx item and dead-letters it as TRANSIENT once attempts run out', async () => {
      // Prepare
      const server = await bulkServer();
      server.answer((a) => (a.id === 'USER#1|TASK#1' ? { status: 503, type: 'unavailable_shards_exception', reason: 'primary shard is not active' } : undefined));
      const records = streamRecords();
      const { engine, deadLetter } = setup(sinkFor(server), { retry: { maxAttempts: 3 } });

      // Act
      const outcome = await engine.process([0, 1].map((i) => records.insert(task(i))));

      // Assess
      expect(outcome.counts).toMatchObject({ delivered: 1, 'dead-lettered': 1 });
      expect(deadLetter.letters[0]).toMatchObject({ attempts: 3, sink: 'opensearch', error: { name: 'unavailable_shards_exception', class: 'TRANSIENT' } });
      expect(server.requests.flatMap((r) => r.actions).filter((a) => a.id === 'USER#1|TASK#1')).toHaveLength(3);
    });

    it('dead-letters a mapping error after one attempt, with the error type as its name and without the field value', async () => {
      // Prepare
      const server = await bulkServer();
      server.answer((a) =>
        a.id === 'USER#1|TASK#1'
          ? { status: 400, type: 'mapper_parsing_exception', reason: "failed to parse field [Status] of type [long] in document with id 'USER#1|TASK#1'. Preview of field's value: 'OPEN'" }
          : undefined,
      );
      const records = streamRecords();
      const poisoned = records.insert(task(1));
      const { engine, deadLetter } = setup(sinkFor(server));

      // Act
      const outcome = await engine.process([records.insert(task(0)), poisoned, records.insert(task(2))]);

      // Assess
      expect(outcome.counts).toMatchObject({ delivered: 2, 'dead-lettered': 1 });
      expect(outcome.retries).toBe(0);
      expect(deadLetter.letters).toHaveLength(1);
      expect(deadLetter.letters[0]).toMatchObject({ attempts: 1, sink: 'opensearch', record: poisoned, error: { name: 'mapper_parsing_exception', class: 'PERMANENT' } });
      expect(deadLetter.letters[0]?.error.message).toContain('failed to parse field [Status] of type [long]');
      expect(deadLetter.letters[0]?.error.message).not.toContain("'OPEN'");
      expect(server.requests).toHaveLength(1);
    });

    it.each<[string, ItemAnswer, string]>([
      ['a strict mapping', { status: 400, type: 'strict_dynamic_mapping_exception', reason: 'mapping set to strict, dynamic introduction of [Body] within [_doc] is not allowed' }, 'strict_dynamic_mapping_exception'],
      ['too many fields', { status: 400, type: 'illegal_argument_exception', reason: 'Limit of total fields [1000] has been exceeded' }, 'illegal_argument_exception'],
      ['a status with no error type', { status: 400 }, 'http_400'],
    ])('dead-letters %s at once', async (_what, answer, name) => {
      // Prepare
      const server = await bulkServer();
      server.answer(() => answer);
      const { engine, deadLetter } = setup(sinkFor(server));

      // Act
      await engine.process([streamRecords().insert(task(1))]);

      // Assess
      expect(deadLetter.letters[0]).toMatchObject({ attempts: 1, error: { name, class: 'PERMANENT' } });
    });
  });

  describe('never older over newer', () => {
    it('keeps the newer document when an older change arrives after it, and counts the older one as delivered', async () => {
      // Prepare: v2 at t+1s, then a re-delivered v1 at t.
      const server = await bulkServer();
      const records = streamRecords();
      const older = records.modify(task(1), task(1, { Status: 'IN_PROGRESS', Version: 2 }));
      const newer = records.modify(task(1, { Status: 'IN_PROGRESS', Version: 2 }), task(1, { Status: 'DONE', Version: 3 }));
      const { engine, deadLetter } = setup(sinkFor(server));
      await engine.process([older, newer]);

      // Act
      const replay = await engine.process([older]);

      // Assess
      expect(replay.counts.delivered).toBe(1);
      expect(deadLetter.letters).toEqual([]);
      expect(server.document('tasks', 'USER#1|TASK#1')).toEqual({ version: BigInt(newer.dynamodb.ApproximateCreationDateTime * 1000), source: task(1, { Status: 'DONE', Version: 3 }) });
      expect(server.requests.at(-1)?.actions[0]?.version).toBe(BigInt(older.dynamodb.ApproximateCreationDateTime * 1000));
    });

    it('does not let a late delete remove a newer document', async () => {
      // Prepare
      const server = await bulkServer();
      const records = streamRecords();
      const remove = records.remove(task(1));
      const recreate = records.insert(task(1, { Version: 7 }));
      const { engine } = setup(sinkFor(server));
      await engine.process([recreate]);

      // Act
      const late = await engine.process([remove]);

      // Assess
      expect(late.counts.delivered).toBe(1);
      expect(server.document('tasks', 'USER#1|TASK#1')?.source).toEqual(task(1, { Version: 7 }));
    });

    it('does not let an older index bring back a document deleted after it', async () => {
      // Prepare
      const server = await bulkServer();
      const records = streamRecords();
      const insert = records.insert(task(1));
      const modify = records.modify(task(1), task(1, { Status: 'DONE' }));
      const remove = records.remove(task(1, { Status: 'DONE' }));
      const { engine } = setup(sinkFor(server));
      await engine.process([insert, remove]);

      // Act
      const late = await engine.process([modify]);

      // Assess: the delete's tombstone holds the later version; the index is a 409.
      expect(late.counts.delivered).toBe(1);
      expect(server.document('tasks', 'USER#1|TASK#1')).toEqual({ version: BigInt(remove.dynamodb.ApproximateCreationDateTime * 1000), source: undefined });
    });

    it('applies changes of the same second in stream order: equal versions are accepted, so the later change wins', async () => {
      // Prepare: three changes within one second (DynamoDB's creation time has 1 s resolution).
      const server = await bulkServer();
      const records = streamRecords();
      const second = 1_767_225_700;
      const batch = [
        at(records.insert(task(1)), second),
        at(records.modify(task(1), task(1, { Status: 'IN_PROGRESS', Version: 2 })), second),
        at(records.modify(task(1, { Status: 'IN_PROGRESS', Version: 2 }), task(1, { Status: 'DONE', Version: 3 })), second),
      ];
      const { engine } = setup(sinkFor(server));

      // Act
      const outcome = await engine.process(batch);

      // Assess
      expect(outcome.counts.delivered).toBe(3);
      expect(server.requests.flatMap((r) => r.actions.map((a) => a.source?.['Version']))).toEqual([1, 2, 3]);
      expect(server.document('tasks', 'USER#1|TASK#1')).toEqual({ version: BigInt(second * 1000), source: task(1, { Status: 'DONE', Version: 3 }) });
    });

    it('derives versions that never decrease along a key and grow with each second', async () => {
      // Prepare: four changes of one item; the second and third share a second.
      const server = await bulkServer();
      const records = streamRecords();
      const changes = [records.insert(task(1)), records.modify(task(1), task(1, { Version: 2 })), records.modify(task(1, { Version: 2 }), task(1, { Version: 3 })), records.remove(task(1, { Version: 3 }))];
      at(changes[2] as LambdaStreamRecord, (changes[1] as LambdaStreamRecord).dynamodb.ApproximateCreationDateTime);

      // Act
      const { failed } = await sinkFor(server).send(changes.map((r) => decodeRecord(r)), signal());

      // Assess
      expect(failed).toEqual([]);
      const versions = server.requests[0]?.actions.map((a) => a.version as bigint) ?? [];
      expect(versions).toEqual(changes.map((r) => BigInt(r.dynamodb.ApproximateCreationDateTime) * 1000n));
      expect(versions[0]).toBeLessThan(versions[1] as bigint);
      expect(versions[1]).toBe(versions[2]);
      expect(versions[2]).toBeLessThan(versions[3] as bigint);
      expect(server.document('tasks', 'USER#1|TASK#1')).toEqual({ version: versions[3], source: undefined });
    });

    it('dead-letters an event whose version function returns something OpenSearch cannot take', async () => {
      // Prepare
      const server = await bulkServer();
      const { engine, deadLetter } = setup(sinkFor(server, { version: () => 2n ** 63n }));

      // Act
      await engine.process([streamRecords().insert(task(1))]);

      // Assess
      expect(deadLetter.letters[0]?.error).toMatchObject({ name: 'ConfigError', class: 'PERMANENT' });
      expect(deadLetter.letters[0]?.error.message).toMatch(/`openSearch\.version` returned 9223372036854775808n \(bigint\)/);
      expect(server.requests).toEqual([]);
    });
  });

  describe('whole-request failures', () => {
    it('makes one attempt on a 503 with the client it builds, and rejects with a TRANSIENT error carrying the status', async () => {
      // Prepare
      const server = await bulkServer();
      server.failRequests(5, 503);
      const sink = sinkFor(server);

      // Act
      const error = await sink.send([decodeRecord(streamRecords().insert(task(1)))], signal()).then(
        () => undefined,
        (e: unknown) => e,
      );

      // Assess
      expect(server.requests).toHaveLength(1);
      expect(error).toBeInstanceOf(OpenSearchRequestError);
      expect(error).toMatchObject({ statusCode: 503 });
      expect(classify(error)).toBe('TRANSIENT');
    });

    it.each<[string, (url: string) => Partial<OpenSearchSinkOptions>]>([
      ['the client it builds', (url) => ({ node: url })],
      ['a client passed in that was built to retry', (url) => ({ client: new Client({ node: url, maxRetries: 5 }) })],
    ])('makes one request per engine attempt with %s', async (_what, clientOptions) => {
      // Prepare
      const server = await bulkServer();
      server.failRequests(100, 503);
      const { engine, deadLetter } = setup(openSearch({ index: 'tasks', ...clientOptions(server.url) }), { retry: { maxAttempts: 2 } });

      // Act
      const outcome = await engine.process([streamRecords().insert(task(1))]);

      // Assess
      expect(outcome.counts['dead-lettered']).toBe(1);
      expect(deadLetter.letters[0]).toMatchObject({ attempts: 2, error: { name: 'OpenSearchRequestError', class: 'TRANSIENT' } });
      expect(server.requests).toHaveLength(2);
    });

    it('classifies a whole-request 429 as THROTTLING and a 413 as PERMANENT with a hint', async () => {
      // Prepare
      const server = await bulkServer();
      const sink = sinkFor(server);
      const events = [decodeRecord(streamRecords().insert(task(1)))];
      const failure = async (status: number) => {
        server.failRequests(1, status, status === 413 ? 'content_too_long_exception' : 'es_rejected_execution_exception');
        return sink.send(events, signal()).then(
          () => undefined,
          (e: unknown) => e,
        );
      };

      // Act
      const throttled = await failure(429);
      const tooLarge = await failure(413);

      // Assess
      expect(classify(throttled)).toBe('THROTTLING');
      expect(classify(tooLarge)).toBe('PERMANENT');
      expect((tooLarge as Error).message).toMatch(/answered HTTP 413.*Lower `maxBytes` of sink opensearch/);
    });

    it('aborts the request in flight when the signal aborts', async () => {
      // Prepare
      const server = await bulkServer();
      const release = server.holdAnswers();
      const sink = sinkFor(server);
      const abort = new AbortController();
      const sending = sink.send([decodeRecord(streamRecords().insert(task(1)))], abort.signal).then(
        () => 'resolved',
        (e: unknown) => e,
      );
      await expect.poll(() => server.requests.length).toBe(1);

      // Act
      abort.abort(new Error('deadline'));
      const result = await sending;
      release();

      // Assess
      expect(result).toEqual(new Error('deadline'));
    });
  });

  describe('AWS SigV4', () => {
    it.each(['es', 'aoss'] as const)('signs each bulk request for service %s over the exact body', async (service) => {
      // Prepare: AWS's documented example credentials; the server checks the signature's shape.
      const server = await bulkServer();
      const sink = openSearch({
        index: 'tasks',
        node: server.url,
        aws: { region: 'eu-west-1', service, credentials: async () => ({ accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY' }) },
      });

      // Act
      const { failed } = await sink.send([decodeRecord(streamRecords().insert(task(1)))], signal());

      // Assess
      expect(failed).toEqual([]);
      const request = server.requests[0] as BulkRequest;
      expect(request.headers['authorization']).toMatch(new RegExp(`^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/\\d{8}/eu-west-1/${service}/aws4_request, SignedHeaders=[a-z0-9;-]*host[a-z0-9;-]*, Signature=[0-9a-f]{64}$`));
      expect(request.headers['x-amz-content-sha256']).toBe(createHash('sha256').update(request.body).digest('hex'));
      expect(request.headers['x-amz-date']).toMatch(/^\d{8}T\d{6}Z$/);
    });
  });

  describe('AWS default credentials', () => {
    afterEach(() => {
      vi.unstubAllEnvs();
    });

    it('signs with the credentials the default provider chain finds (here: the environment)', async () => {
      // Prepare: AWS's documented example key id, in the variables the chain reads first.
      vi.stubEnv('AWS_ACCESS_KEY_ID', 'AKIDEXAMPLE');
      vi.stubEnv('AWS_SECRET_ACCESS_KEY', 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY');
      vi.stubEnv('AWS_SESSION_TOKEN', undefined);
      vi.stubEnv('AWS_PROFILE', undefined); // a profile would take precedence over these
      const server = await bulkServer();
      const sink = openSearch({ index: 'tasks', node: server.url, aws: { region: 'us-east-1' } });

      // Act
      const { failed } = await sink.send([decodeRecord(streamRecords().insert(task(1)))], signal());

      // Assess
      expect(failed).toEqual([]);
      expect(server.requests[0]?.headers['authorization']).toMatch(/^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE\/\d{8}\/us-east-1\/es\/aws4_request, /);
    });
  });

  describe('document ids', () => {
    it.each<[string, Record<string, unknown>, string]>([
      ['orders attributes by name', { SK: 'TASK#1', PK: 'USER#1' }, 'USER#1|TASK#1'],
      ['keeps a single attribute as it is', { id: 'abc' }, 'abc'],
      ['escapes | and \\ inside values', { PK: 'a|b', SK: 'c\\d' }, 'a\\|b|c\\\\d'],
      ['prints numbers and binaries', { PK: 42, SK: new Uint8Array([1, 2, 255]) }, '42|AQL/'],
    ])('%s', (_what, key, id) => {
      // Act
      const made = keyDocumentId(key);

      // Assess
      expect(made).toBe(id);
    });

    it('never gives two different keys the same id', () => {
      // Act
      const ids = [{ PK: 'a|b', SK: 'c' }, { PK: 'a', SK: 'b|c' }, { PK: 'a\\', SK: '|c' }, { PK: 'a\\|', SK: 'c' }].map(keyDocumentId);

      // Assess
      expect(new Set(ids).size).toBe(4);
    });
  });

  describe('classifyBulkItem', () => {
    it.each<[number, string | undefined, 'index' | 'delete', BulkItemOutcome]>([
      [200, undefined, 'index', 'ok'],
      [201, undefined, 'index', 'ok'],
      [409, 'version_conflict_engine_exception', 'index', 'ok'],
      [409, 'version_conflict_engine_exception', 'delete', 'ok'],
      [404, undefined, 'delete', 'ok'],
      [404, 'index_not_found_exception', 'delete', 'ok'],
      [404, 'index_not_found_exception', 'index', 'PERMANENT'],
      [429, 'es_rejected_execution_exception', 'index', 'THROTTLING'],
      [429, 'circuit_breaking_exception', 'index', 'THROTTLING'],
      [429, undefined, 'delete', 'THROTTLING'],
      [500, 'exception', 'index', 'TRANSIENT'],
      [503, 'unavailable_shards_exception', 'index', 'TRANSIENT'],
      [403, 'cluster_block_exception', 'index', 'TRANSIENT'],
      [400, 'mapper_parsing_exception', 'index', 'PERMANENT'],
      [400, 'document_parsing_exception', 'index', 'PERMANENT'],
      [400, 'strict_dynamic_mapping_exception', 'index', 'PERMANENT'],
      [400, 'illegal_argument_exception', 'index', 'PERMANENT'],
      [400, 'some_new_exception', 'index', 'PERMANENT'],
      [403, 'security_exception', 'index', 'PERMANENT'],
      [409, 'some_other_conflict', 'index', 'PERMANENT'],
    ])('status %i with %s on %s is %s', (status, type, action, expected) => {
      // Act
      const outcome = classifyBulkItem(status, type, action);

      // Assess
      expect(outcome).toBe(expected);
    });

    it('lists only real classes in its table', () => {
      // Assess
      const classes: readonly FailureClass[] = ['THROTTLING', 'TRANSIENT', 'PERMANENT'];
      for (const c of bulkItemErrorClasses.values()) expect(classes).toContain(c);
    });
  });
});

