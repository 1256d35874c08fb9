import { fileURLToPath } from 'node:url';
import { CfnOutput, Duration, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import type { StackProps } from 'aws-cdk-lib';
import { Alarm, ComparisonOperator, TreatMissingData } from 'aws-cdk-lib/aws-cloudwatch';
import { Table } from 'aws-cdk-lib/aws-dynamodb';
import { PolicyStatement, Role, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import { Architecture, EventSourceMapping, Runtime, StartingPosition } from 'aws-cdk-lib/aws-lambda';
import type { IEventSourceDlq } from 'aws-cdk-lib/aws-lambda';
import { LogLevel, NodejsFunction, OutputFormat } from 'aws-cdk-lib/aws-lambda-nodejs';
import { LogGroup } from 'aws-cdk-lib/aws-logs';
import type { RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { Construct } from 'constructs';
import type { App as DynamoCdcApp } from '../src/app.js';
import { progressTableDefinition } from '../src/lambda/dynamodb-progress-store.js';
import { lambdaFilterCriteria } from '../src/lambda/filter-criteria.js';
import type { LambdaFilterOptions } from '../src/lambda/filter-criteria.js';
import { DeadLetterQueue, notifyOnAlarms } from './dead-letter-queue.js';
import type { DeployParams } from './params.js';
import { sinkAccess } from './sink-access.js';
import { SourceStream } from './source-stream.js';
import { fromTableDefinition } from './table-definition.js';

/** Options of {@link DynamoCdcLambdaStack}. */
export interface DynamoCdcLambdaStackProps extends StackProps {
  readonly params: DeployParams;
  /**
   * The app the handler runs (the default export of dynamo-cdc.config.ts). Its routes become the
   * mapping's `FilterCriteria` (see `lambdaFilterCriteria`), so Lambda is not invoked for changes no
   * route takes.
   * @default none: no filter, every record invokes the function
   */
  readonly dynamoCdcApp?: DynamoCdcApp;
  /** Lambda's limits for that filter, when the account's quota differs from the default. @default 5 filters, 4096 characters a pattern */
  readonly filterOptions?: LambdaFilterOptions;
}

const RUNTIMES: Readonly<Record<DeployParams['nodeVersion'], Runtime>> = { '20': Runtime.NODEJS_20_X, '22': Runtime.NODEJS_22_X, '24': Runtime.NODEJS_24_X };

/**
 * The newest Node.js the tests run under. cdk-nag's AwsSolutions-L1 asks for the newest runtime
 * Lambda has; on this one it is acknowledged, on an older one (20) it stands.
 */
export const LATEST_TESTED_NODE_VERSION: DeployParams['nodeVersion'] = '22';

const repoRoot = fileURLToPath(new URL('..', import.meta.url));

/**
 * ESM bundles run CommonJS dependencies (pino's, the SDK's) that call `require`, which an ES module
 * does not have; this gives the bundle one.
 */
const REQUIRE_BANNER = "import { createRequire as __dynamoCdcCreateRequire } from 'node:module'; const require = __dynamoCdcCreateRequire(import.meta.url);";

/** Where the example app's file sinks write (it reads DYNAMO_CDC_OUT): /tmp is the only writable path in Lambda. */
const LAMBDA_SCRATCH_DIR = '/tmp/dynamo-cdc';

/**
 * The Lambda shape: `handlers/stream-handler.ts` bundled with esbuild (locally, no Docker) behind a
 * DynamoDB stream event source mapping with the settings that keep it safe (docs/lambda.md), the
 * progress table for re-delivery dedupe, the SQS dead-letter queue and the mapping's on-failure
 * queue (each with a depth alarm), and an alarm on the iterator age. The function's role is
 * allowed exactly the calls the handler and the mapping make, on the named resources.
 */
export class DynamoCdcLambdaStack extends Stack {
  readonly function: NodejsFunction;
  /** The function's execution role. */
  readonly role: Role;
  readonly mapping: EventSourceMapping;
  readonly progressTable: Table;
  readonly deadLetterQueue: DeadLetterQueue;
  readonly onFailureQueue: DeadLetterQueue;
  readonly iteratorAgeAlarm: Alarm;

  constructor(scope: Construct, id: string, props: DynamoCdcLambdaStackProps) {
    super(scope, id, props);
    const { params } = props;
    const source = new SourceStream(this, 'Source', params);

    // Progress records live 25 h (past the stream's retention), so nothing of value is lost with the
    // stack. Point-in-time recovery still: a table emptied by mistake would re-deliver every record
    // retried within the day, and recovering a table this small costs next to nothing.
    this.progressTable = new Table(this, 'ProgressTable', {
      ...fromTableDefinition(progressTableDefinition('progress')),
      timeToLiveAttribute: 'expiresAt',
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.deadLetterQueue = new DeadLetterQueue(this, 'DeadLetterQueue', { holds: 'Dead letters (records a sink would not take)', alarmThreshold: params.dlqDepthAlarm });
    this.onFailureQueue = new DeadLetterQueue(this, 'OnFailureQueue', { holds: 'Batches Lambda gave up on (retries or record age exhausted)', alarmThreshold: 1 });

    const logGroup = new LogGroup(this, 'HandlerLogs', { retention: params.logRetentionDays as RetentionDays });
    this.role = new Role(this, 'HandlerRole', { assumedBy: new ServicePrincipal('lambda.amazonaws.com'), description: `dynamo-cdc stream handler for table ${params.tableName}` });
    const sinks = sinkAccess(this, params);

    this.function = new NodejsFunction(this, 'Handler', {
      entry: `${repoRoot}handlers/stream-handler.ts`,
      handler: 'handler',
      projectRoot: repoRoot,
      depsLockFilePath: `${repoRoot}package-lock.json`,
      runtime: RUNTIMES[params.nodeVersion],
      architecture: params.architecture === 'arm64' ? Architecture.ARM_64 : Architecture.X86_64,
      memorySize: params.memorySize,
      timeout: Duration.seconds(params.timeoutSeconds),
      role: this.role,
      logGroup,
      environment: {
        TABLE_NAME: params.tableName,
        STREAM_ARN: source.streamArn,
        PROGRESS_TABLE: this.progressTable.tableName,
        DLQ_URL: this.deadLetterQueue.queue.queueUrl,
        LOG_LEVEL: params.logLevel,
        DYNAMO_CDC_OUT: LAMBDA_SCRATCH_DIR,
        // Node maps every stack trace it prints with this on, which costs time; only with the maps shipped.
        ...(params.sourceMaps ? { NODE_OPTIONS: '--enable-source-maps' } : {}),
        ...sinks.environment,
      },
      bundling: {
        format: OutputFormat.ESM,
        // The runtime's own Node.js: nothing is down-levelled that it runs natively.
        target: `node${params.nodeVersion}`,
        mainFields: ['module', 'main'],
        banner: REQUIRE_BANNER,
        // Smaller bundle, faster cold start; stack traces stay readable with `sourceMaps`.
        minify: true,
        sourceMap: params.sourceMaps,
        // The SDK versions the tests ran against, not whichever the runtime carries.
        bundleAwsSDK: true,
        forceDockerBundling: false,
        logLevel: LogLevel.WARNING,
      },
    });

    if (params.nodeVersion === LATEST_TESTED_NODE_VERSION) {
      Validations.of(this.function).acknowledge({
        id: 'AwsSolutions-L1',
        reason: `Node.js ${LATEST_TESTED_NODE_VERSION} is the newest runtime the tests and CI run the handler under; a newer one is a choice of the deployer (\`-c nodeVersion=24\`), not a default the project has not tested.`,
      });
    }

    const statements = [
      source.readStatement(),
      new PolicyStatement({ sid: 'UseTheProgressTable', actions: ['dynamodb:Query', 'dynamodb:PutItem'], resources: [this.progressTable.tableArn] }),
      new PolicyStatement({ sid: 'SendDeadLetters', actions: ['sqs:SendMessage'], resources: [this.deadLetterQueue.queue.queueArn] }),
      new PolicyStatement({ sid: 'ReportGivenUpBatches', actions: ['sqs:SendMessage'], resources: [this.onFailureQueue.queue.queueArn] }),
      new PolicyStatement({ sid: 'WriteLogs', actions: ['logs:CreateLogStream', 'logs:PutLogEvents'], resources: [logGroup.logGroupArn] }),
      ...sinks.statements,
    ];
    for (const statement of statements) this.role.addToPrincipalPolicy(statement);
    if (sinks.acknowledgements.length > 0) Validations.of(this.role).acknowledge(...sinks.acknowledgements);

    // Not DynamoEventSource: it grants dynamodb:ListStreams on `*`, which the mapping does not need.
    // The on-failure destination is bound here for the same reason (SqsDlq adds GetQueueAttributes and GetQueueUrl).
    const onFailure: IEventSourceDlq = { bind: () => ({ destination: this.onFailureQueue.queue.queueArn }) };
    // Lambda drops a record no filter matches before the handler sees it: the filter passes every
    // record a route takes or would dead-letter (it never looks at images, only keys, kinds and the TTL identity).
    const criteria = props.dynamoCdcApp ? lambdaFilterCriteria(props.dynamoCdcApp, props.filterOptions) : undefined;
    this.mapping = new EventSourceMapping(this, 'StreamMapping', {
      target: this.function,
      eventSourceArn: source.streamArn,
      startingPosition: StartingPosition.TRIM_HORIZON,
      reportBatchItemFailures: true,
      bisectBatchOnError: true,
      batchSize: params.batchSize,
      maxBatchingWindow: Duration.seconds(params.maxBatchingWindowSeconds),
      parallelizationFactor: params.parallelizationFactor,
      retryAttempts: params.maximumRetryAttempts,
      maxRecordAge: Duration.seconds(params.maximumRecordAgeSeconds),
      onFailure,
      ...(criteria ? { filters: criteria.Filters.map((f) => ({ pattern: f.Pattern })) } : {}),
    });

    this.iteratorAgeAlarm = new Alarm(this, 'IteratorAgeAlarm', {
      alarmDescription: `The stream handler is more than ${params.iteratorAgeAlarmSeconds} s behind the stream of ${params.tableName}; records leave the stream after 24 h.`,
      metric: this.function.metric('IteratorAge', { statistic: 'Maximum', period: Duration.minutes(1) }),
      threshold: params.iteratorAgeAlarmSeconds * 1000,
      comparisonOperator: ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 3,
      treatMissingData: TreatMissingData.NOT_BREACHING,
    });
    notifyOnAlarms(this, [this.iteratorAgeAlarm, this.deadLetterQueue.alarm, this.onFailureQueue.alarm], params.alarmTopicArn);

    new CfnOutput(this, 'FunctionName', { value: this.function.functionName });
    new CfnOutput(this, 'StreamArn', { value: source.streamArn });
    new CfnOutput(this, 'ProgressTableName', { value: this.progressTable.tableName });
    new CfnOutput(this, 'DeadLetterQueueUrl', { value: this.deadLetterQueue.queue.queueUrl });
    new CfnOutput(this, 'OnFailureQueueUrl', { value: this.onFailureQueue.queue.queueUrl });
  }
}
