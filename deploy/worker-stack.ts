import { fileURLToPath } from 'node:url';
import { CfnOutput, Duration, IgnoreMode, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import type { StackProps } from 'aws-cdk-lib';
import { FlowLogDestination, FlowLogTrafficType, GatewayVpcEndpointAwsService, SubnetType, Vpc } from 'aws-cdk-lib/aws-ec2';
import type { IVpc } from 'aws-cdk-lib/aws-ec2';
import { Platform } from 'aws-cdk-lib/aws-ecr-assets';
import { Cluster, ContainerImage, ContainerInsights, CpuArchitecture, FargateService, FargateTaskDefinition, LogDrivers, OperatingSystemFamily } from 'aws-cdk-lib/aws-ecs';
import type { ContainerDefinition } from 'aws-cdk-lib/aws-ecs';
import { Table } from 'aws-cdk-lib/aws-dynamodb';
import { PolicyStatement, Role, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import { LogGroup } from 'aws-cdk-lib/aws-logs';
import type { RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { Construct } from 'constructs';
import { leaseTableDefinition } from '../src/worker/dynamodb-lease-store.js';
import { DeadLetterQueue, notifyOnAlarms } from './dead-letter-queue.js';
import type { DeployParams } from './params.js';
import { sinkAccess } from './sink-access.js';
import { SourceStream } from './source-stream.js';
import { fromTableDefinition } from './table-definition.js';

/** Options of {@link DynamoCdcWorkerStack}. */
export interface DynamoCdcWorkerStackProps extends StackProps {
  readonly params: DeployParams;
}

/** The worker's health endpoint (its metrics server): the contract between the image and the service. */
export const WORKER_HEALTH = { port: 9464, path: '/healthz' } as const;

/** The lease table actions of `dynamoDbLeaseStore` and `ensureLeaseTable` (the stack creates the table, so no CreateTable). */
export const LEASE_TABLE_ACTIONS = ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem', 'dynamodb:Scan', 'dynamodb:DescribeTable'] as const;

const repoRoot = fileURLToPath(new URL('..', import.meta.url));

/**
 * What the image build needs from the repository, and nothing else: the CDK stages only these
 * files into the Docker build context (Docker's ignore syntax, applied to the repository root).
 */
export const IMAGE_CONTEXT_EXCLUDE = [
  '*',
  '!package.json',
  '!package-lock.json',
  '!tsconfig.json',
  '!dynamo-cdc.config.ts',
  '!src',
  '!handlers',
  '!deploy',
  'deploy/*',
  '!deploy/Dockerfile',
  '!deploy/worker-bundle.ts',
];

/** The health check as ECS runs it (the image's own HEALTHCHECK is ignored by ECS). Node's fetch: the slim image has no curl. */
const healthCheckCommand = [
  'CMD',
  'node',
  '-e',
  `fetch('http://127.0.0.1:${WORKER_HEALTH.port}${WORKER_HEALTH.path}').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))`,
];

/** Where the example app's file sinks write (it reads DYNAMO_CDC_OUT): the image's user may not write to /app. */
const WORKER_SCRATCH_DIR = '/tmp/dynamo-cdc';

/**
 * The worker shape: an ECS Fargate service running `handlers/worker.ts` from the image built from
 * deploy/Dockerfile, sharing the stream's shards through the lease table it creates (on-demand,
 * point-in-time recovery on), with a health check on `/healthz`, scaling bounds (tasks beyond the
 * shard count sit idle), a stop timeout longer than the drain, and the SQS dead-letter queue with
 * an alarm on its depth. The task role is allowed exactly the calls the worker makes.
 */
export class DynamoCdcWorkerStack extends Stack {
  readonly leaseTable: Table;
  readonly deadLetterQueue: DeadLetterQueue;
  readonly service: FargateService;
  readonly container: ContainerDefinition;
  readonly taskRole: Role;

  constructor(scope: Construct, id: string, props: DynamoCdcWorkerStackProps) {
    super(scope, id, props);
    const { params } = props;
    const source = new SourceStream(this, 'Source', params);

    // The checkpoints: losing them means reading the stream again from its trim horizon.
    this.leaseTable = new Table(this, 'LeaseTable', {
      ...fromTableDefinition(leaseTableDefinition('leases')),
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      removalPolicy: RemovalPolicy.RETAIN,
    });
    this.deadLetterQueue = new DeadLetterQueue(this, 'DeadLetterQueue', { holds: 'Dead letters (records a sink would not take)', alarmThreshold: params.dlqDepthAlarm });

    this.taskRole = new Role(this, 'TaskRole', { assumedBy: new ServicePrincipal('ecs-tasks.amazonaws.com'), description: `dynamo-cdc worker for table ${params.tableName}` });
    const sinks = sinkAccess(this, params);
    const statements = [
      source.readStatement(),
      new PolicyStatement({ sid: 'UseTheLeaseTable', actions: [...LEASE_TABLE_ACTIONS], resources: [this.leaseTable.tableArn] }),
      new PolicyStatement({ sid: 'SendDeadLetters', actions: ['sqs:SendMessage'], resources: [this.deadLetterQueue.queue.queueArn] }),
      ...sinks.statements,
    ];
    for (const statement of statements) this.taskRole.addToPrincipalPolicy(statement);
    if (sinks.acknowledgements.length > 0) Validations.of(this.taskRole).acknowledge(...sinks.acknowledgements);

    const arm = params.architecture === 'arm64';
    const taskDefinition = new FargateTaskDefinition(this, 'Task', {
      cpu: params.cpu,
      memoryLimitMiB: params.memoryMiB,
      taskRole: this.taskRole,
      runtimePlatform: { cpuArchitecture: arm ? CpuArchitecture.ARM64 : CpuArchitecture.X86_64, operatingSystemFamily: OperatingSystemFamily.LINUX },
    });
    const logGroup = new LogGroup(this, 'WorkerLogs', { retention: params.logRetentionDays as RetentionDays });
    this.container = taskDefinition.addContainer('worker', {
      image: ContainerImage.fromAsset(repoRoot, {
        file: 'deploy/Dockerfile',
        exclude: IMAGE_CONTEXT_EXCLUDE,
        ignoreMode: IgnoreMode.DOCKER,
        platform: arm ? Platform.LINUX_ARM64 : Platform.LINUX_AMD64,
        buildArgs: { NODE_IMAGE: `node:${params.nodeVersion}-bookworm-slim` },
      }),
      logging: LogDrivers.awsLogs({ logGroup, streamPrefix: 'worker' }),
      environment: {
        TABLE_NAME: params.tableName,
        STREAM_ARN: source.streamArn,
        LEASE_TABLE: this.leaseTable.tableName,
        LEASE_DURATION_MS: String(params.leaseDurationMs),
        DRAIN_TIMEOUT_MS: String(params.drainTimeoutMs),
        METRICS_PORT: String(WORKER_HEALTH.port),
        DLQ_URL: this.deadLetterQueue.queue.queueUrl,
        LOG_LEVEL: params.logLevel,
        DYNAMO_CDC_OUT: WORKER_SCRATCH_DIR,
        ...sinks.environment,
      },
      portMappings: [{ containerPort: WORKER_HEALTH.port, name: 'metrics' }],
      // SIGTERM, then this long to drain, checkpoint and release the leases before SIGKILL.
      stopTimeout: Duration.seconds(params.stopTimeoutSeconds),
      healthCheck: {
        command: healthCheckCommand,
        interval: Duration.seconds(30),
        timeout: Duration.seconds(5),
        retries: 3,
        startPeriod: Duration.seconds(60),
      },
    });

    Validations.of(taskDefinition).acknowledge({
      id: 'AwsSolutions-ECS2',
      reason: 'The variables are names, ARNs, URLs and settings (table, stream, lease table, queues, buses, buckets, timeouts, log level), none of them secret: they are in the template and the stack outputs anyway. handlers/worker.ts reads its configuration from the environment; fetching it from SSM or Secrets Manager would add a permission and a startup call without hiding anything. A secret must not be added here (see docs/deploy.md).',
    });
    // The execution role (the CDK creates it for the image and the log driver) pulls from ECR.
    Validations.of(taskDefinition.obtainExecutionRole()).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason: 'ecr:GetAuthorizationToken, which the execution role needs to pull the worker image: an authorization token is for the whole registry, so IAM accepts no resource but `*`. The role\'s other statements name the image repository and the log group.',
    });

    const vpc = this.#vpc(params, params.logRetentionDays as RetentionDays);
    // Container Insights: per-task CPU, memory and restarts, which the service-level metrics average away.
    const cluster = new Cluster(this, 'Cluster', { vpc, containerInsightsV2: ContainerInsights.ENABLED });
    this.service = new FargateService(this, 'Service', {
      cluster,
      taskDefinition,
      desiredCount: params.desiredTasks,
      vpcSubnets: { subnetType: SubnetType.PRIVATE_WITH_EGRESS },
      assignPublicIp: false,
      // A new task starts before an old one stops: the newcomer takes free and expired leases, the
      // leaving one hands its shards over on SIGTERM.
      minHealthyPercent: 100,
      maxHealthyPercent: 200,
      circuitBreaker: { rollback: true },
    });
    const scaling = this.service.autoScaleTaskCount({ minCapacity: params.minTasks, maxCapacity: params.maxTasks });
    scaling.scaleOnCpuUtilization('Cpu', {
      targetUtilizationPercent: params.scaleOnCpuPercent,
      scaleOutCooldown: Duration.minutes(1),
      scaleInCooldown: Duration.minutes(5),
    });

    notifyOnAlarms(this, [this.deadLetterQueue.alarm], params.alarmTopicArn);

    new CfnOutput(this, 'ServiceName', { value: this.service.serviceName });
    new CfnOutput(this, 'ClusterName', { value: cluster.clusterName });
    new CfnOutput(this, 'StreamArn', { value: source.streamArn });
    new CfnOutput(this, 'LeaseTableName', { value: this.leaseTable.tableName });
    new CfnOutput(this, 'DeadLetterQueueUrl', { value: this.deadLetterQueue.queue.queueUrl });
  }

  #vpc(params: DeployParams, retention: RetentionDays): IVpc {
    // An existing VPC is its owner's: its flow logs are theirs to set up.
    if (params.vpcId) return Vpc.fromLookup(this, 'Vpc', { vpcId: params.vpcId });
    // Rejected connections only: what an investigation of the workers' network needs, at a small
    // fraction of the log volume of every accepted flow through the NAT gateway.
    const flowLogs = new LogGroup(this, 'VpcFlowLogs', { retention });
    return new Vpc(this, 'Vpc', {
      flowLogs: { Rejected: { destination: FlowLogDestination.toCloudWatchLogs(flowLogs), trafficType: FlowLogTrafficType.REJECT } },
      maxAzs: 2,
      natGateways: 1,
      restrictDefaultSecurityGroup: false,
      subnetConfiguration: [
        { name: 'public', subnetType: SubnetType.PUBLIC, cidrMask: 24 },
        { name: 'workers', subnetType: SubnetType.PRIVATE_WITH_EGRESS, cidrMask: 24 },
      ],
      // DynamoDB (the lease table) and S3 (the export, image layers) without the NAT gateway; DynamoDB Streams and the rest go through it.
      gatewayEndpoints: {
        DynamoDb: { service: GatewayVpcEndpointAwsService.DYNAMODB },
        S3: { service: GatewayVpcEndpointAwsService.S3 },
      },
    });
  }
}
