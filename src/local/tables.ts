import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { CreateTableCommand, DescribeTableCommand, waitUntilTableExists } from '@aws-sdk/client-dynamodb';
import { leaseTableDefinition } from '../worker/index.js';

const waitActive = (client: DynamoDBClient, tableName: string) =>
  waitUntilTableExists({ client, maxWaitTime: 30, minDelay: 1, maxDelay: 1 }, { TableName: tableName });

/**
 * Creates a source table keyed `PK` (S) / `SK` (S) with a NEW_AND_OLD_IMAGES stream, waits until it
 * is active and returns its stream ARN. For DynamoDB Local: the demo, the tests, chaos and benchmarks.
 */
export const createSourceTable = async (client: DynamoDBClient, tableName: string): Promise<string> => {
  await client.send(
    new CreateTableCommand({
      TableName: tableName,
      BillingMode: 'PAY_PER_REQUEST',
      KeySchema: [
        { AttributeName: 'PK', KeyType: 'HASH' },
        { AttributeName: 'SK', KeyType: 'RANGE' },
      ],
      AttributeDefinitions: [
        { AttributeName: 'PK', AttributeType: 'S' },
        { AttributeName: 'SK', AttributeType: 'S' },
      ],
      StreamSpecification: { StreamEnabled: true, StreamViewType: 'NEW_AND_OLD_IMAGES' },
    }),
  );
  await waitActive(client, tableName);
  const { Table: table } = await client.send(new DescribeTableCommand({ TableName: tableName }));
  if (!table?.LatestStreamArn) throw new Error(`table ${tableName} has no stream`);
  return table.LatestStreamArn;
};

/** Creates a lease table from `leaseTableDefinition` and waits until it is active. */
export const createLeaseTable = async (client: DynamoDBClient, tableName: string): Promise<string> => {
  await client.send(new CreateTableCommand(leaseTableDefinition(tableName)));
  await waitActive(client, tableName);
  return tableName;
};
