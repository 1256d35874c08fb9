/**
 * The CDK app of both shapes. The CDK CLI runs it:
 *
 *   npx aws-cdk@2 deploy DynamoCdcLambdaStack --app 'npx tsx deploy/app.ts' -c tableName=TaskApp
 *
 * Parameters come from CDK context (`-c name=value`) or DYNAMO_CDC_<NAME> environment variables;
 * docs/deploy.md lists them. `npm run synth` (deploy/synth.ts) synthesizes offline without the CLI.
 */
import { fileURLToPath } from 'node:url';
import { App } from 'aws-cdk-lib';
import type { App as DynamoCdcApp } from '../src/app.js';
import { DynamoCdcLambdaStack } from './lambda-stack.js';
import { readDeployParams } from './params.js';
import type { DeployParams } from './params.js';
import { DynamoCdcWorkerStack } from './worker-stack.js';

/**
 * The app the handlers run, whose routes become the Lambda mapping's filter. A configuration that
 * cannot be built at synth time (it reads a variable only the function has, say) leaves the
 * mapping without a filter, which is safe (every record invokes the function), and says so.
 */
const loadDynamoCdcApp = async (): Promise<DynamoCdcApp | undefined> => {
  try {
    return (await import('../dynamo-cdc.config.js')).default;
  } catch (error) {
    console.warn(`dynamo-cdc.config.ts could not be loaded at synth time (${error instanceof Error ? error.message : String(error)}): the Lambda mapping gets no filter, so every change invokes the function.`);
    return undefined;
  }
};

const dynamoCdcApp = await loadDynamoCdcApp();

/** The two stacks of the app, for one table. */
export interface DynamoCdcStacks {
  readonly lambda: DynamoCdcLambdaStack;
  readonly worker: DynamoCdcWorkerStack;
}

/**
 * Adds `<stackPrefix>LambdaStack` and `<stackPrefix>WorkerStack` to `app`. Deploy the one you run.
 * `routes` is the app the handlers run (dynamo-cdc.config.ts by default): its routes become the
 * Lambda mapping's filter.
 */
export const addDynamoCdcStacks = (app: App, params: DeployParams, routes: DynamoCdcApp | undefined = dynamoCdcApp): DynamoCdcStacks => {
  const env = {
    ...(params.account ? { account: params.account } : {}),
    ...(params.region ? { region: params.region } : {}),
  };
  return {
    lambda: new DynamoCdcLambdaStack(app, `${params.stackPrefix}LambdaStack`, {
      params,
      ...(routes ? { dynamoCdcApp: routes } : {}),
      env,
      description: `dynamo-cdc, Lambda shape: the stream handler for table ${params.tableName}`,
    }),
    worker: new DynamoCdcWorkerStack(app, `${params.stackPrefix}WorkerStack`, {
      params,
      env,
      description: `dynamo-cdc, worker shape: ECS Fargate workers for table ${params.tableName}`,
    }),
  };
};

/** Builds the app from its context and the environment. */
export const createDynamoCdcApp = (app: App = new App(), env: NodeJS.ProcessEnv = process.env): { app: App; stacks: DynamoCdcStacks } => {
  const params = readDeployParams((name) => app.node.tryGetContext(name), env);
  return { app, stacks: addDynamoCdcStacks(app, params) };
};

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  createDynamoCdcApp().app.synth();
}
