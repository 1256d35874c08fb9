import { PutItemCommand } from '@aws-sdk/client-dynamodb';
import { marshall } from '@aws-sdk/util-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compareSequenceNumbers } from '../../src/events.js';
import { createTable, deleteTable, localClient, uniqueTableName } from '../support/dynamo.js';
import type { LoggedChange } from './change-log.js';
import { applyChange, applyChanges, compareWithSource, createProjectionTable, positionOf } from './projection.js';

/** A change of item `pk` numbered `version` at stream position `seq`. */
const change = (pk: string, version: number, seq: string, kind: LoggedChange['kind'] = 'modify'): LoggedChange => ({
  key: `${pk}|ITEM`,
  keys: { PK: pk, SK: 'ITEM' },
  kind,
  version,
  newImage: kind === 'remove' ? undefined : { PK: pk, SK: 'ITEM', Version: version },
  sequenceNumber: seq,
});

describe('positionOf', () => {
  it('orders positions as compareSequenceNumbers orders the sequence numbers, across digit lengths', () => {
    // Prepare
    const seqs = ['9', '10', '99', '100', '000000000000000000001', '12345678901234567890123456789012345678', '4000000000000000000000000000000000000001'];

    // Act / Assess
    for (const a of seqs) {
      for (const b of seqs) {
        const byString = positionOf(a) < positionOf(b) ? -1 : positionOf(a) > positionOf(b) ? 1 : 0;
        expect(byString, `${a} vs ${b}`).toBe(Math.sign(compareSequenceNumbers(a, b)));
      }
    }
  });

  it('refuses what is not a sequence number of at most 40 digits', () => {
    expect(() => positionOf('12a')).toThrow(/sequence number/);
    expect(() => positionOf('1'.repeat(41))).toThrow(/sequence number/);
  });
});

describe('Projection (DynamoDB Local)', () => {
  const client = localClient();
  let table = '';
  let source = '';

  beforeAll(async () => {
    table = await createProjectionTable(client, uniqueTableName('projection'));
    source = await createTable(client, { tableName: uniqueTableName('projection-source'), partitionKey: 'PK', sortKey: 'SK' });
  });

  afterAll(async () => {
    await deleteTable(client, table);
    await deleteTable(client, source);
    client.destroy();
  });

  it('keeps the newer change when a stale one arrives after it, across a digit-length boundary', async () => {
    // Act: version 2 at position 10, then version 1 at position 9 (as strings, '9' > '10').
    const applied = [await applyChange(client, table, change('A', 1, '9')), await applyChange(client, table, change('A', 2, '10')), await applyChange(client, table, change('A', 1, '9'))];
    await client.send(new PutItemCommand({ TableName: source, Item: marshall({ PK: 'A', SK: 'ITEM', Version: 2 }) }));

    // Assess
    expect(applied).toEqual([true, true, false]);
    expect(await compareWithSource(client, source, table)).toMatchObject({ diffs: 0 });
  });

  it('keeps a removed item removed when an older image arrives after the remove (a tombstone, not a delete)', async () => {
    // Act: version 1, the remove (version 2), then version 1 again (a replay); one write at a time.
    const stats = await applyChanges(client, table, [change('B', 1, '100'), change('B', 2, '200', 'remove'), change('B', 1, '100')], 1);

    // Assess: B is not in the source, so any B in the projection would be extra.
    expect(stats).toEqual({ applied: 2, stale: 1 });
    expect(await compareWithSource(client, source, table)).toMatchObject({ diffs: 0 });
  });

  it('ends at the newest change whatever order concurrent writes of one item land in', async () => {
    // Act: versions 1..6 of E (5 a remove), each twice, eight writes at a time.
    const changes = [1, 2, 3, 4, 5, 6].map((v) => change('E', v, String(1000 + v), v === 5 ? 'remove' : 'modify'));
    const stats = await applyChanges(client, table, [...changes, ...changes].reverse(), 8);
    await client.send(new PutItemCommand({ TableName: source, Item: marshall({ PK: 'E', SK: 'ITEM', Version: 6 }) }));

    // Assess
    expect(stats.applied + stats.stale).toBe(12);
    expect(stats.applied).toBeGreaterThanOrEqual(1);
    expect(await compareWithSource(client, source, table)).toMatchObject({ diffs: 0 });
  });

  it('counts items missing, extra and different, and names their keys', async () => {
    // Prepare: C only in the source, D only in the projection, A different.
    await client.send(new PutItemCommand({ TableName: source, Item: marshall({ PK: 'C', SK: 'ITEM', Version: 1 }) }));
    await applyChange(client, table, change('D', 1, '300'));
    await client.send(new PutItemCommand({ TableName: source, Item: marshall({ PK: 'A', SK: 'ITEM', Version: 3 }) }));

    // Act
    const diff = await compareWithSource(client, source, table);

    // Assess
    expect(diff).toMatchObject({ diffs: 3, missing: 1, extra: 1, different: 1 });
    expect([...diff.examples].sort()).toEqual(['A|ITEM', 'C|ITEM', 'D|ITEM']);
  });
});
