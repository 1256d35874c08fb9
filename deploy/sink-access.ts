import { Arn, ArnFormat, Stack } from 'aws-cdk-lib';
import type { Acknowledgment } from 'aws-cdk-lib';
import { PolicyStatement } from 'aws-cdk-lib/aws-iam';
import type { Construct } from 'constructs';
import type { DeployParams } from './params.js';

/** What the sinks need at run time: their settings as environment variables, and the IAM statements that allow exactly their calls. */
export interface SinkAccess {
  /** For the app's configuration (dynamo-cdc.config.ts) to read; see docs/deploy.md. */
  readonly environment: Record<string, string>;
  readonly statements: PolicyStatement[];
  /** cdk-nag findings the statements raise that are right as they are, each with its reason; acknowledge them on the role. */
  readonly acknowledgements: Acknowledgment[];
}

/**
 * cdk-nag's AwsSolutions-IAM5 finding on an object-prefix resource, by the id it reports (tokens
 * written as `<AWS::Partition>`). The `*` is the object keys the sink writes: new names each time
 * (time and shard in the export's, the event id in the claim-check's), so no list could name them.
 */
const objectPrefixAcknowledgement = (bucket: string, prefix: string, sink: string): Acknowledgment => ({
  id: `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::${bucket}/${prefix}*]`,
  reason: `The ${sink} writes new objects under \`${prefix || '(bucket root)'}\` with keys it makes up as it goes, so the resource is every key under that prefix; only object writes are allowed, nothing on the bucket itself or outside the prefix.`,
});

type SinkParams = Pick<
  DeployParams,
  'eventBusName' | 'queues' | 'exportBucket' | 'exportPrefix' | 'claimCheckBucket' | 'claimCheckPrefix' | 'openSearchEndpoint' | 'openSearchDomainArn'
>;

const urlSuffixOf = (partition: string | undefined): string => (partition === 'aws-cn' ? 'amazonaws.com.cn' : 'amazonaws.com');

/** ARN and URL of a queue given by name (this stack's account and region) or by ARN. */
const queueOf = (stack: Stack, queue: string): { name: string; arn: string; url: string } => {
  if (!queue.startsWith('arn:')) {
    return {
      name: queue,
      arn: stack.formatArn({ service: 'sqs', resource: queue, arnFormat: ArnFormat.NO_RESOURCE_NAME }),
      url: `https://sqs.${stack.region}.${stack.urlSuffix}/${stack.account}/${queue}`,
    };
  }
  const { partition, region, account, resource } = Arn.split(queue, ArnFormat.NO_RESOURCE_NAME);
  return { name: resource, arn: queue, url: `https://sqs.${region ?? ''}.${urlSuffixOf(partition)}/${account ?? ''}/${resource}` };
};

/** `arn:<partition>:s3:::<bucket>/<prefix>*`: objects under the prefix only. */
const objectsUnder = (stack: Stack, bucket: string, prefix: string): string =>
  stack.formatArn({ service: 's3', region: '', account: '', resource: bucket, resourceName: `${prefix}*`, arnFormat: ArnFormat.SLASH_RESOURCE_NAME });

const DOMAIN_FROM_ENDPOINT = /^(?:search|vpc)-([a-z][a-z0-9-]{2,27})-[a-z0-9]+\.([a-z0-9-]+)\.es\.amazonaws\.com$/;

const domainArnOf = (stack: Stack, endpoint: string, domainArn: string | undefined): string => {
  if (domainArn) return domainArn;
  const match = DOMAIN_FROM_ENDPOINT.exec(new URL(endpoint).hostname);
  if (!match?.[1] || !match[2]) throw new Error(`Cannot tell the OpenSearch domain of \`${endpoint}\`; resolveDeployParams should have asked for openSearchDomainArn`);
  return stack.formatArn({ service: 'es', region: match[2], resource: 'domain', resourceName: match[1] });
};

/**
 * The environment and the IAM statements of the sinks the parameters name. Only what the sinks call
 * is allowed, on the named resources only: `events:PutEvents` on the bus, `sqs:SendMessage` on the
 * queues (it covers SendMessageBatch), `s3:PutObject` and `s3:AbortMultipartUpload` under the export
 * prefix (PutObject covers the multipart calls), `s3:PutObject` under the claim-check prefix, and
 * `es:ESHttpPost` on the domain's `_bulk` path.
 */
export const sinkAccess = (scope: Construct, params: SinkParams): SinkAccess => {
  const stack = Stack.of(scope);
  const environment: Record<string, string> = {};
  const statements: PolicyStatement[] = [];
  const acknowledgements: Acknowledgment[] = [];

  if (params.eventBusName) {
    const busArn = params.eventBusName.startsWith('arn:')
      ? params.eventBusName
      : stack.formatArn({ service: 'events', resource: 'event-bus', resourceName: params.eventBusName });
    environment['EVENT_BUS_NAME'] = params.eventBusName;
    statements.push(new PolicyStatement({ sid: 'PutEventsOnTheBus', actions: ['events:PutEvents'], resources: [busArn] }));
  }

  if (params.queues.length > 0) {
    const queues = params.queues.map((q) => queueOf(stack, q));
    environment['QUEUE_URLS'] = stack.toJsonString(Object.fromEntries(queues.map((q) => [q.name, q.url])));
    statements.push(new PolicyStatement({ sid: 'SendToTheQueues', actions: ['sqs:SendMessage'], resources: queues.map((q) => q.arn) }));
  }

  if (params.exportBucket) {
    environment['EXPORT_BUCKET'] = params.exportBucket;
    environment['EXPORT_PREFIX'] = params.exportPrefix;
    statements.push(
      new PolicyStatement({ sid: 'WriteTheExport', actions: ['s3:PutObject', 's3:AbortMultipartUpload'], resources: [objectsUnder(stack, params.exportBucket, params.exportPrefix)] }),
    );
    acknowledgements.push(objectPrefixAcknowledgement(params.exportBucket, params.exportPrefix, 'S3 export sink'));
  }

  if (params.claimCheckBucket) {
    environment['CLAIM_CHECK_BUCKET'] = params.claimCheckBucket;
    environment['CLAIM_CHECK_PREFIX'] = params.claimCheckPrefix;
    statements.push(new PolicyStatement({ sid: 'WriteClaimChecks', actions: ['s3:PutObject'], resources: [objectsUnder(stack, params.claimCheckBucket, params.claimCheckPrefix)] }));
    acknowledgements.push(objectPrefixAcknowledgement(params.claimCheckBucket, params.claimCheckPrefix, 'claim-check store'));
  }

  if (params.openSearchEndpoint) {
    environment['OPENSEARCH_ENDPOINT'] = params.openSearchEndpoint;
    const domainArn = domainArnOf(stack, params.openSearchEndpoint, params.openSearchDomainArn);
    statements.push(new PolicyStatement({ sid: 'BulkIndexInOpenSearch', actions: ['es:ESHttpPost'], resources: [`${domainArn}/_bulk`] }));
  }

  return { environment, statements, acknowledgements };
};
