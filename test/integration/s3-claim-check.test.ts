import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import type { IncomingHttpHeaders } from 'node:http';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { GetObjectCommand, HeadObjectCommand, ListBucketsCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { ConfigError } from '../../src/errors.js';
import type { LocalS3 } from '../../src/local/s3rver.js';
import { startS3rver } from '../../src/local/s3rver.js';
import type { S3ClaimCheckOptions } from '../../src/sinks/s3/index.js';
import { readClaimCheck, s3ClaimCheck } from '../../src/sinks/s3/index.js';

const BUCKET = 'claim-checks';
const EVENT_ID = 'c81e728d9d4c2f636f067f89cc14862c';

/** A fresh prefix per test, so no test sees another's objects. */
const uniquePrefix = (): string => `test-${randomUUID()}/`;

const live = (): AbortSignal => new AbortController().signal;

/** An event as a sink would claim-check it: both images of an item near DynamoDB's 400 KB limit, repeated to about 2 MB, in 1- to 4-byte UTF-8 characters. */
const largeEvent = (eventID: string) => {
  const text = 'Größe ∑ 日本語テキスト 🚀 plain ascii; '.repeat(16_000);
  return {
    eventID,
    kind: 'modify',
    entity: 'Task',
    key: { PK: 'USER#42', SK: 'TASK#7' },
    newImage: { PK: 'USER#42', SK: 'TASK#7', Notes: text, Parts: [text.slice(0, 100_000), text.slice(100_000, 400_000)] },
    oldImage: { PK: 'USER#42', SK: 'TASK#7', Notes: text.slice(0, 400_000) },
    meta: { sequenceNumber: '49039552900000000000000000001' },
  };
};

describe('s3ClaimCheck against s3rver', () => {
  let s3: LocalS3;

  beforeAll(async () => {
    s3 = await startS3rver({ buckets: [BUCKET] });
  });

  afterAll(async () => {
    await s3?.stop();
  });

  const listKeys = async (prefix: string): Promise<string[]> => {
    const listed = await s3.client.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: prefix }));
    return (listed.Contents ?? []).map((object) => object.Key ?? '');
  };

  it('round-trips a 2 MB multi-byte body exactly and reports its UTF-8 size', async () => {
    // Prepare
    const prefix = uniquePrefix();
    const store = s3ClaimCheck({ bucket: BUCKET, prefix, client: s3.client });
    const event = largeEvent(EVENT_ID);
    const body = JSON.stringify(event);
    const bytes = Buffer.byteLength(body, 'utf8');
    expect(bytes).toBeGreaterThan(2 * 1024 * 1024);
    expect(bytes).toBeGreaterThan(body.length);

    // Act
    const pointer = await store.put(EVENT_ID, body, live());
    const read = await readClaimCheck(s3.client, pointer);

    // Assess
    expect(pointer).toEqual({ bucket: BUCKET, key: `${prefix}${EVENT_ID}.json`, uri: `s3://${BUCKET}/${prefix}${EVENT_ID}.json`, size: bytes });
    expect(read).toEqual(event);
    const raw = await s3.client.send(new GetObjectCommand({ Bucket: BUCKET, Key: pointer.key }));
    expect(await raw.Body?.transformToString('utf-8')).toBe(body);
    const head = await s3.client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: pointer.key }));
    expect(head.ContentLength).toBe(bytes);
    expect(head.ContentType).toBe('application/json');
  });

  it('overwrites the same object when the same id is put again', async () => {
    // Prepare
    const prefix = uniquePrefix();
    const store = s3ClaimCheck({ bucket: BUCKET, prefix, client: s3.client });
    const id = `${EVENT_ID}.dead-letter`;

    // Act
    const first = await store.put(id, JSON.stringify({ attempts: 1 }), live());
    const second = await store.put(id, JSON.stringify({ attempts: 2, note: 'retried' }), live());

    // Assess
    expect(second.key).toBe(first.key);
    expect(await listKeys(prefix)).toEqual([first.key]);
    expect(await readClaimCheck(s3.client, second)).toEqual({ attempts: 2, note: 'retried' });
  });

  it('escapes ids to S3-safe keys and never maps two ids to one object', async () => {
    // Prepare: ids that would collide under a lossy escape, and one far longer than a key may be.
    const prefix = uniquePrefix();
    const store = s3ClaimCheck({ bucket: BUCKET, prefix, client: s3.client });
    const ids = ['a/b', 'a!2Fb', 'a_b', '../../etc', 'ünïcode #1', 'x'.repeat(2000), `${'x'.repeat(2000)}y`];

    // Act
    const pointers = [];
    for (const [index, id] of ids.entries()) pointers.push(await store.put(id, JSON.stringify({ index }), live()));

    // Assess
    const keys = pointers.map((p) => p.key);
    expect(new Set(keys).size).toBe(ids.length);
    for (const key of keys) {
      expect(key.startsWith(prefix)).toBe(true);
      expect(key.slice(prefix.length)).toMatch(/^[A-Za-z0-9._!-]+\.json$/);
      expect(Buffer.byteLength(key)).toBeLessThan(1024);
    }
    expect((await listKeys(prefix)).sort()).toEqual([...keys].sort());
    for (const [index, pointer] of pointers.entries()) expect(await readClaimCheck(s3.client, pointer)).toEqual({ index });
  });

  it('rejects without writing when the signal is already aborted', async () => {
    // Prepare
    const prefix = uniquePrefix();
    const store = s3ClaimCheck({ bucket: BUCKET, prefix, client: s3.client });
    const controller = new AbortController();
    controller.abort();

    // Act
    const put = store.put(EVENT_ID, JSON.stringify({ eventID: EVENT_ID }), controller.signal);

    // Assess
    await expect(put).rejects.toMatchObject({ name: 'AbortError' });
    expect(await listKeys(prefix)).toEqual([]);
  });

  it('lets a consumer tell a missing object from a stored one', async () => {
    // Prepare
    const store = s3ClaimCheck({ bucket: BUCKET, prefix: uniquePrefix(), client: s3.client });
    const stored = await store.put(EVENT_ID, '{"ok":true}', live());

    // Act
    const missing = readClaimCheck(s3.client, { ...stored, key: `${stored.key}.gone`, uri: `${stored.uri}.gone` });

    // Assess
    await expect(missing).rejects.toMatchObject({ name: 'NoSuchKey' });
  });
});

describe('s3ClaimCheck configuration', () => {
  it.each<[string, Partial<S3ClaimCheckOptions>, string]>([
    ['a missing bucket', {}, 's3ClaimCheck.bucket'],
    ['an empty bucket', { bucket: '' }, 's3ClaimCheck.bucket'],
    ['a bucket shorter than 3 characters', { bucket: 'ab' }, 's3ClaimCheck.bucket'],
    ['a bucket given as a URI', { bucket: 's3://lake/cdc' }, 's3ClaimCheck.bucket'],
    ['a prefix that is not a string', { bucket: BUCKET, prefix: 7 as unknown as string }, 's3ClaimCheck.prefix'],
    ['a region next to a client', { bucket: BUCKET, client: new S3Client({}), region: 'eu-west-1' }, 's3ClaimCheck.region'],
    ['a KMS key without KMS encryption', { bucket: BUCKET, kmsKeyId: 'alias/cdc' }, 's3ClaimCheck.kmsKeyId'],
  ])('rejects %s with a ConfigError naming the field', (_case, options, field) => {
    // Act
    const build = () => s3ClaimCheck(options as S3ClaimCheckOptions);

    // Assess
    expect(build).toThrow(ConfigError);
    expect(build).toThrow(expect.objectContaining({ field, message: expect.stringContaining(`\`${field}\``) }));
  });

  it('names the fix when the bucket is missing', () => {
    // Act
    const build = () => s3ClaimCheck({} as S3ClaimCheckOptions);

    // Assess
    expect(build).toThrow(/at least 3 characters.*Set it to the bucket/);
  });
});

describe('s3ClaimCheck with the client it builds', () => {
  interface Seen {
    readonly method: string | undefined;
    readonly url: string | undefined;
    readonly headers: IncomingHttpHeaders;
  }
  let seen: Seen[] = [];
  let status = 503;
  const server = createServer((req, res) => {
    seen.push({ method: req.method, url: req.url, headers: req.headers });
    req.resume();
    req.on('end', () => {
      if (status === 200) {
        res.writeHead(200, { ETag: '"etag"' }).end();
        return;
      }
      res
        .writeHead(status, { 'Content-Type': 'application/xml' })
        .end('<?xml version="1.0" encoding="UTF-8"?><Error><Code>ServiceUnavailable</Code><Message>Please reduce your request rate.</Message></Error>');
    });
  });
  let endpoint: string;

  beforeAll(async () => {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  afterEach(() => {
    vi.unstubAllEnvs();
    seen = [];
  });

  const stubCredentials = () => {
    // The built client takes the environment's credentials; give it dummy ones from the environment.
    vi.stubEnv('AWS_PROFILE', undefined);
    vi.stubEnv('AWS_ACCESS_KEY_ID', 'S3RVER');
    vi.stubEnv('AWS_SECRET_ACCESS_KEY', 'S3RVER');
    vi.stubEnv('AWS_SESSION_TOKEN', undefined);
  };

  it('makes one attempt per put: the engine owns retries', async () => {
    // Prepare
    stubCredentials();
    status = 503;
    const store = s3ClaimCheck({ bucket: BUCKET, region: 'us-east-1', endpoint, forcePathStyle: true });

    // Act
    const put = store.put(EVENT_ID, '{}', live());

    // Assess
    await expect(put).rejects.toMatchObject({ $metadata: { httpStatusCode: 503, attempts: 1 } });
    expect(seen).toHaveLength(1);
    expect(await store.client.config.maxAttempts()).toBe(1);
    store.client.destroy();
  });

  it('passes region, endpoint, path style, content type and encryption settings to S3', async () => {
    // Prepare
    stubCredentials();
    status = 200;
    const store = s3ClaimCheck({
      bucket: BUCKET,
      prefix: 'cdc/',
      region: 'eu-central-1',
      endpoint,
      forcePathStyle: true,
      serverSideEncryption: 'aws:kms',
      kmsKeyId: 'alias/cdc',
    });

    // Act
    const pointer = await store.put(EVENT_ID, '{"a":"€"}', live());

    // Assess
    expect(pointer).toEqual({ bucket: BUCKET, key: `cdc/${EVENT_ID}.json`, uri: `s3://${BUCKET}/cdc/${EVENT_ID}.json`, size: 11 });
    expect(seen).toHaveLength(1);
    const [request] = seen;
    expect(request?.method).toBe('PUT');
    expect(request?.url?.split('?')[0]).toBe(`/${BUCKET}/cdc/${EVENT_ID}.json`);
    expect(request?.headers).toMatchObject({
      'content-type': 'application/json',
      'x-amz-server-side-encryption': 'aws:kms',
      'x-amz-server-side-encryption-aws-kms-key-id': 'alias/cdc',
    });
    expect(request?.headers.authorization).toContain('/eu-central-1/s3/aws4_request');
    store.client.destroy();
  });
});

describe('startS3rver', () => {
  it('refuses bucket names shorter than 3 characters before starting', async () => {
    // Act
    const start = startS3rver({ buckets: ['ok-bucket', 'ab'] });

    // Assess
    await expect(start).rejects.toThrow(/at least 3 characters, got `ab`/);
  });

  it('stops for good: the port refuses, the directory is gone, a second stop is harmless', async () => {
    // Prepare
    const local = await startS3rver({ buckets: ['first-bucket', 'second-bucket'] });
    const { Buckets } = await local.client.send(new ListBucketsCommand({}));
    expect(Buckets?.map((b) => b.Name).sort()).toEqual(['first-bucket', 'second-bucket']);
    expect(existsSync(local.directory)).toBe(true);

    // Act
    await local.stop();
    await local.stop();

    // Assess
    expect(existsSync(local.directory)).toBe(false);
    await expect(fetch(local.endpoint)).rejects.toThrow();
  });
});
