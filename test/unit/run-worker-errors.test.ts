import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { defineApp, route } from '../../src/index.js';
import { ConfigError } from '../../src/errors.js';
import { memoryLogger, MemorySink } from '../../src/testing/index.js';
import { runWorker } from '../../src/worker/index.js';

// Everything the SDK reads a region (or a profile holding one) from; cleared per test, restored after.
const REGION_ENV = ['AWS_REGION', 'AWS_DEFAULT_REGION', 'AWS_PROFILE', 'AWS_DEFAULT_PROFILE', 'AWS_CONFIG_FILE', 'AWS_SHARED_CREDENTIALS_FILE', 'AWS_ENDPOINT_URL', 'AWS_ENDPOINT_URL_DYNAMODB'];
const NOWHERE = '/nonexistent/dynamo-cdc-test/aws-config';

const app = defineApp({ table: 'TaskApp', routes: [route('*').to(new MemorySink())] });
const credentials = { accessKeyId: 'test', secretAccessKey: 'test' };
const base = { app, leaseTable: 'leases', handleSignals: false, metricsPort: false, logger: memoryLogger(), credentials } as const;

describe('runWorker start-up errors', () => {
  let saved: Record<string, string | undefined>;
  beforeEach(() => {
    saved = Object.fromEntries(REGION_ENV.map((k) => [k, process.env[k]]));
    for (const k of REGION_ENV) delete process.env[k];
    // Files that do not exist, so a developer's ~/.aws/config cannot supply a region.
    process.env['AWS_CONFIG_FILE'] = NOWHERE;
    process.env['AWS_SHARED_CREDENTIALS_FILE'] = NOWHERE;
  });
  afterEach(() => {
    for (const k of REGION_ENV) {
      if (saved[k] === undefined) delete process.env[k];
      else process.env[k] = saved[k];
    }
  });

  it('rejects a missing region with a one-line ConfigError that names `region` and the fix', async () => {
    const error: unknown = await runWorker({ ...base, endpoint: 'http://127.0.0.1:1' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).field).toBe('region');
    const { message } = error as ConfigError;
    expect(message).not.toContain('\n');
    expect(message).toContain('`region`');
    expect(message).toContain('AWS_REGION');
  });

  it('rejects an unreachable endpoint within seconds with one line naming the endpoint', async () => {
    const started = Date.now();
    const error: unknown = await runWorker({ ...base, region: 'us-east-1', endpoint: 'http://127.0.0.1:1' }).catch((e: unknown) => e);
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).field).toBe('endpoint');
    const { message } = error as ConfigError;
    expect(message).not.toContain('\n');
    expect(message).toContain('http://127.0.0.1:1');
    expect(message).toMatch(/ECONNREFUSED/);
    expect(message).toMatch(/DynamoDB Local/);
  });
});

describe('runWorker metrics port from METRICS_PORT', () => {
  afterEach(() => {
    delete process.env['METRICS_PORT'];
  });

  it('rejects a METRICS_PORT that is not a port, naming the variable, before touching AWS', async () => {
    process.env['METRICS_PORT'] = 'ninety';
    const { metricsPort: _unset, ...withoutPort } = base;
    const error: unknown = await runWorker({ ...withoutPort, region: 'us-east-1', endpoint: 'http://127.0.0.1:1' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).field).toBe('metricsPort');
    expect((error as ConfigError).message).toContain('got METRICS_PORT=ninety');
  });

  it('lets the option win over the variable', async () => {
    process.env['METRICS_PORT'] = 'ninety';
    const error: unknown = await runWorker({ ...base, region: 'us-east-1', endpoint: 'http://127.0.0.1:1' }).catch((e: unknown) => e);
    expect((error as ConfigError).field).toBe('endpoint');
  });
});
