import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);

describe('npm run demo', () => {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it('runs end to end on DynamoDB Local and accounts for every change', async () => {
    // Prepare
    const out = await mkdtemp(join(tmpdir(), 'dynamo-cdc-demo-'));
    dirs.push(out);

    // Act: as a user would, in a child process, with a small workload.
    const { stdout } = await run('npx', ['tsx', 'src/cli/demo.ts', '--users', '2', '--tasks-per-user', '3', '--out', out], { timeout: 90_000 });

    // Assess: the last line is the machine-readable summary.
    const last = JSON.parse(stdout.trim().split('\n').at(-1) as string) as Record<string, unknown>;
    expect(last).toMatchObject({ demo: 'ok', deadLettered: 1 });
    expect(Number(last['delivered']) + Number(last['deadLettered'])).toBe(last['changes']);
  }, 120_000);
});
