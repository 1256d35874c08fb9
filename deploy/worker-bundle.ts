/**
 * Bundles `handlers/worker.ts` (with dynamo-cdc.config.ts and src/) into one ES module for the
 * worker's container image. The production dependencies stay external: the image installs them
 * (`npm ci --omit=dev`) next to the bundle. Everything else the worker imports (the optional peers
 * its config and metrics use: sink clients, prom-client) is bundled in, since the image does not
 * install development dependencies.
 *
 *   npx tsx deploy/worker-bundle.ts .tmp/worker.mjs
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import type { BuildOptions } from 'esbuild';

const dependencies = Object.keys(
  (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { dependencies?: Record<string, string> }).dependencies ?? {},
);

/** The esbuild options of the worker bundle; the Dockerfile runs this file, the tests check its imports. */
export const workerBundleOptions = (outfile: string): BuildOptions & { outfile: string } => ({
  entryPoints: [fileURLToPath(new URL('../handlers/worker.ts', import.meta.url))],
  outfile,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  external: dependencies.flatMap((name) => [name, `${name}/*`]),
  // Bundled CommonJS packages (prom-client) call require() for Node's modules.
  banner: { js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);" },
  sourcemap: true,
  logLevel: 'warning',
});

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const outfile = process.argv[2];
  if (!outfile) {
    console.error('Usage: tsx deploy/worker-bundle.ts <outfile.mjs>');
    process.exit(2);
  }
  await build(workerBundleOptions(outfile));
}
