/**
 * Bundles `handlers/worker.ts` (with dynamo-cdc.config.ts and src/) into one ES module for the
 * worker's container image. Packages stay external: the image installs the production
 * dependencies (`npm ci --omit=dev`) next to the bundle, so they must all be `dependencies`.
 *
 *   npx tsx deploy/worker-bundle.ts .tmp/worker.mjs
 */
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import type { BuildOptions } from 'esbuild';

/** The esbuild options of the worker bundle; the Dockerfile runs this file, the tests check its imports. */
export const workerBundleOptions = (outfile: string): BuildOptions & { outfile: string } => ({
  entryPoints: [fileURLToPath(new URL('../handlers/worker.ts', import.meta.url))],
  outfile,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  packages: 'external',
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
