import { describe, expect, it } from 'vitest';
import { DEPLOY_PARAM_NAMES, envNameOf, readDeployParams, resolveDeployParams } from '../../deploy/params.js';
import type { DeployParamsInput } from '../../deploy/params.js';
import { ConfigError } from '../../src/errors.js';
import { STREAM_ARN } from './template-helpers.js';

const rejection = (input: DeployParamsInput): ConfigError => {
  try {
    resolveDeployParams(input);
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error(`Expected ${JSON.stringify(input)} to be rejected`);
};

describe('resolveDeployParams', () => {
  it('fills in the safe defaults', () => {
    // Act
    const params = resolveDeployParams({ tableName: 'TaskApp' });

    // Assess
    expect(params).toMatchObject({
      stackPrefix: 'DynamoCdc',
      tableName: 'TaskApp',
      tableStreamArn: undefined,
      nodeVersion: '22',
      sourceMaps: false,
      architecture: 'x86_64',
      batchSize: 100,
      parallelizationFactor: 1,
      maximumRetryAttempts: 10,
      maximumRecordAgeSeconds: 86_400,
      iteratorAgeAlarmSeconds: 600,
      dlqDepthAlarm: 1,
      exportPrefix: 'cdc/',
      claimCheckPrefix: 'claim-check/',
      queues: [],
      minTasks: 1,
      maxTasks: 4,
      desiredTasks: 1,
      leaseDurationMs: 10_000,
      drainTimeoutMs: 10_000,
      stopTimeoutSeconds: 60,
      cpu: 512,
      memoryMiB: 1024,
    });
  });

  it('turns source maps on from context or the environment', () => {
    expect(resolveDeployParams({ tableName: 'TaskApp', sourceMaps: 'true' }).sourceMaps).toBe(true);
    expect(resolveDeployParams({ tableName: 'TaskApp', sourceMaps: true }).sourceMaps).toBe(true);
    expect(resolveDeployParams({ tableName: 'TaskApp', sourceMaps: 'false' }).sourceMaps).toBe(false);
  });

  it('takes the table name from the stream ARN', () => {
    expect(resolveDeployParams({ tableStreamArn: STREAM_ARN })).toMatchObject({ tableName: 'TaskApp', tableStreamArn: STREAM_ARN });
  });

  it('parses strings from CDK context and lists from commas', () => {
    // Act
    const params = resolveDeployParams({ tableName: 'TaskApp', parallelizationFactor: ' 10 ', queues: 'a, b.fifo,,arn:aws:sqs:eu-west-1:123456789012:c', exportPrefix: '' });

    // Assess
    expect(params.parallelizationFactor).toBe(10);
    expect(params.queues).toEqual(['a', 'b.fifo', 'arn:aws:sqs:eu-west-1:123456789012:c']);
    expect(params.exportPrefix).toBe('');
  });

  it('normalises an OpenSearch endpoint given as a host name', () => {
    expect(resolveDeployParams({ tableName: 'TaskApp', openSearchEndpoint: 'search-tasks-abc123.eu-west-1.es.amazonaws.com' }).openSearchEndpoint).toBe(
      'https://search-tasks-abc123.eu-west-1.es.amazonaws.com',
    );
  });

  it.each<[string, DeployParamsInput, string, RegExp]>([
    ['no table at all', {}, 'tableName', /is required: name the table .* `-c tableName=/],
    ['a table name that is not the stream\'s', { tableName: 'Orders', tableStreamArn: STREAM_ARN }, 'tableName', /stream of table `TaskApp`/],
    ['a table ARN instead of a stream ARN', { tableStreamArn: 'arn:aws:dynamodb:eu-west-1:123456789012:table/TaskApp' }, 'tableStreamArn', /describe-table --table-name <table> --query Table.LatestStreamArn/],
    ['a parallelization factor above 10', { tableName: 'TaskApp', parallelizationFactor: '11' }, 'parallelizationFactor', /integer from 1 to 10, got `11` \(string\)\. Lambda reads one shard with at most 10 concurrent batches\. Set it with `-c parallelizationFactor=…` or DYNAMO_CDC_PARALLELIZATION_FACTOR/],
    ['a fractional batch size', { tableName: 'TaskApp', batchSize: 1.5 }, 'batchSize', /integer from 1 to 10000, got `1.5` \(number\)/],
    ['unbounded retries', { tableName: 'TaskApp', maximumRetryAttempts: '-1' }, 'maximumRetryAttempts', /must be bounded/],
    ['a record age past the stream\'s retention', { tableName: 'TaskApp', maximumRecordAgeSeconds: '604800' }, 'maximumRecordAgeSeconds', /keeps records for 24 h/],
    ['a stop timeout shorter than the drain', { tableName: 'TaskApp', drainTimeoutMs: '30000', stopTimeoutSeconds: '30' }, 'stopTimeoutSeconds', /Set it to 35 or more, or lower `drainTimeoutMs`/],
    ['a stop timeout past Fargate\'s limit', { tableName: 'TaskApp', stopTimeoutSeconds: '300' }, 'stopTimeoutSeconds', /at most 120 s/],
    ['fewer maximum than minimum tasks', { tableName: 'TaskApp', minTasks: '3', maxTasks: '2' }, 'maxTasks', /below `minTasks` 3/],
    ['a desired count outside the bounds', { tableName: 'TaskApp', desiredTasks: '9' }, 'desiredTasks', /outside `minTasks`..`maxTasks` \(1..4\)/],
    ['memory Fargate does not offer for the CPU', { tableName: 'TaskApp', cpu: '1024', memoryMiB: '1024' }, 'memoryMiB', /2048 to 8192 in steps of 1024/],
    ['a CPU value Fargate does not offer', { tableName: 'TaskApp', cpu: '1000' }, 'cpu', /256, 512, 1024/],
    ['a VPC without account and region', { tableName: 'TaskApp', vpcId: 'vpc-0abc1234def567890' }, 'vpcId', /CDK_DEFAULT_ACCOUNT/],
    ['a bucket ARN instead of a name', { tableName: 'TaskApp', exportBucket: 'arn:aws:s3:::lake' }, 'exportBucket', /not an ARN or a URL/],
    ['a prefix without its slash', { tableName: 'TaskApp', exportPrefix: 'cdc' }, 'exportPrefix', /ending in `\/`/],
    ['a wildcard prefix', { tableName: 'TaskApp', claimCheckPrefix: '*/' }, 'claimCheckPrefix', /without .* wildcards/],
    ['a queue URL instead of a name', { tableName: 'TaskApp', queues: 'https://sqs.eu-west-1.amazonaws.com/123456789012/q' }, 'queues', /names or ARNs/],
    ['a custom OpenSearch endpoint without the domain ARN', { tableName: 'TaskApp', openSearchEndpoint: 'https://search.example.org' }, 'openSearchDomainArn', /does not name its domain/],
    ['an OpenSearch domain ARN without its endpoint', { tableName: 'TaskApp', openSearchDomainArn: 'arn:aws:es:eu-west-1:123456789012:domain/tasks' }, 'openSearchEndpoint', /is required with `openSearchDomainArn`/],
    ['a log retention CloudWatch does not offer', { tableName: 'TaskApp', logRetentionDays: '10' }, 'logRetentionDays', /7, 14, 30/],
    ['an unknown architecture', { tableName: 'TaskApp', architecture: 'arm' }, 'architecture', /`x86_64`, `arm64`/],
    ['source maps neither on nor off', { tableName: 'TaskApp', sourceMaps: 'yes' }, 'sourceMaps', /must be `true` or `false`, got `yes`/],
    ['an unsupported Node.js version', { tableName: 'TaskApp', nodeVersion: '18' }, 'nodeVersion', /`20`, `22`, `24`/],
  ])('rejects %s, naming the parameter and the fix', (_what, input, parameter, message) => {
    // Act
    const error = rejection(input);

    // Assess
    expect(error.field).toBe(parameter);
    expect(error.message).toMatch(message);
  });
});

describe('readDeployParams', () => {
  it('reads CDK context first, then DYNAMO_CDC_* variables, and the CLI\'s default account and region', () => {
    // Arrange
    const context: Record<string, unknown> = { tableName: 'TaskApp', batchSize: '250' };
    const env = { DYNAMO_CDC_BATCH_SIZE: '50', DYNAMO_CDC_MAX_TASKS: '8', CDK_DEFAULT_ACCOUNT: '123456789012', CDK_DEFAULT_REGION: 'eu-west-1' };

    // Act
    const params = readDeployParams((name) => context[name], env);

    // Assess
    expect(params).toMatchObject({ tableName: 'TaskApp', batchSize: 250, maxTasks: 8, account: '123456789012', region: 'eu-west-1' });
  });

  it('names each parameter\'s environment variable after it', () => {
    expect(envNameOf('tableStreamArn')).toBe('DYNAMO_CDC_TABLE_STREAM_ARN');
    expect(envNameOf('maximumRecordAgeSeconds')).toBe('DYNAMO_CDC_MAXIMUM_RECORD_AGE_SECONDS');
    expect(new Set(DEPLOY_PARAM_NAMES).size).toBe(DEPLOY_PARAM_NAMES.length);
  });
});
