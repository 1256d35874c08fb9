import { Arn, ArnFormat, Stack } from 'aws-cdk-lib';
import { Table } from 'aws-cdk-lib/aws-dynamodb';
import type { ITable } from 'aws-cdk-lib/aws-dynamodb';
import { PolicyStatement, Role, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import { LogGroup } from 'aws-cdk-lib/aws-logs';
import type { RetentionDays } from 'aws-cdk-lib/aws-logs';
import { AwsCustomResource, AwsCustomResourcePolicy, PhysicalResourceId } from 'aws-cdk-lib/custom-resources';
import { Construct } from 'constructs';
import type { DeployParams } from './params.js';

/** The stream actions a reader calls: DescribeStream (shards), GetShardIterator and GetRecords. */
export const STREAM_READ_ACTIONS = ['dynamodb:DescribeStream', 'dynamodb:GetShardIterator', 'dynamodb:GetRecords'] as const;

/**
 * The source table and its stream. With `tableStreamArn` the ARN is used as given; with only
 * `tableName` it is looked up at deploy time by a custom resource calling DescribeTable (allowed on
 * that one table), so the policies still name the one stream instead of `table/<name>/stream/*`.
 */
export class SourceStream extends Construct {
  readonly table: ITable;
  readonly tableName: string;
  readonly tableArn: string;
  readonly streamArn: string;

  constructor(scope: Construct, id: string, params: Pick<DeployParams, 'tableName' | 'tableStreamArn' | 'logRetentionDays'>) {
    super(scope, id);
    const stack = Stack.of(this);
    this.tableName = params.tableName;
    if (params.tableStreamArn) {
      const parts = Arn.split(params.tableStreamArn, ArnFormat.SLASH_RESOURCE_NAME);
      this.tableArn = Arn.format({ partition: parts.partition, service: 'dynamodb', region: parts.region, account: parts.account, resource: 'table', resourceName: params.tableName }, stack);
      this.streamArn = params.tableStreamArn;
    } else {
      this.tableArn = stack.formatArn({ service: 'dynamodb', resource: 'table', resourceName: params.tableName });
      this.streamArn = this.#lookUpStreamArn(params);
    }
    this.table = Table.fromTableAttributes(this, 'Table', { tableName: params.tableName, tableStreamArn: this.streamArn });
  }

  /** Read access to this one stream. No `dynamodb:ListStreams`: it takes no resource but `*`, and neither Lambda's mapping nor the worker needs it once the stream ARN is known. */
  readStatement(): PolicyStatement {
    return new PolicyStatement({ sid: 'ReadTheSourceStream', actions: [...STREAM_READ_ACTIONS], resources: [this.streamArn] });
  }

  #lookUpStreamArn(params: Pick<DeployParams, 'tableName' | 'logRetentionDays'>): string {
    // Its own role and log group, so that nothing here is granted on `*` (the default role would get AWSLambdaBasicExecutionRole).
    const logGroup = new LogGroup(this, 'LookupLogs', { retention: params.logRetentionDays as RetentionDays });
    const role = new Role(this, 'LookupRole', { assumedBy: new ServicePrincipal('lambda.amazonaws.com'), description: 'Looks up the source table\'s stream ARN (DescribeTable)' });
    role.addToPrincipalPolicy(new PolicyStatement({ sid: 'WriteLookupLogs', actions: ['logs:CreateLogStream', 'logs:PutLogEvents'], resources: [logGroup.logGroupArn] }));
    const describeTable = {
      service: 'DynamoDB',
      action: 'describeTable',
      parameters: { TableName: params.tableName },
      physicalResourceId: PhysicalResourceId.of(`${params.tableName}-stream`),
      outputPaths: ['Table.LatestStreamArn'],
    };
    const lookup = new AwsCustomResource(this, 'Lookup', {
      onCreate: describeTable,
      onUpdate: describeTable,
      role,
      logGroup,
      installLatestAwsSdk: false,
      policy: AwsCustomResourcePolicy.fromStatements([new PolicyStatement({ sid: 'DescribeTheSourceTable', actions: ['dynamodb:DescribeTable'], resources: [this.tableArn] })]),
    });
    return lookup.getResponseField('Table.LatestStreamArn');
  }
}
