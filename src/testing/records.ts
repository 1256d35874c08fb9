import { marshall } from '@aws-sdk/util-dynamodb';
import type { AttributeValue, Item } from '../events.js';

/** A Lambda event record for a DynamoDB stream, as AWS documents it. */
export interface LambdaStreamRecord {
  eventID: string;
  eventName: 'INSERT' | 'MODIFY' | 'REMOVE';
  eventVersion: string;
  eventSource: 'aws:dynamodb';
  awsRegion: string;
  eventSourceARN: string;
  dynamodb: {
    ApproximateCreationDateTime: number;
    Keys: Record<string, AttributeValue>;
    NewImage?: Record<string, AttributeValue>;
    OldImage?: Record<string, AttributeValue>;
    SequenceNumber: string;
    SizeBytes: number;
    StreamViewType: 'NEW_AND_OLD_IMAGES' | 'NEW_IMAGE' | 'OLD_IMAGE' | 'KEYS_ONLY';
  };
  userIdentity?: { type: 'Service'; principalId: 'dynamodb.amazonaws.com' };
}

/** Options of {@link streamRecords}. */
export interface StreamRecordsOptions {
  /** @default 'TaskApp' */
  readonly table?: string;
  /** @default 'us-east-1' */
  readonly region?: string;
  /** Key attribute names, taken from each item. @default ['PK', 'SK'] */
  readonly keyAttributes?: readonly string[];
  /** Epoch ms of the first record; each record is one second later. @default 2026-01-01T00:00:00Z */
  readonly startTime?: number;
  /** @default 'NEW_AND_OLD_IMAGES' */
  readonly viewType?: LambdaStreamRecord['dynamodb']['StreamViewType'];
}

/** The parts of a stream record the factory fills in. */
export interface RecordOverrides {
  readonly sequenceNumber?: string;
  readonly eventID?: string;
}

/**
 * Makes realistic DynamoDB stream records in the Lambda event shape, with increasing sequence
 * numbers (21 digits, as DynamoDB's) and one table's stream ARN.
 *
 * @example
 * const records = streamRecords();
 * const batch = [records.insert({ PK: 'USER#1', SK: 'TASK#1', Status: 'OPEN' })];
 */
export const streamRecords = (options: StreamRecordsOptions = {}) => {
  const table = options.table ?? 'TaskApp';
  const region = options.region ?? 'us-east-1';
  const keyAttributes = options.keyAttributes ?? ['PK', 'SK'];
  const viewType = options.viewType ?? 'NEW_AND_OLD_IMAGES';
  const streamArn = `arn:aws:dynamodb:${region}:123456789012:table/${table}/stream/2026-01-01T00:00:00.000`;
  let seq = 100_000_000_000_000_000_000n;
  let time = options.startTime ?? Date.UTC(2026, 0, 1);

  const make = (eventName: LambdaStreamRecord['eventName'], item: Item, newImage: Item | undefined, oldImage: Item | undefined, overrides: RecordOverrides & { ttl?: boolean } = {}): LambdaStreamRecord => {
    seq += 100n;
    time += 1000;
    const sequenceNumber = overrides.sequenceNumber ?? seq.toString();
    const keys = Object.fromEntries(keyAttributes.filter((k) => item[k] !== undefined).map((k) => [k, item[k]]));
    const m = (i: Item) => marshall(i, { removeUndefinedValues: true, convertClassInstanceToMap: true }) as Record<string, AttributeValue>;
    const withNew = newImage && viewType !== 'KEYS_ONLY' && viewType !== 'OLD_IMAGE';
    const withOld = oldImage && (viewType === 'NEW_AND_OLD_IMAGES' || viewType === 'OLD_IMAGE');
    const dynamodb: LambdaStreamRecord['dynamodb'] = {
      ApproximateCreationDateTime: Math.floor(time / 1000),
      Keys: m(keys),
      ...(withNew ? { NewImage: m(newImage) } : {}),
      ...(withOld ? { OldImage: m(oldImage) } : {}),
      SequenceNumber: sequenceNumber,
      SizeBytes: 0,
      StreamViewType: viewType,
    };
    dynamodb.SizeBytes = Buffer.byteLength(JSON.stringify(dynamodb.Keys) + JSON.stringify(dynamodb.NewImage ?? {}) + JSON.stringify(dynamodb.OldImage ?? {}));
    return {
      eventID: overrides.eventID ?? `e${sequenceNumber.slice(-12)}`,
      eventName,
      eventVersion: '1.1',
      eventSource: 'aws:dynamodb',
      awsRegion: region,
      eventSourceARN: streamArn,
      dynamodb,
      ...(overrides.ttl ? { userIdentity: { type: 'Service', principalId: 'dynamodb.amazonaws.com' } as const } : {}),
    };
  };

  return {
    streamArn,
    insert: (item: Item, overrides?: RecordOverrides) => make('INSERT', item, item, undefined, overrides),
    modify: (oldItem: Item, newItem: Item, overrides?: RecordOverrides) => make('MODIFY', newItem, newItem, oldItem, overrides),
    remove: (oldItem: Item, overrides?: RecordOverrides & { ttl?: boolean }) => make('REMOVE', oldItem, undefined, oldItem, overrides),
  };
};

/** The same record in the shape `@aws-sdk/client-dynamodb-streams` GetRecords returns (no ARN, a Date, capitalised identity). */
export const toGetRecordsShape = (record: LambdaStreamRecord) => {
  const { eventSourceARN: _arn, userIdentity, dynamodb, ...rest } = record;
  return {
    ...rest,
    dynamodb: { ...dynamodb, ApproximateCreationDateTime: new Date(dynamodb.ApproximateCreationDateTime * 1000) },
    ...(userIdentity ? { userIdentity: { Type: userIdentity.type, PrincipalId: userIdentity.principalId } } : {}),
  };
};

/** A Lambda event for a batch of records. */
export const streamEvent = (records: readonly LambdaStreamRecord[]) => ({ Records: [...records] });
