import { readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { build } from 'esbuild';
import { describe, expect, it } from 'vitest';
import { workerBundleOptions } from '../../deploy/worker-bundle.js';

const packageJson = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { dependencies: Record<string, string> };

/** `@aws-sdk/client-s3/dist/x` → `@aws-sdk/client-s3`; `pino` → `pino`. */
const packageOf = (specifier: string): string => specifier.split('/').slice(0, specifier.startsWith('@') ? 2 : 1).join('/');

describe('worker bundle', () => {
  it('imports only Node built-ins and production dependencies, which is all the image installs', async () => {
    // Act
    const result = await build({ ...workerBundleOptions('worker.mjs'), write: false, metafile: true, sourcemap: false, logLevel: 'silent' });
    const imports = Object.values(result.metafile.outputs).flatMap((output) => output.imports.filter((i) => i.external).map((i) => i.path));

    // Assess
    const builtins = new Set(builtinModules);
    const packages = [...new Set(imports.filter((i) => !i.startsWith('node:') && !builtins.has(i)).map(packageOf))];
    expect(packages.length).toBeGreaterThan(0);
    expect(packages.filter((p) => !(p in packageJson.dependencies))).toEqual([]);
  });
});
