#!/usr/bin/env node
// The dynamo-cdc command: the compiled CLI (dist/cli), with no TypeScript loader at run time.
// In a clone (src/ present, not shipped in the package) it runs the sources through tsx from the
// devDependencies instead, so that `npm run dynamo-cdc` needs no build and a config importing
// ./src/index.js shares the CLI's classes (a ConfigError must be recognised as one).
import { existsSync } from 'node:fs';
import { URL } from 'node:url';

// The AWS SDK prints a 9-line notice on Node.js 20 at its first client; the command's output is
// read by people and scripts, so it is left out unless the variable is set either way.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const source = new URL('../src/cli/main.ts', import.meta.url);
let main;
if (existsSync(source)) {
  const { register } = await import('tsx/esm/api');
  register();
  ({ main } = await import(source.href));
} else {
  ({ main } = await import('../dist/cli/main.js'));
}
process.exitCode = await main(process.argv.slice(2));
