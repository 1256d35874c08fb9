import { randomUUID } from 'node:crypto';
import type { CreateTableCommandInput, StreamViewType } from '@aws-sdk/client-dynamodb';
import { CreateTableCommand, DeleteTableCommand, DynamoDBClient, waitUntilTableExists } from '@aws-sdk/client-dynamodb';
import { inject } from 'vitest';
import { localClientConfig } from '../../src/local/dynamodb-local.js';

/** A client for the DynamoDB Local that the global setup started. Destroy it when done. */
export const localClient = (): DynamoDBClient => new DynamoDBClient(localClientConfig(inject('dynamoEndpoint')));

/** A table name no other test uses, so no test depends on another's leftovers. */
export const uniqueTableName = (prefix = 'test'): string => `${prefix}-${randomUUID()}`;

/** A table keyed by string attributes, optionally with a stream. */
export interface SimpleTable {
  readonly tableName: string;
  readonly partitionKey: string;
  readonly sortKey?: string;
  readonly streamViewType?: StreamViewType;
}

const toInput = (t: SimpleTable): CreateTableCommandInput => ({
  TableName: t.tableName,
  BillingMode: 'PAY_PER_REQUEST',
  KeySchema: [{ AttributeName: t.partitionKey, KeyType: 'HASH' }, ...(t.sortKey ? [{ AttributeName: t.sortKey, KeyType: 'RANGE' as const }] : [])],
  AttributeDefinitions: [t.partitionKey, ...(t.sortKey ? [t.sortKey] : [])].map((name) => ({ AttributeName: name, AttributeType: 'S' as const })),
  ...(t.streamViewType ? { StreamSpecification: { StreamEnabled: true, StreamViewType: t.streamViewType } } : {}),
});

/** Creates a table (a full CreateTable input, or a {@link SimpleTable}) and waits until it is active. */
export const createTable = async (client: DynamoDBClient, table: CreateTableCommandInput | SimpleTable): Promise<string> => {
  const input = 'TableName' in table ? table : toInput(table);
  await client.send(new CreateTableCommand(input));
  await waitUntilTableExists({ client, maxWaitTime: 30, minDelay: 1, maxDelay: 1 }, { TableName: input.TableName });
  return input.TableName as string;
};

/** Deletes a table; a table already gone is fine. */
export const deleteTable = async (client: DynamoDBClient, tableName: string): Promise<void> => {
  try {
    await client.send(new DeleteTableCommand({ TableName: tableName }));
  } catch (error) {
    if ((error as { name?: unknown }).name !== 'ResourceNotFoundException') throw error;
  }
};
