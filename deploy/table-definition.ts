import type { CreateTableCommandInput } from '@aws-sdk/client-dynamodb';
import { AttributeType, BillingMode } from 'aws-cdk-lib/aws-dynamodb';
import type { Attribute } from 'aws-cdk-lib/aws-dynamodb';

const ATTRIBUTE_TYPES: Readonly<Record<string, AttributeType>> = { S: AttributeType.STRING, N: AttributeType.NUMBER, B: AttributeType.BINARY };

/**
 * The CDK keys and billing mode of a table the library defines for CreateTable
 * (`progressTableDefinition`, `leaseTableDefinition`), so the stacks build exactly the table the
 * library checks for instead of a copy that could drift.
 */
export const fromTableDefinition = (definition: CreateTableCommandInput): { partitionKey: Attribute; sortKey?: Attribute; billingMode: BillingMode } => {
  const keys = definition.KeySchema ?? [];
  const hash = keys.find((k) => k.KeyType === 'HASH');
  const range = keys.find((k) => k.KeyType === 'RANGE');
  if (!hash?.AttributeName || keys.length !== (range ? 2 : 1) || (range && !range.AttributeName)) {
    throw new Error(`Expected a table definition with one partition key and at most one sort key, got ${JSON.stringify(keys)}`);
  }
  const attribute = (name: string): Attribute => {
    const typeName = definition.AttributeDefinitions?.find((d) => d.AttributeName === name)?.AttributeType ?? '';
    const type = ATTRIBUTE_TYPES[typeName];
    if (!type) throw new Error(`Expected the key \`${name}\` to have type S, N or B, got \`${typeName}\``);
    return { name, type };
  };
  if (definition.BillingMode !== 'PAY_PER_REQUEST') throw new Error(`Expected an on-demand (PAY_PER_REQUEST) table definition, got \`${String(definition.BillingMode)}\``);
  return {
    partitionKey: attribute(hash.AttributeName),
    ...(range?.AttributeName ? { sortKey: attribute(range.AttributeName) } : {}),
    billingMode: BillingMode.PAY_PER_REQUEST,
  };
};
