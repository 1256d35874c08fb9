/**
 * Synthesizes both stacks into cdk.out, offline: no AWS account, no credentials, no Docker, no CDK
 * CLI. The function is bundled with the local esbuild; the worker's image is only staged (it is
 * built when the stack is deployed).
 *
 *   npm run synth                                   # the example app's table, TaskApp
 *   npm run synth -- -c tableName=Orders -c parallelizationFactor=4
 *
 * Parameters as for deploy/app.ts (`-c name=value` or DYNAMO_CDC_<NAME>); a misspelt name is an error.
 */
import { fileURLToPath } from 'node:url';
import { relative } from 'node:path';
import { App } from 'aws-cdk-lib';
import { createDynamoCdcApp } from './app.js';
import { DEPLOY_PARAM_NAMES, envNameOf } from './params.js';

/** The example app's table (dynamo-cdc.config.ts), used when no table is given. */
const EXAMPLE_TABLE = 'TaskApp';

const parseContext = (argv: readonly string[]): Record<string, string> => {
  const context: Record<string, string> = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    const pair = arg === '-c' || arg === '--context' ? argv[++i] : arg.startsWith('--context=') ? arg.slice('--context='.length) : undefined;
    if (pair === undefined) throw new Error(`Unexpected argument \`${arg}\`. Pass parameters as \`-c name=value\`.`);
    const eq = pair.indexOf('=');
    if (eq < 1) throw new Error(`Expected \`-c name=value\`, got \`-c ${pair}\`.`);
    const name = pair.slice(0, eq);
    if (!DEPLOY_PARAM_NAMES.some((known) => known === name)) {
      throw new Error(`Unknown parameter \`${name}\`. Known parameters: ${DEPLOY_PARAM_NAMES.join(', ')} (docs/deploy.md).`);
    }
    context[name] = pair.slice(eq + 1);
  }
  return context;
};

const synth = (argv: readonly string[]): number => {
  const context = parseContext(argv);
  const tableGiven = (['tableName', 'tableStreamArn'] as const).some((name) => context[name] !== undefined || process.env[envNameOf(name)] !== undefined);
  if (!tableGiven) {
    context['tableName'] = EXAMPLE_TABLE;
    console.log(`No table given (-c tableName=… or -c tableStreamArn=…): synthesizing for the example app's table, ${EXAMPLE_TABLE}.`);
  }

  const outdir = process.env['CDK_OUTDIR'] ?? fileURLToPath(new URL('../cdk.out', import.meta.url));
  const { app } = createDynamoCdcApp(new App({ outdir, context }));
  const assembly = app.synth();

  let errors = 0;
  for (const stack of assembly.stacks) {
    console.log(`${stack.stackName}: ${relative(process.cwd(), stack.templateFullPath)}`);
    for (const message of stack.messages) {
      if (message.level === 'error') errors++;
      if (message.level !== 'info') console.log(`  ${message.level}: ${message.id}: ${String(message.entry.data)}`);
    }
  }
  for (const missing of assembly.manifest.missing ?? []) {
    console.log(`Lookup left for the CDK CLI (it needs credentials): ${missing.key}`);
  }
  if (errors > 0) console.error(`${errors} error(s) in the synthesized stacks.`);
  return errors > 0 ? 1 : 0;
};

try {
  process.exitCode = synth(process.argv.slice(2));
} catch (error) {
  // A bad parameter: its message names it and the fix; the stack trace would only bury that.
  console.error(error instanceof Error ? error.message : String(error));
  process.exitCode = 1;
}
