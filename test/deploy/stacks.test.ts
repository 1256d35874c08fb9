import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Validations } from 'aws-cdk-lib';
import { Annotations, Match } from 'aws-cdk-lib/assertions';
import type { Template } from 'aws-cdk-lib/assertions';
import type { CfnFunction } from 'aws-cdk-lib/aws-lambda';
import type { CfnQueue } from 'aws-cdk-lib/aws-sqs';
import { AwsSolutionsChecks } from 'cdk-nag';
import type { IConstruct } from 'constructs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LEASE_TABLE_ACTIONS, WORKER_HEALTH } from '../../deploy/worker-stack.js';
import { leaseTableDefinition } from '../../src/worker/dynamodb-lease-store.js';
import { progressTableDefinition } from '../../src/lambda/dynamodb-progress-store.js';
import { lambdaFilterCriteria } from '../../src/lambda/filter-criteria.js';
import { defineApp, entity, expired, route } from '../../src/index.js';
import { MemorySink } from '../../src/testing/index.js';
import exampleApp from '../../dynamo-cdc.config.js';
import { STREAM_ARN, actionsOf, grantsOf, policyStatements, removeAssemblies, render, rendered, resourcesOf, synthesize } from './template-helpers.js';
import type { Synthesized } from './template-helpers.js';

/**
 * Statements allowed a `*` resource, each because the action takes no other. Nothing else may have one.
 */
const WILDCARD_RESOURCE_EXCEPTIONS: Readonly<Record<string, string>> = {
  'ecr:GetAuthorizationToken':
    'The ECS execution role pulls the worker image with it; an authorization token is for the whole registry, so IAM accepts no resource but `*`.',
};

/** Every sink, custom sizes, and a fixed account and region so ARNs read plainly. */
const FULL = {
  account: '123456789012',
  region: 'eu-west-1',
  tableStreamArn: STREAM_ARN,
  eventBusName: 'app',
  queues: 'task-changes.fifo, arn:aws:sqs:eu-west-1:123456789012:audit',
  exportBucket: 'my-data-lake',
  exportPrefix: 'cdc/',
  claimCheckBucket: 'my-claim-checks',
  claimCheckPrefix: 'cdc/claim-check/',
  openSearchEndpoint: 'https://search-tasks-abc123def456ghi789.eu-west-1.es.amazonaws.com',
  parallelizationFactor: '4',
  batchSize: '500',
  maxBatchingWindowSeconds: '2',
  maximumRetryAttempts: '8',
  maximumRecordAgeSeconds: '43200',
  iteratorAgeAlarmSeconds: '300',
  dlqDepthAlarm: '5',
  alarmTopicArn: 'arn:aws:sns:eu-west-1:123456789012:cdc-alarms',
  minTasks: '2',
  maxTasks: '6',
  stopTimeoutSeconds: '90',
  sourceMaps: 'true',
} as const;

let full: Synthesized;
let byName: Synthesized;

/**
 * Each config is synthesized once. Limit of a synthesis (in process, or a `tsx deploy/synth.ts` process that loads aws-cdk-lib and
 * bundles the handlers with esbuild): about 7 s on an idle machine, over 30 s with both cores busy,
 * when the default test timeout failed it. Generous, so only a hung synthesis fails on time.
 */
const SYNTH_TIMEOUT_MS = 240_000;
/** A synth process is killed before the test's own limit, so the failure shows its stderr. */
const SYNTH_PROCESS_TIMEOUT_MS = SYNTH_TIMEOUT_MS - 20_000;

beforeAll(() => {
  full = synthesize(FULL);
  // What `npm run synth` does with no parameters: the table by name, no account, no region, no sinks.
  byName = synthesize({ tableName: 'TaskApp' });
}, SYNTH_TIMEOUT_MS);

afterAll(removeAssemblies);

/** The stream handler's function resource (the lookup's custom resource has a function too). */
const handlerOf = (synthesized: Synthesized): { Properties: { Code: { S3Key: string }; Environment: { Variables: Record<string, unknown> } } } => {
  const stack = synthesized.stacks.lambda;
  const id = stack.getLogicalId(stack.function.node.defaultChild as CfnFunction);
  return synthesized.lambda.findResources('AWS::Lambda::Function')[id] as ReturnType<typeof handlerOf>;
};

const handlerVariables = (synthesized: Synthesized): Record<string, unknown> => handlerOf(synthesized).Properties.Environment.Variables;

/** The bundled handler in the cloud assembly. */
const bundleOf = (synthesized: Synthesized): string =>
  join(synthesized.assembly.directory, `asset.${handlerOf(synthesized).Properties.Code.S3Key.replace(/\.zip$/, '')}`, 'index.mjs');

/** esbuild's unminified output has lines of tens of characters; minified output is a few very long lines (newlines only in template literals). */
const isMinified = (code: string): boolean => code.length / code.split('\n').length > 1000;

const queueIdOf = (synthesized: Synthesized, queue: 'deadLetterQueue' | 'onFailureQueue'): string =>
  synthesized.stacks.lambda.getLogicalId(synthesized.stacks.lambda[queue].queue.node.defaultChild as CfnQueue);

describe('DynamoCdcLambdaStack', () => {
  it('maps the stream with partial batch responses, bounded retries, bisection and an on-failure queue', () => {
    // Assess
    full.lambda.resourceCountIs('AWS::Lambda::EventSourceMapping', 1);
    full.lambda.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      EventSourceArn: STREAM_ARN,
      FunctionResponseTypes: ['ReportBatchItemFailures'],
      StartingPosition: 'TRIM_HORIZON',
      BisectBatchOnFunctionError: true,
      MaximumRetryAttempts: 8,
      MaximumRecordAgeInSeconds: 43_200,
      ParallelizationFactor: 4,
      BatchSize: 500,
      MaximumBatchingWindowInSeconds: 2,
      DestinationConfig: { OnFailure: { Destination: { 'Fn::GetAtt': [queueIdOf(full, 'onFailureQueue'), 'Arn'] } } },
    });
  });

  it("sets the mapping's FilterCriteria from the routes of dynamo-cdc.config.ts (none: its '*' routes take every record)", () => {
    // The repo's example app routes '*' to two sinks, so no record may be filtered out.
    expect(lambdaFilterCriteria(exampleApp)).toBeUndefined();
    byName.lambda.hasResourceProperties('AWS::Lambda::EventSourceMapping', { FilterCriteria: Match.absent() });
  });

  it("sets the mapping's FilterCriteria to the compiled routes of the app it is given", () => {
    // Prepare
    const Task = entity('Task', { key: { PK: 'USER#', SK: 'TASK#' } });
    const routes = defineApp({ table: 'TaskApp', routes: [route(Task).on('modify').to(new MemorySink({ name: 'status' })), route(Task).when(expired).to(new MemorySink({ name: 'archive' }))] });
    // Act
    const filtered = synthesize({ tableName: 'TaskApp' }, { bundling: false, routes });
    // Assess
    const criteria = lambdaFilterCriteria(routes);
    expect(criteria?.Filters).toHaveLength(2);
    filtered.lambda.hasResourceProperties('AWS::Lambda::EventSourceMapping', { FilterCriteria: { Filters: criteria?.Filters.map((f) => ({ Pattern: f.Pattern })) } });
  }, SYNTH_TIMEOUT_MS);

  it('defaults to 10 retries, a day of record age and one batch per shard', () => {
    byName.lambda.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      MaximumRetryAttempts: 10,
      MaximumRecordAgeInSeconds: 86_400,
      ParallelizationFactor: 1,
      BatchSize: 100,
      FunctionResponseTypes: ['ReportBatchItemFailures'],
      BisectBatchOnFunctionError: true,
      StartingPosition: 'TRIM_HORIZON',
    });
  });

  it('bundles the handler locally, minified, as an ES module that loads and exports the handler', async () => {
    // Arrange
    const bundle = bundleOf(full);

    // Act
    const loaded = (await import(pathToFileURL(bundle).href)) as { handler?: unknown };

    // Assess
    expect(typeof loaded.handler).toBe('function');
    expect(isMinified(readFileSync(bundle, 'utf8'))).toBe(true);
  });

  it('runs on Node.js 22 by default, minified, without source maps', () => {
    // Arrange
    const bundle = bundleOf(byName);

    // Assess
    byName.lambda.hasResourceProperties('AWS::Lambda::Function', { Handler: 'index.handler', Runtime: 'nodejs22.x' });
    expect(isMinified(readFileSync(bundle, 'utf8'))).toBe(true);
    expect(existsSync(`${bundle}.map`)).toBe(false);
    expect(handlerVariables(byName)['NODE_OPTIONS']).toBeUndefined();
  });

  it('ships source maps and turns them on only when asked (sourceMaps)', () => {
    expect(existsSync(`${bundleOf(full)}.map`)).toBe(true);
    expect(handlerVariables(full)['NODE_OPTIONS']).toBe('--enable-source-maps');
  });

  it('keeps re-delivery progress in the table progressTableDefinition describes, with TTL on expiresAt', () => {
    // Arrange
    const definition = progressTableDefinition('progress');

    // Assess
    full.lambda.hasResourceProperties('AWS::DynamoDB::Table', {
      KeySchema: definition.KeySchema,
      AttributeDefinitions: definition.AttributeDefinitions,
      BillingMode: 'PAY_PER_REQUEST',
      TimeToLiveSpecification: { AttributeName: 'expiresAt', Enabled: true },
      PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
    });
  });

  it('gives the handler the progress table, the dead-letter queue and the sinks\' settings', () => {
    // Arrange
    const stack = full.stacks.lambda;

    // Assess
    full.lambda.hasResourceProperties('AWS::Lambda::Function', {
      Handler: 'index.handler',
      Environment: {
        Variables: Match.objectLike({
          TABLE_NAME: 'TaskApp',
          STREAM_ARN,
          PROGRESS_TABLE: stack.resolve(stack.progressTable.tableName),
          DLQ_URL: stack.resolve(stack.deadLetterQueue.queue.queueUrl),
          EVENT_BUS_NAME: 'app',
          EXPORT_BUCKET: 'my-data-lake',
          EXPORT_PREFIX: 'cdc/',
          CLAIM_CHECK_BUCKET: 'my-claim-checks',
          CLAIM_CHECK_PREFIX: 'cdc/claim-check/',
          OPENSEARCH_ENDPOINT: 'https://search-tasks-abc123def456ghi789.eu-west-1.es.amazonaws.com',
          LOG_LEVEL: 'info',
        }),
      },
    });
    expect(JSON.parse(render(handlerVariables(full)['QUEUE_URLS']).replace(/\$\{AWS::URLSuffix\}/g, 'amazonaws.com'))).toEqual({
      'task-changes.fifo': 'https://sqs.eu-west-1.amazonaws.com/123456789012/task-changes.fifo',
      audit: 'https://sqs.eu-west-1.amazonaws.com/123456789012/audit',
    });
  });

  it('alarms on the iterator age and on the depth of both queues, and notifies the topic', () => {
    // Arrange
    const topic = FULL.alarmTopicArn;

    // Assess
    full.lambda.resourceCountIs('AWS::CloudWatch::Alarm', 3);
    full.lambda.hasResourceProperties('AWS::CloudWatch::Alarm', {
      Namespace: 'AWS/Lambda',
      MetricName: 'IteratorAge',
      Statistic: 'Maximum',
      Threshold: 300_000,
      ComparisonOperator: 'GreaterThanThreshold',
      Dimensions: [{ Name: 'FunctionName', Value: full.stacks.lambda.resolve(full.stacks.lambda.function.functionName) }],
      AlarmActions: [topic],
      OKActions: [topic],
    });
    full.lambda.hasResourceProperties('AWS::CloudWatch::Alarm', {
      Namespace: 'AWS/SQS',
      MetricName: 'ApproximateNumberOfMessagesVisible',
      Threshold: 5,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      Dimensions: [{ Name: 'QueueName', Value: { 'Fn::GetAtt': [queueIdOf(full, 'deadLetterQueue'), 'QueueName'] } }],
      AlarmActions: [topic],
    });
    full.lambda.hasResourceProperties('AWS::CloudWatch::Alarm', {
      Namespace: 'AWS/SQS',
      MetricName: 'ApproximateNumberOfMessagesVisible',
      Threshold: 1,
      Dimensions: [{ Name: 'QueueName', Value: { 'Fn::GetAtt': [queueIdOf(full, 'onFailureQueue'), 'QueueName'] } }],
    });
  });

  it('keeps dead letters for 14 days in encrypted, TLS-only queues', () => {
    full.lambda.resourceCountIs('AWS::SQS::Queue', 2);
    full.lambda.allResourcesProperties('AWS::SQS::Queue', { MessageRetentionPeriod: 1_209_600, SqsManagedSseEnabled: true });
    full.lambda.resourceCountIs('AWS::SQS::QueuePolicy', 2);
  });
});

describe('DynamoCdcWorkerStack', () => {
  it('creates the lease table leaseTableDefinition describes: on demand, point-in-time recovery on, retained', () => {
    // Arrange
    const definition = leaseTableDefinition('leases');

    // Assess
    full.worker.hasResource('AWS::DynamoDB::Table', {
      DeletionPolicy: 'Retain',
      Properties: {
        KeySchema: definition.KeySchema,
        AttributeDefinitions: definition.AttributeDefinitions,
        BillingMode: 'PAY_PER_REQUEST',
        PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
      },
    });
  });

  it('gives the container a stop timeout for the drain, a health check on /healthz and the worker\'s settings', () => {
    // Arrange
    const stack = full.stacks.worker;

    // Assess
    full.worker.hasResourceProperties('AWS::ECS::TaskDefinition', {
      RequiresCompatibilities: ['FARGATE'],
      ContainerDefinitions: [
        Match.objectLike({
          Essential: true,
          StopTimeout: 90,
          HealthCheck: {
            Command: ['CMD', 'node', '-e', Match.stringLikeRegexp(`127\\.0\\.0\\.1:${WORKER_HEALTH.port}${WORKER_HEALTH.path}`)],
            Interval: 30,
            Timeout: 5,
            Retries: 3,
            StartPeriod: 60,
          },
          PortMappings: [Match.objectLike({ ContainerPort: WORKER_HEALTH.port })],
          Environment: Match.arrayWith([
            { Name: 'STREAM_ARN', Value: STREAM_ARN },
            { Name: 'LEASE_TABLE', Value: stack.resolve(stack.leaseTable.tableName) },
            { Name: 'LEASE_DURATION_MS', Value: '10000' },
            { Name: 'DRAIN_TIMEOUT_MS', Value: '10000' },
            { Name: 'METRICS_PORT', Value: String(WORKER_HEALTH.port) },
            { Name: 'DLQ_URL', Value: stack.resolve(stack.deadLetterQueue.queue.queueUrl) },
            { Name: 'EVENT_BUS_NAME', Value: 'app' },
          ]),
        }),
      ],
    });
  });

  it('runs the service between minTasks and maxTasks, scaling on CPU, replacing tasks before stopping old ones', () => {
    full.worker.hasResourceProperties('AWS::ECS::Service', {
      LaunchType: 'FARGATE',
      DesiredCount: 2,
      DeploymentConfiguration: Match.objectLike({ MinimumHealthyPercent: 100, MaximumPercent: 200, DeploymentCircuitBreaker: { Enable: true, Rollback: true } }),
      NetworkConfiguration: { AwsvpcConfiguration: Match.objectLike({ AssignPublicIp: 'DISABLED' }) },
    });
    full.worker.hasResourceProperties('AWS::ApplicationAutoScaling::ScalableTarget', { MinCapacity: 2, MaxCapacity: 6, ScalableDimension: 'ecs:service:DesiredCount' });
    full.worker.hasResourceProperties('AWS::ApplicationAutoScaling::ScalingPolicy', {
      PolicyType: 'TargetTrackingScaling',
      TargetTrackingScalingPolicyConfiguration: Match.objectLike({ TargetValue: 60, PredefinedMetricSpecification: { PredefinedMetricType: 'ECSServiceAverageCPUUtilization' } }),
    });
  });

  it('defaults to one task, at most four, and a 60 s stop timeout', () => {
    byName.worker.hasResourceProperties('AWS::ApplicationAutoScaling::ScalableTarget', { MinCapacity: 1, MaxCapacity: 4 });
    byName.worker.hasResourceProperties('AWS::ECS::TaskDefinition', { Cpu: '512', Memory: '1024', ContainerDefinitions: [Match.objectLike({ StopTimeout: 60 })] });
  });

  it('runs in an existing VPC looked up by id, leaving the lookup to the CDK CLI', () => {
    // Act
    const inVpc = synthesize({ tableName: 'TaskApp', vpcId: 'vpc-0abc1234def567890', account: '123456789012', region: 'eu-west-1' }, { bundling: false });

    // Assess
    inVpc.worker.resourceCountIs('AWS::EC2::VPC', 0);
    inVpc.worker.resourceCountIs('AWS::EC2::FlowLog', 0);
    expect(inVpc.assembly.manifest.missing?.map((m) => m.key)).toEqual([expect.stringMatching(/^vpc-provider:.*filter\.vpc-id=vpc-0abc1234def567890/)]);
  }, SYNTH_TIMEOUT_MS);

  it('logs the new VPC\'s rejected flows to CloudWatch Logs, kept as long as the other logs', () => {
    byName.worker.hasResourceProperties('AWS::EC2::FlowLog', {
      ResourceType: 'VPC',
      TrafficType: 'REJECT',
      LogDestinationType: 'cloud-watch-logs',
      LogGroupName: { Ref: Match.stringLikeRegexp('^VpcFlowLogs') },
    });
    byName.worker.hasResourceProperties('AWS::Logs::LogGroup', { RetentionInDays: 30 });
  });

  it('turns Container Insights on for the cluster', () => {
    byName.worker.hasResourceProperties('AWS::ECS::Cluster', { ClusterSettings: [{ Name: 'containerInsights', Value: 'enabled' }] });
  });

  it('alarms on the dead-letter queue\'s depth', () => {
    full.worker.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: 'ApproximateNumberOfMessagesVisible',
      Threshold: 5,
      AlarmActions: [FULL.alarmTopicArn],
    });
  });

  it('builds the image from deploy/Dockerfile with only what the Dockerfile copies in its context', () => {
    // Arrange
    const manifest = JSON.parse(readFileSync(join(full.assembly.directory, `${full.stacks.worker.artifactId}.assets.json`), 'utf8')) as {
      dockerImages: Record<string, { source: { directory: string; dockerFile: string; platform: string; dockerBuildArgs: Record<string, string> } }>;
    };
    const images = Object.values(manifest.dockerImages);
    expect(images).toHaveLength(1);
    const source = images[0]?.source;
    const context = join(full.assembly.directory, source?.directory ?? '');
    const dockerfile = readFileSync(join(context, 'deploy/Dockerfile'), 'utf8');
    const copied = [...dockerfile.matchAll(/^COPY (?!--from)(.+) \S+$/gm)].flatMap((m) => (m[1] ?? '').split(/\s+/));

    // Assess
    expect(source).toMatchObject({ dockerFile: 'deploy/Dockerfile', platform: 'linux/amd64', dockerBuildArgs: { NODE_IMAGE: 'node:22-bookworm-slim' } });
    expect(copied).toEqual(expect.arrayContaining(['package.json', 'package-lock.json', 'src', 'handlers', 'deploy/worker-bundle.ts']));
    for (const path of copied) expect(existsSync(join(context, path)), `${path} is in the build context`).toBe(true);
    expect(readdirSync(context).sort()).toEqual(['deploy', 'dynamo-cdc.config.ts', 'handlers', 'package-lock.json', 'package.json', 'src', 'tsconfig.json']);
    expect(readdirSync(join(context, 'deploy')).sort()).toEqual(['Dockerfile', 'worker-bundle.ts']);
    expect(dockerfile).toMatch(/^HEALTHCHECK [^\n]*\\\n\s+CMD [^\n]*:' \+ \(process\.env\.METRICS_PORT \|\| '9464'\) \+ '\/healthz'/m);
    expect(dockerfile).toMatch(/^CMD \["node", .*"worker\.mjs"\]$/m);
  });
});

describe('IAM', () => {
  const templates = (): [string, Template][] => [
    ['Lambda stack, every sink', full.lambda],
    ['worker stack, every sink', full.worker],
    ['Lambda stack, table by name', byName.lambda],
    ['worker stack, table by name', byName.worker],
  ];

  it('has no wildcard action anywhere, and a `*` resource only for the documented exceptions', () => {
    for (const [name, template] of templates()) {
      const statements = policyStatements(template);
      expect(statements.length, name).toBeGreaterThan(0);
      for (const { policy, statement } of statements) {
        const where = `${name}: ${policy} ${statement.Sid ?? JSON.stringify(statement.Action)}`;
        expect(statement.Effect, where).toBe('Allow');
        for (const action of actionsOf(statement)) expect(action, where).not.toContain('*');
        if (resourcesOf(statement).includes('*')) {
          expect(actionsOf(statement).filter((a) => !(a in WILDCARD_RESOURCE_EXCEPTIONS)), `${where} has Resource '*'`).toEqual([]);
        }
      }
    }
  });

  it('attaches no managed policies and no inline role policies', () => {
    for (const [name, template] of templates()) {
      template.resourceCountIs('AWS::IAM::ManagedPolicy', 0);
      for (const [id, role] of Object.entries(template.findResources('AWS::IAM::Role'))) {
        const properties = (role as { Properties: Record<string, unknown> }).Properties;
        expect(properties['ManagedPolicyArns'], `${name}: ${id}`).toBeUndefined();
        expect(properties['Policies'], `${name}: ${id}`).toBeUndefined();
      }
    }
  });

  it('allows the stream handler exactly its calls, on the named resources', () => {
    // Arrange
    const stack = full.stacks.lambda;

    // Act
    const grants = grantsOf(stack, full.lambda, stack.role);

    // Assess
    expect(grants).toEqual({
      ReadTheSourceStream: { actions: ['dynamodb:DescribeStream', 'dynamodb:GetShardIterator', 'dynamodb:GetRecords'], resources: [STREAM_ARN] },
      UseTheProgressTable: { actions: ['dynamodb:Query', 'dynamodb:PutItem'], resources: [rendered(stack, stack.progressTable.tableArn)] },
      SendDeadLetters: { actions: ['sqs:SendMessage'], resources: [rendered(stack, stack.deadLetterQueue.queue.queueArn)] },
      ReportGivenUpBatches: { actions: ['sqs:SendMessage'], resources: [rendered(stack, stack.onFailureQueue.queue.queueArn)] },
      WriteLogs: { actions: ['logs:CreateLogStream', 'logs:PutLogEvents'], resources: [expect.stringMatching(/^\$\{HandlerLogs\w+\.Arn\}$/)] },
      PutEventsOnTheBus: { actions: ['events:PutEvents'], resources: ['arn:${AWS::Partition}:events:eu-west-1:123456789012:event-bus/app'] },
      SendToTheQueues: {
        actions: ['sqs:SendMessage'],
        resources: ['arn:${AWS::Partition}:sqs:eu-west-1:123456789012:task-changes.fifo', 'arn:aws:sqs:eu-west-1:123456789012:audit'],
      },
      WriteTheExport: { actions: ['s3:PutObject', 's3:AbortMultipartUpload'], resources: ['arn:${AWS::Partition}:s3:::my-data-lake/cdc/*'] },
      WriteClaimChecks: { actions: ['s3:PutObject'], resources: ['arn:${AWS::Partition}:s3:::my-claim-checks/cdc/claim-check/*'] },
      BulkIndexInOpenSearch: { actions: ['es:ESHttpPost'], resources: ['arn:${AWS::Partition}:es:eu-west-1:123456789012:domain/tasks/_bulk'] },
    });
  });

  it('allows the worker task exactly its calls: the stream, the lease table\'s items, the queues, the sinks', () => {
    // Arrange
    const stack = full.stacks.worker;

    // Act
    const grants = grantsOf(stack, full.worker, stack.taskRole);

    // Assess
    expect(Object.keys(grants).sort()).toEqual(
      ['BulkIndexInOpenSearch', 'PutEventsOnTheBus', 'ReadTheSourceStream', 'SendDeadLetters', 'SendToTheQueues', 'UseTheLeaseTable', 'WriteClaimChecks', 'WriteTheExport'].sort(),
    );
    expect(grants['ReadTheSourceStream']).toEqual({ actions: ['dynamodb:DescribeStream', 'dynamodb:GetShardIterator', 'dynamodb:GetRecords'], resources: [STREAM_ARN] });
    expect(grants['UseTheLeaseTable']).toEqual({ actions: [...LEASE_TABLE_ACTIONS], resources: [rendered(stack, stack.leaseTable.tableArn)] });
    expect(grants['SendDeadLetters']).toEqual({ actions: ['sqs:SendMessage'], resources: [rendered(stack, stack.deadLetterQueue.queue.queueArn)] });
  });

  it('looks a stream up by table name with DescribeTable on that table only, and reads just the stream it found', () => {
    // Arrange
    const stack = byName.stacks.lambda;
    const describes = policyStatements(byName.lambda).filter(({ statement }) => actionsOf(statement).includes('dynamodb:DescribeTable'));

    // Act
    const grants = grantsOf(stack, byName.lambda, stack.role);

    // Assess
    expect(describes.map(({ statement }) => resourcesOf(statement).map(render))).toEqual([['arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/TaskApp']]);
    expect(grants['ReadTheSourceStream']?.resources).toEqual([expect.stringMatching(/^\$\{SourceLookup\w+\.Table\.LatestStreamArn\}$/)]);
    byName.lambda.hasResourceProperties('AWS::Lambda::EventSourceMapping', { EventSourceArn: { 'Fn::GetAtt': [Match.stringLikeRegexp('^SourceLookup'), 'Table.LatestStreamArn'] } });
    byName.lambda.hasResourceProperties('Custom::AWS', { InstallLatestAwsSdk: false });
  });
});

describe('synthesis', () => {
  // A child process that bundles and synthesizes both stacks: slow on a loaded machine, so it has room.
  it('synthesizes both stacks offline with deploy/synth.ts (npm run synth)', () => {
    // Arrange
    const root = fileURLToPath(new URL('../..', import.meta.url));
    const outdir = mkdtempSync(join(tmpdir(), 'dynamo-cdc-synth-'));

    try {
      // Act
      const run = spawnSync(join(root, 'node_modules/.bin/tsx'), ['deploy/synth.ts', '-c', 'nodeVersion=22'], {
        cwd: root,
        env: { ...process.env, CDK_OUTDIR: outdir },
        encoding: 'utf8',
        timeout: SYNTH_PROCESS_TIMEOUT_MS,
      });

      // Assess
      expect(run.status, run.stderr).toBe(0);
      expect(run.stdout).toMatch(/synthesizing for the example app's table, TaskApp/);
      expect(existsSync(join(outdir, 'DynamoCdcLambdaStack.template.json'))).toBe(true);
      expect(existsSync(join(outdir, 'DynamoCdcWorkerStack.template.json'))).toBe(true);
    } finally {
      rmSync(outdir, { recursive: true, force: true });
    }
  }, SYNTH_TIMEOUT_MS);

  it('stops deploy/synth.ts at a misspelt parameter, naming the known ones', () => {
    // Arrange
    const root = fileURLToPath(new URL('../..', import.meta.url));

    // Act
    const run = spawnSync(join(root, 'node_modules/.bin/tsx'), ['deploy/synth.ts', '-c', 'paralelizationFactor=2'], { cwd: root, encoding: 'utf8', timeout: SYNTH_PROCESS_TIMEOUT_MS });

    // Assess
    expect(run.status).toBe(1);
    expect(run.stderr).toMatch(/Unknown parameter `paralelizationFactor`\. Known parameters: .*parallelizationFactor/);
  }, SYNTH_TIMEOUT_MS);

  it('reports no errors on either stack', () => {
    for (const synthesized of [full, byName]) {
      Annotations.fromStack(synthesized.stacks.lambda).hasNoError('*', Match.anyValue());
      Annotations.fromStack(synthesized.stacks.worker).hasNoError('*', Match.anyValue());
    }
  });
});

/** Every `Validations.of(…).acknowledge` under `scope`: the construct's path, the rule and the reason. */
const acknowledgementsOf = (scope: IConstruct): { path: string; id: string; reason: string }[] =>
  scope.node.findAll().flatMap((construct) =>
    construct.node.metadata
      .filter((entry) => entry.type === Validations.ACKNOWLEDGED_RULES_METADATA_KEY)
      .flatMap((entry) => Object.entries(entry.data as Record<string, string>).map(([id, reason]) => ({ path: construct.node.path, id: id.replace(/^annotation::/i, ''), reason }))),
  );

/** AwsSolutions findings left after the acknowledgements, as `rule at path` lines (readable in a failure). */
const nagFindings = (scope: IConstruct): string[] =>
  new AwsSolutionsChecks(scope).validateScope(scope).violations.flatMap((v) =>
    v.violatingResources.map((r) => `${v.ruleName} (${v.severity ?? 'error'}) at ${r.constructPath ?? r.resourceLogicalId ?? '?'}`),
  );

describe('cdk-nag AwsSolutions', () => {
  it('finds nothing unacknowledged in either stack, with every sink or none', () => {
    for (const synthesized of [full, byName]) expect(nagFindings(synthesized.stacks.lambda.node.root)).toEqual([]);
  });

  it('acknowledges only these rules, each with its reason', () => {
    // Act
    const acknowledged = acknowledgementsOf(full.stacks.lambda.node.root).filter(({ id }) => id.startsWith('AwsSolutions-'));

    // Assess
    expect(acknowledged.map(({ path, id }) => `${id} at ${path}`).sort()).toEqual(
      [
        'AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::my-data-lake/cdc/*] at DynamoCdcLambdaStack/HandlerRole',
        'AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::my-claim-checks/cdc/claim-check/*] at DynamoCdcLambdaStack/HandlerRole',
        'AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::my-data-lake/cdc/*] at DynamoCdcWorkerStack/TaskRole',
        'AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::my-claim-checks/cdc/claim-check/*] at DynamoCdcWorkerStack/TaskRole',
        'AwsSolutions-L1 at DynamoCdcLambdaStack/Handler',
        'AwsSolutions-SQS3 at DynamoCdcLambdaStack/DeadLetterQueue/Queue',
        'AwsSolutions-SQS3 at DynamoCdcLambdaStack/OnFailureQueue/Queue',
        'AwsSolutions-SQS3 at DynamoCdcWorkerStack/DeadLetterQueue/Queue',
        'AwsSolutions-ECS2 at DynamoCdcWorkerStack/Task',
        'AwsSolutions-IAM5[Resource::*] at DynamoCdcWorkerStack/Task/ExecutionRole',
      ].sort(),
    );
    for (const { id, reason } of acknowledged) expect(reason.length, `${id} has a reason`).toBeGreaterThan(60);
  });

  it('acknowledges a `*` resource only where the execution role needs it, for ecr:GetAuthorizationToken', () => {
    // Act
    const wildcards = policyStatements(byName.worker).filter(({ statement }) => resourcesOf(statement).includes('*'));

    // Assess
    expect(wildcards.map(({ policy, statement }) => ({ policy, actions: actionsOf(statement) }))).toEqual([
      { policy: expect.stringMatching(/^TaskExecutionRoleDefaultPolicy/), actions: ['ecr:GetAuthorizationToken'] },
    ]);
  });

  it('does not acknowledge an outdated runtime: on Node.js 20 the finding stands', () => {
    // Act
    const old = synthesize({ tableName: 'TaskApp', nodeVersion: '20' }, { bundling: false });

    // Assess
    expect(nagFindings(old.stacks.lambda.node.root)).toEqual(['AwsSolutions-L1 (error) at DynamoCdcLambdaStack/Handler/Resource']);
  }, SYNTH_TIMEOUT_MS);
});
