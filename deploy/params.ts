import { ConfigError } from '../src/errors.js';

/**
 * The deploy parameters, resolved and checked: every field has its final value. Each one is read
 * from CDK context (`-c name=value`, or `cdk.json`) first, then from the environment variable
 * `DYNAMO_CDC_<NAME_IN_SNAKE_CASE>` (`tableName` → `DYNAMO_CDC_TABLE_NAME`). docs/deploy.md
 * explains each one.
 */
export interface DeployParams {
  /** Prefix of the stack names: `<stackPrefix>LambdaStack`, `<stackPrefix>WorkerStack`. @default 'DynamoCdc' */
  readonly stackPrefix: string;
  /** Account of the stacks; needed only with `vpcId`. @default CDK_DEFAULT_ACCOUNT, else environment-agnostic */
  readonly account: string | undefined;
  /** Region of the stacks; needed only with `vpcId`. @default CDK_DEFAULT_REGION, else environment-agnostic */
  readonly region: string | undefined;

  /** The table whose stream is read. From `tableStreamArn` when only that is given. */
  readonly tableName: string;
  /**
   * The table's stream ARN. When absent, the stacks look it up at deploy time (DescribeTable's
   * `LatestStreamArn`, through a custom resource allowed `dynamodb:DescribeTable` on that one table).
   */
  readonly tableStreamArn: string | undefined;

  /**
   * Node.js major version of the function's runtime (`nodejs<v>.x`) and of the worker image
   * (`node:<v>-bookworm-slim`). 22, because the tests run under it and Lambda deprecated
   * nodejs20.x on 2026-04-30 (creating functions on it is blocked from 2027-02-01); 20 is kept
   * only for existing deployments.
   * @default 22
   */
  readonly nodeVersion: '20' | '22' | '24';
  /**
   * Lambda: ship source maps with the bundle and run with `--enable-source-maps`, so stack traces
   * name the TypeScript sources. Off by default: the map is larger than the minified bundle, and
   * Node maps every stack trace it prints, both of which slow cold starts.
   * @default false
   */
  readonly sourceMaps: boolean;
  /** CPU architecture of the function and the container. @default 'x86_64' */
  readonly architecture: 'x86_64' | 'arm64';
  /** `LOG_LEVEL` of the handler and the worker. @default 'info' */
  readonly logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace';
  /** Days the function's and the tasks' logs are kept; one of CloudWatch Logs' retention values. @default 30 */
  readonly logRetentionDays: number;
  /** SNS topic that every alarm notifies (in alarm and back to OK). @default none: alarms only change state */
  readonly alarmTopicArn: string | undefined;
  /** The dead-letter queue alarm fires when at least this many messages are visible. @default 1 */
  readonly dlqDepthAlarm: number;

  /** EventBridge bus (name or ARN) the role may `events:PutEvents` to; `EVENT_BUS_NAME`. @default none */
  readonly eventBusName: string | undefined;
  /** SQS queues (names or ARNs) the role may `sqs:SendMessage` to; `QUEUE_URLS` (JSON: name → URL). @default none */
  readonly queues: readonly string[];
  /** Bucket of the S3 data-lake export; `EXPORT_BUCKET`. @default none */
  readonly exportBucket: string | undefined;
  /** Key prefix of the export: `''` or ending in `/`; `EXPORT_PREFIX`. @default 'cdc/' (the sink's default) */
  readonly exportPrefix: string;
  /** Bucket of the claim-check store; `CLAIM_CHECK_BUCKET`. @default none */
  readonly claimCheckBucket: string | undefined;
  /** Key prefix of the claim-check store; `CLAIM_CHECK_PREFIX`. @default 'claim-check/' (the store's default) */
  readonly claimCheckPrefix: string;
  /** Endpoint of an Amazon OpenSearch Service domain, as `https://…`; `OPENSEARCH_ENDPOINT`. @default none */
  readonly openSearchEndpoint: string | undefined;
  /** ARN of that domain. @default derived from a `search-<domain>-<id>.<region>.es.amazonaws.com` endpoint */
  readonly openSearchDomainArn: string | undefined;

  /** Lambda: memory in MB. @default 512 */
  readonly memorySize: number;
  /** Lambda: function timeout in seconds. @default 60 */
  readonly timeoutSeconds: number;
  /** Lambda ESM: records per batch (1 to 10,000). @default 100 */
  readonly batchSize: number;
  /** Lambda ESM: how long to gather a batch (0 to 300 s). @default 0 */
  readonly maxBatchingWindowSeconds: number;
  /** Lambda ESM: concurrent batches per shard (1 to 10). @default 1 */
  readonly parallelizationFactor: number;
  /** Lambda ESM: retries of a failing batch before it goes to the on-failure destination (0 to 10,000). @default 10 */
  readonly maximumRetryAttempts: number;
  /** Lambda ESM: oldest record, in seconds, that is still retried (60 to 86,400). @default 86400 */
  readonly maximumRecordAgeSeconds: number;
  /** Lambda: the iterator-age alarm fires above this many seconds. @default 600 */
  readonly iteratorAgeAlarmSeconds: number;

  /** Worker: an existing VPC to run in (private subnets with egress); needs `account` and `region`. @default a new VPC */
  readonly vpcId: string | undefined;
  /** Worker: task CPU units (256, 512, 1024, 2048, 4096, 8192, 16384). @default 512 */
  readonly cpu: number;
  /** Worker: task memory in MiB, valid for `cpu` on Fargate. @default 1024 */
  readonly memoryMiB: number;
  /** Worker: fewest tasks. @default 1 */
  readonly minTasks: number;
  /** Worker: most tasks. A shard is read by one task, so tasks beyond the shard count sit idle. @default 4 */
  readonly maxTasks: number;
  /** Worker: tasks at deployment. @default minTasks */
  readonly desiredTasks: number;
  /** Worker: average CPU the scaling policy aims for, in percent. @default 60 */
  readonly scaleOnCpuPercent: number;
  /** Worker: `LEASE_DURATION_MS`. @default 10000 */
  readonly leaseDurationMs: number;
  /** Worker: `DRAIN_TIMEOUT_MS`, how long in-flight deliveries may finish on SIGTERM. @default 10000 */
  readonly drainTimeoutMs: number;
  /** Worker: seconds between SIGTERM and SIGKILL (2 to 120); at least the drain timeout plus 5 s. @default 60 */
  readonly stopTimeoutSeconds: number;
}

/** The parameter names: the keys of {@link DeployParams}. */
export type DeployParamName = keyof DeployParams;

/** Raw parameter values, as CDK context or the environment give them (strings), or typed (tests, cdk.json). */
export type DeployParamsInput = { readonly [K in DeployParamName]?: unknown };

/** Every parameter name, for reading them and for telling a misspelt one. */
export const DEPLOY_PARAM_NAMES = [
  'stackPrefix', 'account', 'region',
  'tableName', 'tableStreamArn',
  'nodeVersion', 'sourceMaps', 'architecture', 'logLevel', 'logRetentionDays', 'alarmTopicArn', 'dlqDepthAlarm',
  'eventBusName', 'queues', 'exportBucket', 'exportPrefix', 'claimCheckBucket', 'claimCheckPrefix', 'openSearchEndpoint', 'openSearchDomainArn',
  'memorySize', 'timeoutSeconds', 'batchSize', 'maxBatchingWindowSeconds', 'parallelizationFactor', 'maximumRetryAttempts', 'maximumRecordAgeSeconds', 'iteratorAgeAlarmSeconds',
  'vpcId', 'cpu', 'memoryMiB', 'minTasks', 'maxTasks', 'desiredTasks', 'scaleOnCpuPercent', 'leaseDurationMs', 'drainTimeoutMs', 'stopTimeoutSeconds',
] as const satisfies readonly DeployParamName[];

// Fails to compile when a field of DeployParams is missing from DEPLOY_PARAM_NAMES (it would never be read).
const _everyParamListed: [Exclude<DeployParamName, (typeof DEPLOY_PARAM_NAMES)[number]>] extends [never] ? true : never = true;

/** `tableName` → `DYNAMO_CDC_TABLE_NAME`. */
export const envNameOf = (name: DeployParamName): string => `DYNAMO_CDC_${name.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`;

/** CloudWatch Logs' retention values, in days. */
export const LOG_RETENTION_DAYS = [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653] as const;

/** Fargate's task sizes: memory choices in MiB per CPU value. */
const FARGATE_MEMORY: Readonly<Record<number, { readonly min: number; readonly max: number; readonly step: number; readonly extra?: readonly number[] }>> = {
  256: { min: 1024, max: 2048, step: 1024, extra: [512] },
  512: { min: 1024, max: 4096, step: 1024 },
  1024: { min: 2048, max: 8192, step: 1024 },
  2048: { min: 4096, max: 16_384, step: 1024 },
  4096: { min: 8192, max: 30_720, step: 1024 },
  8192: { min: 16_384, max: 61_440, step: 4096 },
  16_384: { min: 32_768, max: 122_880, step: 8192 },
};

/** Seconds the worker needs after draining: checkpoint writes and lease releases. */
export const STOP_MARGIN_SECONDS = 5;

const STREAM_ARN = /^arn:(aws[a-z-]*):dynamodb:([a-z0-9-]+):(\d{12}):table\/([A-Za-z0-9_.-]{3,255})\/stream\/([^/\s]+)$/;
const TABLE_NAME = /^[A-Za-z0-9_.-]{3,255}$/;
const QUEUE_NAME = /^[A-Za-z0-9_-]{1,80}$|^[A-Za-z0-9_-]{1,75}\.fifo$/;
const QUEUE_ARN = /^arn:(aws[a-z-]*):sqs:([a-z0-9-]+):(\d{12}):([A-Za-z0-9_.-]{1,80})$/;
const BUS_NAME = /^[A-Za-z0-9._/-]{1,256}$/;
const BUS_ARN = /^arn:(aws[a-z-]*):events:([a-z0-9-]+):(\d{12}):event-bus\/([A-Za-z0-9._/-]{1,256})$/;
const BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
const DOMAIN_ARN = /^arn:(aws[a-z-]*):es:([a-z0-9-]+):(\d{12}):domain\/([a-z][a-z0-9-]{2,27})$/;
const DOMAIN_ENDPOINT = /^(?:search|vpc)-([a-z][a-z0-9-]{2,27})-[a-z0-9]+\.([a-z0-9-]+)\.es\.amazonaws\.com$/;
const TOPIC_ARN = /^arn:(aws[a-z-]*):sns:([a-z0-9-]+):(\d{12}):([A-Za-z0-9_-]{1,256}(\.fifo)?)$/;
const STACK_PREFIX = /^[A-Za-z][A-Za-z0-9-]{0,99}$/;
const ACCOUNT = /^\d{12}$/;
const REGION = /^[a-z]{2}(-[a-z]+)+-\d+$/;
const VPC_ID = /^vpc-[0-9a-f]{8,17}$/;

/** Where a parameter is set, for the fix in an error message. */
const howToSet = (name: DeployParamName): string => `\`-c ${name}=…\` or ${envNameOf(name)}`;

const shown = (value: unknown): string => `\`${typeof value === 'string' ? value : JSON.stringify(value)}\` (${typeof value})`;

const fail = (name: DeployParamName, message: string): never => {
  throw new ConfigError(name, message);
};

const text = (input: DeployParamsInput, name: DeployParamName): string | undefined => {
  const value = input[name];
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (typeof value !== 'string') return fail(name, `must be a string, got ${shown(value)}. Set it with ${howToSet(name)}.`);
  const trimmed = value.trim();
  return trimmed === '' ? undefined : trimmed;
};

const matching = (input: DeployParamsInput, name: DeployParamName, pattern: RegExp, what: string): string | undefined => {
  const value = text(input, name);
  if (value !== undefined && !pattern.test(value)) fail(name, `must be ${what}, got ${shown(value)}. Set it with ${howToSet(name)}.`);
  return value;
};

const integer = (input: DeployParamsInput, name: DeployParamName, range: { min: number; max: number; fallback: number; why?: string }): number => {
  const raw = input[name];
  const value = typeof raw === 'number' ? raw : text(input, name);
  if (value === undefined) return range.fallback;
  const n = typeof value === 'number' ? value : /^-?\d+$/.test(value) ? Number(value) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < range.min || n > range.max) {
    fail(name, `must be an integer from ${range.min} to ${range.max}, got ${shown(raw)}.${range.why ? ` ${range.why}` : ''} Set it with ${howToSet(name)}, or leave it out for ${range.fallback}.`);
  }
  return n;
};

const oneOf = <T extends string>(input: DeployParamsInput, name: DeployParamName, choices: readonly T[], fallback: T): T => {
  const value = text(input, name);
  if (value === undefined) return fallback;
  const choice = choices.find((c) => c === value);
  if (choice === undefined) fail(name, `must be one of ${choices.map((c) => `\`${c}\``).join(', ')}, got ${shown(value)}. Set it with ${howToSet(name)}.`);
  return choice ?? fallback;
};

const flag = (input: DeployParamsInput, name: DeployParamName, fallback: boolean): boolean => {
  const raw = input[name];
  if (typeof raw === 'boolean') return raw;
  const value = text(input, name);
  if (value === undefined) return fallback;
  if (value === 'true') return true;
  if (value === 'false') return false;
  return fail(name, `must be \`true\` or \`false\`, got ${shown(raw)}. Set it with ${howToSet(name)}, or leave it out for \`${String(fallback)}\`.`);
};

const list = (input: DeployParamsInput, name: DeployParamName): string[] => {
  const raw = input[name];
  if (Array.isArray(raw)) return raw.map((v: unknown, i) => (typeof v === 'string' && v.trim() !== '' ? v.trim() : fail(name, `must list non-empty strings, got ${shown(v)} at index ${i}.`)));
  const value = text(input, name);
  return value === undefined ? [] : value.split(',').map((s) => s.trim()).filter((s) => s !== '');
};

const prefix = (input: DeployParamsInput, name: DeployParamName, fallback: string): string => {
  const raw = input[name];
  if (raw === '') return '';
  const value = text(input, name) ?? fallback;
  if (value !== '' && (!value.endsWith('/') || value.startsWith('/') || /[*?\s]/.test(value))) {
    fail(name, `must be '' or a key prefix ending in \`/\`, without a leading \`/\`, spaces or wildcards, got ${shown(value)}. Set it with ${howToSet(name)}, for example \`${fallback}\`.`);
  }
  return value;
};

/** The table name and stream ARN, checked against each other. */
const resolveTable = (input: DeployParamsInput): { tableName: string; tableStreamArn: string | undefined } => {
  const tableStreamArn = matching(input, 'tableStreamArn', STREAM_ARN, 'a DynamoDB stream ARN (`arn:aws:dynamodb:<region>:<account>:table/<table>/stream/<label>`; `aws dynamodb describe-table --table-name <table> --query Table.LatestStreamArn` prints it)');
  const tableName = matching(input, 'tableName', TABLE_NAME, 'a DynamoDB table name (3 to 255 of `A-Z a-z 0-9 _ . -`)');
  const fromArn = tableStreamArn ? STREAM_ARN.exec(tableStreamArn)?.[4] : undefined;
  if (tableName && fromArn && tableName !== fromArn) {
    fail('tableName', `is \`${tableName}\`, but \`tableStreamArn\` is the stream of table \`${fromArn}\`. Give the stream of the same table, or leave \`tableName\` out.`);
  }
  const name = tableName ?? fromArn;
  if (!name) {
    return fail('tableName', `is required: name the table whose stream is read, with ${howToSet('tableName')}, or give its stream ARN with ${howToSet('tableStreamArn')}.`);
  }
  return { tableName: name, tableStreamArn };
};

const resolveFargateSize = (input: DeployParamsInput): { cpu: number; memoryMiB: number } => {
  const cpus = Object.keys(FARGATE_MEMORY).map(Number);
  const cpu = integer(input, 'cpu', { min: 256, max: 16_384, fallback: 512 });
  const size = FARGATE_MEMORY[cpu];
  if (!size) return fail('cpu', `must be one of Fargate's CPU values ${cpus.join(', ')}, got \`${cpu}\`. Set it with ${howToSet('cpu')}.`);
  const memoryMiB = integer(input, 'memoryMiB', { min: 512, max: 122_880, fallback: Math.max(1024, size.min) });
  const valid = (size.extra ?? []).includes(memoryMiB) || (memoryMiB >= size.min && memoryMiB <= size.max && (memoryMiB - size.min) % size.step === 0);
  if (!valid) {
    fail('memoryMiB', `\`${memoryMiB}\` is not a Fargate size for \`cpu\` ${cpu}: choose ${size.extra ? `${size.extra.join(', ')} or ` : ''}${size.min} to ${size.max} in steps of ${size.step}. Set it with ${howToSet('memoryMiB')}.`);
  }
  return { cpu, memoryMiB };
};

const resolveOpenSearch = (input: DeployParamsInput): { openSearchEndpoint: string | undefined; openSearchDomainArn: string | undefined } => {
  const endpoint = text(input, 'openSearchEndpoint');
  const domainArn = matching(input, 'openSearchDomainArn', DOMAIN_ARN, 'an OpenSearch Service domain ARN (`arn:aws:es:<region>:<account>:domain/<name>`)');
  if (endpoint === undefined) {
    if (domainArn) fail('openSearchEndpoint', `is required with \`openSearchDomainArn\`: give the domain's endpoint with ${howToSet('openSearchEndpoint')}.`);
    return { openSearchEndpoint: undefined, openSearchDomainArn: undefined };
  }
  let url: URL;
  try {
    url = new URL(endpoint.includes('://') ? endpoint : `https://${endpoint}`);
  } catch (error) {
    throw new ConfigError('openSearchEndpoint', `must be the domain's endpoint, such as \`https://search-tasks-abc123.eu-west-1.es.amazonaws.com\`, got ${shown(endpoint)}.`, { cause: error });
  }
  if (url.protocol !== 'https:' || (url.pathname !== '/' && url.pathname !== '')) {
    fail('openSearchEndpoint', `must be an https endpoint without a path, such as \`https://search-tasks-abc123.eu-west-1.es.amazonaws.com\`, got ${shown(endpoint)}.`);
  }
  if (!domainArn && !DOMAIN_ENDPOINT.test(url.hostname)) {
    fail('openSearchDomainArn', `is required: the endpoint \`${url.hostname}\` does not name its domain (a custom endpoint?), so the policy cannot be scoped to it. Set it with ${howToSet('openSearchDomainArn')}.`);
  }
  return { openSearchEndpoint: url.origin, openSearchDomainArn: domainArn };
};

/**
 * Checks the raw parameters and fills in the defaults. A bad value throws a {@link ConfigError}
 * that names the parameter and the fix.
 *
 * @example
 * const params = resolveDeployParams({ tableStreamArn: 'arn:aws:dynamodb:eu-west-1:123456789012:table/TaskApp/stream/2026-01-01T00:00:00.000', parallelizationFactor: '4' });
 */
export const resolveDeployParams = (input: DeployParamsInput): DeployParams => {
  const table = resolveTable(input);

  const queues = list(input, 'queues');
  for (const queue of queues) {
    if (!QUEUE_NAME.test(queue) && !QUEUE_ARN.test(queue)) {
      fail('queues', `must list SQS queue names or ARNs, comma-separated, got \`${queue}\`. A name has 1 to 80 of \`A-Z a-z 0-9 _ -\` (FIFO: ending in \`.fifo\`); an ARN is \`arn:aws:sqs:<region>:<account>:<name>\`.`);
    }
  }
  const eventBusName = text(input, 'eventBusName');
  if (eventBusName !== undefined && !(eventBusName.startsWith('arn:') ? BUS_ARN : BUS_NAME).test(eventBusName)) {
    fail('eventBusName', `must be an EventBridge bus name or ARN (\`arn:aws:events:<region>:<account>:event-bus/<name>\`), got ${shown(eventBusName)}. Set it with ${howToSet('eventBusName')}.`);
  }
  const bucketRule = 'an S3 bucket name (3 to 63 of `a-z 0-9 . -`, starting and ending with a letter or digit), not an ARN or a URL';

  const drainTimeoutMs = integer(input, 'drainTimeoutMs', { min: 1000, max: 110_000, fallback: 10_000 });
  const minStop = Math.ceil(drainTimeoutMs / 1000) + STOP_MARGIN_SECONDS;
  const stopTimeoutSeconds = integer(input, 'stopTimeoutSeconds', { min: 2, max: 120, fallback: Math.max(60, minStop), why: 'Fargate waits at most 120 s between SIGTERM and SIGKILL.' });
  if (stopTimeoutSeconds < minStop) {
    fail('stopTimeoutSeconds', `is ${stopTimeoutSeconds} s, too short for \`drainTimeoutMs\` ${drainTimeoutMs}: on SIGTERM the worker drains for up to that long, then writes checkpoints and releases its leases (allow ${STOP_MARGIN_SECONDS} s). Set it to ${minStop} or more, or lower \`drainTimeoutMs\`.`);
  }

  const minTasks = integer(input, 'minTasks', { min: 1, max: 100, fallback: 1 });
  const maxTasks = integer(input, 'maxTasks', { min: 1, max: 100, fallback: Math.max(4, minTasks), why: 'Each shard is read by one task, so tasks beyond the shard count sit idle.' });
  if (maxTasks < minTasks) fail('maxTasks', `is ${maxTasks}, below \`minTasks\` ${minTasks}. Raise \`maxTasks\` or lower \`minTasks\`.`);
  const desiredTasks = integer(input, 'desiredTasks', { min: 1, max: 100, fallback: minTasks });
  if (desiredTasks < minTasks || desiredTasks > maxTasks) {
    fail('desiredTasks', `is ${desiredTasks}, outside \`minTasks\`..\`maxTasks\` (${minTasks}..${maxTasks}). Set it within them, or leave it out for \`minTasks\`.`);
  }

  const account = matching(input, 'account', ACCOUNT, 'a 12-digit AWS account id');
  const region = matching(input, 'region', REGION, 'an AWS region such as `eu-west-1`');
  const vpcId = matching(input, 'vpcId', VPC_ID, 'a VPC id such as `vpc-0abc1234def567890`');
  if (vpcId && (!account || !region)) {
    fail('vpcId', `needs the stacks' account and region, to look the VPC up: run the CDK CLI with credentials (it sets CDK_DEFAULT_ACCOUNT and CDK_DEFAULT_REGION), or set \`account\` and \`region\` (${howToSet('account')}, ${howToSet('region')}).`);
  }

  const logRetentionDays = integer(input, 'logRetentionDays', { min: 1, max: 3653, fallback: 30 });
  if (!LOG_RETENTION_DAYS.some((d) => d === logRetentionDays)) {
    fail('logRetentionDays', `must be one of CloudWatch Logs' retention values (${LOG_RETENTION_DAYS.join(', ')}), got \`${logRetentionDays}\`. Set it with ${howToSet('logRetentionDays')}.`);
  }

  return {
    stackPrefix: matching(input, 'stackPrefix', STACK_PREFIX, 'a stack name prefix: a letter, then letters, digits or `-`') ?? 'DynamoCdc',
    account,
    region,
    ...table,
    nodeVersion: oneOf(input, 'nodeVersion', ['20', '22', '24'], '22'),
    sourceMaps: flag(input, 'sourceMaps', false),
    architecture: oneOf(input, 'architecture', ['x86_64', 'arm64'], 'x86_64'),
    logLevel: oneOf(input, 'logLevel', ['fatal', 'error', 'warn', 'info', 'debug', 'trace'], 'info'),
    logRetentionDays,
    alarmTopicArn: matching(input, 'alarmTopicArn', TOPIC_ARN, 'an SNS topic ARN (`arn:aws:sns:<region>:<account>:<name>`)'),
    dlqDepthAlarm: integer(input, 'dlqDepthAlarm', { min: 1, max: 1_000_000, fallback: 1, why: 'Every dead letter is a record that needs attention, so 1 is a good threshold.' }),

    eventBusName,
    queues,
    exportBucket: matching(input, 'exportBucket', BUCKET, bucketRule),
    exportPrefix: prefix(input, 'exportPrefix', 'cdc/'),
    claimCheckBucket: matching(input, 'claimCheckBucket', BUCKET, bucketRule),
    claimCheckPrefix: prefix(input, 'claimCheckPrefix', 'claim-check/'),
    ...resolveOpenSearch(input),

    memorySize: integer(input, 'memorySize', { min: 128, max: 10_240, fallback: 512 }),
    timeoutSeconds: integer(input, 'timeoutSeconds', { min: 3, max: 900, fallback: 60, why: 'The handler stops starting work near the deadline and reports what is left, so a minute is plenty for most batches.' }),
    batchSize: integer(input, 'batchSize', { min: 1, max: 10_000, fallback: 100 }),
    maxBatchingWindowSeconds: integer(input, 'maxBatchingWindowSeconds', { min: 0, max: 300, fallback: 0 }),
    parallelizationFactor: integer(input, 'parallelizationFactor', { min: 1, max: 10, fallback: 1, why: 'Lambda reads one shard with at most 10 concurrent batches.' }),
    maximumRetryAttempts: integer(input, 'maximumRetryAttempts', { min: 0, max: 10_000, fallback: 10, why: 'It must be bounded, so that a batch that keeps failing ends at the on-failure destination instead of holding its shard.' }),
    maximumRecordAgeSeconds: integer(input, 'maximumRecordAgeSeconds', { min: 60, max: 86_400, fallback: 86_400, why: 'A stream keeps records for 24 h, so a longer age never applies.' }),
    iteratorAgeAlarmSeconds: integer(input, 'iteratorAgeAlarmSeconds', { min: 60, max: 86_400, fallback: 600 }),

    vpcId,
    ...resolveFargateSize(input),
    minTasks,
    maxTasks,
    desiredTasks,
    scaleOnCpuPercent: integer(input, 'scaleOnCpuPercent', { min: 10, max: 95, fallback: 60 }),
    leaseDurationMs: integer(input, 'leaseDurationMs', { min: 3000, max: 600_000, fallback: 10_000, why: 'Leases are renewed at a third of it; a peer takes over a silent worker\'s shards after it.' }),
    drainTimeoutMs,
    stopTimeoutSeconds,
  };
};

/**
 * Reads every parameter: CDK context first (`-c name=value`, cdk.json), then
 * `DYNAMO_CDC_<NAME>` from `env`. `account` and `region` fall back to CDK_DEFAULT_ACCOUNT and
 * CDK_DEFAULT_REGION, which the CDK CLI sets when it has credentials.
 */
export const readDeployParams = (context: (name: string) => unknown, env: NodeJS.ProcessEnv = process.env): DeployParams => {
  const input: Partial<Record<DeployParamName, unknown>> = {};
  for (const name of DEPLOY_PARAM_NAMES) input[name] = context(name) ?? env[envNameOf(name)];
  input.account ??= env['CDK_DEFAULT_ACCOUNT'];
  input.region ??= env['CDK_DEFAULT_REGION'];
  return resolveDeployParams(input);
};
