import { DescribeStreamCommand, GetRecordsCommand, GetShardIteratorCommand } from '@aws-sdk/client-dynamodb-streams';
import type { _Record, DynamoDBStreamsClient } from '@aws-sdk/client-dynamodb-streams';
import type { LambdaStreamRecord } from '../testing/records.js';

/** What Lambda's event source mapping hands the function for a GetRecords record. */
export const toLambdaShape = (r: _Record, streamArn: string): LambdaStreamRecord =>
  ({
    eventID: r.eventID,
    eventName: r.eventName,
    eventVersion: r.eventVersion,
    eventSource: 'aws:dynamodb',
    awsRegion: r.awsRegion,
    eventSourceARN: streamArn,
    dynamodb: { ...r.dynamodb, ApproximateCreationDateTime: Math.floor((r.dynamodb?.ApproximateCreationDateTime as Date).getTime() / 1000) },
    ...(r.userIdentity ? { userIdentity: { type: r.userIdentity.Type, principalId: r.userIdentity.PrincipalId } } : {}),
  }) as LambdaStreamRecord;

/**
 * Reads a stream from its start until `expected` records arrived (or the shards are exhausted), in
 * Lambda's event shape. For local runs against DynamoDB Local, which keeps one shard per table.
 */
export const readWholeStream = async (streams: DynamoDBStreamsClient, streamArn: string, expected: number): Promise<LambdaStreamRecord[]> => {
  const { StreamDescription } = await streams.send(new DescribeStreamCommand({ StreamArn: streamArn }));
  const out: LambdaStreamRecord[] = [];
  for (const shard of StreamDescription?.Shards ?? []) {
    let { ShardIterator: iterator } = await streams.send(new GetShardIteratorCommand({ StreamArn: streamArn, ShardId: shard.ShardId, ShardIteratorType: 'TRIM_HORIZON' }));
    for (let emptyPolls = 0; iterator && out.length < expected && emptyPolls < 20; ) {
      const page = await streams.send(new GetRecordsCommand({ ShardIterator: iterator }));
      const records = page.Records ?? [];
      out.push(...records.map((r) => toLambdaShape(r, streamArn)));
      emptyPolls = records.length === 0 ? emptyPolls + 1 : 0;
      iterator = page.NextShardIterator;
    }
  }
  return out;
};
