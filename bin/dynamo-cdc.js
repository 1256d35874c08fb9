#!/usr/bin/env node
// The dynamo-cdc command. tsx lets it load TypeScript config files (dynamo-cdc.config.ts) as they are.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../src/cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
