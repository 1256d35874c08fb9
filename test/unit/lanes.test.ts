import { describe, expect, it } from 'vitest';
import type { App } from '../../src/app.js';
import { laneOfRaw } from '../../src/core/lanes.js';

const item = { ordering: 'item' } as unknown as App;
const byPartition = { ordering: 'partitionKey', partitionKey: 'PK' } as unknown as App;
const withKeys = (Keys: unknown) => ({ dynamodb: { Keys } });

describe('laneOfRaw', () => {
  it('gives the same lane whatever the order of the key attributes', () => {
    const a = laneOfRaw(item, withKeys({ PK: { S: 'USER#1' }, SK: { S: 'TASK#1' } }));
    const b = laneOfRaw(item, withKeys({ SK: { S: 'TASK#1' }, PK: { S: 'USER#1' } }));
    expect(a).toBeDefined();
    expect(a).toBe(b);
  });

  it('keeps apart keys whose values only concatenate alike', () => {
    const a = laneOfRaw(item, withKeys({ PK: { S: 'a' }, SK: { S: 'bc' } }));
    const b = laneOfRaw(item, withKeys({ PK: { S: 'ab' }, SK: { S: 'c' } }));
    expect(a).not.toBe(b);
  });

  it('tells numbers, binaries and strings of one key attribute apart by value', () => {
    expect(laneOfRaw(item, withKeys({ id: { N: '12' } }))).toBe('12');
    expect(laneOfRaw(item, withKeys({ id: { B: 'AQI=' } }))).toBe('AQI=');
    expect(laneOfRaw(item, withKeys({ id: { S: 'x' } }))).toBe('x');
  });

  it('handles more than two key attributes (not a DynamoDB table, but a record may say so)', () => {
    const a = laneOfRaw(item, withKeys({ C: { S: '3' }, A: { S: '1' }, B: { S: '2' } }));
    expect(a).toBe(laneOfRaw(item, withKeys({ A: { S: '1' }, B: { S: '2' }, C: { S: '3' } })));
    expect(a).not.toBe(laneOfRaw(item, withKeys({ A: { S: '1' }, B: { S: '2' }, C: { S: '4' } })));
  });

  it('is undefined for a key that cannot be read', () => {
    expect(laneOfRaw(item, withKeys({}))).toBeUndefined();
    expect(laneOfRaw(item, withKeys(undefined))).toBeUndefined();
    expect(laneOfRaw(item, withKeys({ PK: { S: 'a' }, SK: { M: {} } }))).toBeUndefined();
    expect(laneOfRaw(item, withKeys({ PK: { S: 'a' }, SK: { S: 'b' }, X: { L: [] } }))).toBeUndefined();
    expect(laneOfRaw(item, null)).toBeUndefined();
  });

  it("uses the partition key alone under ordering: 'partitionKey', and the whole key without it", () => {
    expect(laneOfRaw(byPartition, withKeys({ SK: { S: 'b' }, PK: { S: 'a' } }))).toBe('a');
    expect(laneOfRaw(byPartition, withKeys({ id: { S: 'a' }, SK: { S: 'b' } }))).toBe(laneOfRaw(item, withKeys({ SK: { S: 'b' }, id: { S: 'a' } })));
  });
});
