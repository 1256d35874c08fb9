import { describe, expect, it } from 'vitest';
import { matchesFilterPattern, passesFilterCriteria, streamRecords } from '../../src/testing/index.js';

/**
 * The evaluator against the examples of AWS's Lambda documentation ("Filter rule syntax" table and
 * "Using event filtering with a DynamoDB event source"), each with a record it must match and one
 * it must not.
 */
describe('matchesFilterPattern', () => {
  const table: [name: string, pattern: Record<string, unknown>, matches: unknown, misses: unknown][] = [
    ['null', { UserID: [null] }, { UserID: null }, { UserID: 'u1' }],
    ['empty', { LastName: [''] }, { LastName: '' }, { LastName: 'Doe' }],
    ['equals', { Name: ['Alice'] }, { Name: 'Alice' }, { Name: 'alice' }],
    ['equals (ignore case)', { Name: [{ 'equals-ignore-case': 'alice' }] }, { Name: 'ALICE' }, { Name: 'Bob' }],
    ['and', { Location: ['New York'], Day: ['Monday'] }, { Location: 'New York', Day: 'Monday' }, { Location: 'New York', Day: 'Tuesday' }],
    ['or', { PaymentType: ['Credit', 'Debit'] }, { PaymentType: 'Debit' }, { PaymentType: 'Cash' }],
    ['or (multiple fields)', { $or: [{ Location: ['New York'] }, { Day: ['Monday'] }] }, { Location: 'Boston', Day: 'Monday' }, { Location: 'Boston', Day: 'Friday' }],
    ['not', { Weather: [{ 'anything-but': ['Raining'] }] }, { Weather: 'Sunny' }, { Weather: 'Raining' }],
    ['numeric (equals)', { Price: [{ numeric: ['=', 100] }] }, { Price: 100 }, { Price: 101 }],
    ['numeric (range)', { Price: [{ numeric: ['>', 10, '<=', 20] }] }, { Price: 20 }, { Price: 10 }],
    ['exists', { ProductName: [{ exists: true }] }, { ProductName: 'x' }, { Other: 'x' }],
    ['does not exist', { ProductName: [{ exists: false }] }, { Other: 'x' }, { ProductName: 'x' }],
    ['begins with', { Region: [{ prefix: 'us-' }] }, { Region: 'us-east-1' }, { Region: 'eu-west-1' }],
    ['ends with', { FileName: [{ suffix: '.png' }] }, { FileName: 'cat.png' }, { FileName: 'cat.jpg' }],
  ];

  it.each(table)('%s', (_name, pattern, matches, misses) => {
    expect(matchesFilterPattern(pattern, matches)).toBe(true);
    expect(matchesFilterPattern(pattern, misses)).toBe(false);
  });

  const records = streamRecords({ keyAttributes: ['CustomerName'] });
  const customer = { CustomerName: 'AnyCompany Industries', AccountManager: 'Pat Candella', PaymentTerms: '60 days' };

  it('filters on a table key, as in the DynamoDB example', () => {
    const pattern = JSON.stringify({ dynamodb: { Keys: { CustomerName: { S: ['AnyCompany Industries'] } } } });
    expect(matchesFilterPattern(pattern, records.insert(customer))).toBe(true);
    expect(matchesFilterPattern(pattern, records.insert({ ...customer, CustomerName: 'Other Co' }))).toBe(false);
  });

  it('filters on an attribute of the new image, and on its absence with exists: false', () => {
    const terms = { dynamodb: { NewImage: { PaymentTerms: { S: ['60 days'] } } } };
    const noManager = { dynamodb: { NewImage: { AccountManager: { S: [{ exists: false }] } } } };
    expect(matchesFilterPattern(terms, records.insert(customer))).toBe(true);
    // A REMOVE has no NewImage: an image condition drops it.
    expect(matchesFilterPattern(terms, records.remove(customer))).toBe(false);
    expect(matchesFilterPattern(noManager, records.insert(customer))).toBe(false);
    expect(matchesFilterPattern(noManager, records.insert({ CustomerName: 'Solo' }))).toBe(true);
  });

  it("matches TTL deletes by the TTL documentation's userIdentity pattern", () => {
    const ttl = { userIdentity: { type: ['Service'], principalId: ['dynamodb.amazonaws.com'] } };
    expect(matchesFilterPattern(ttl, records.remove(customer, { ttl: true }))).toBe(true);
    expect(matchesFilterPattern(ttl, records.remove(customer))).toBe(false);
  });

  it('matches a record when one element of a list in it matches', () => {
    expect(matchesFilterPattern({ tags: ['b'] }, { tags: ['a', 'b'] })).toBe(true);
    expect(matchesFilterPattern({ tags: ['c'] }, { tags: ['a', 'b'] })).toBe(false);
  });

  it('passes every record without criteria, and a record any filter matches with them', () => {
    const insert = records.insert(customer);
    expect(passesFilterCriteria(undefined, insert)).toBe(true);
    expect(passesFilterCriteria({ Filters: [{ Pattern: '{"eventName":["REMOVE"]}' }, { Pattern: '{"eventName":["INSERT"]}' }] }, insert)).toBe(true);
    expect(passesFilterCriteria({ Filters: [{ Pattern: '{"eventName":["REMOVE"]}' }] }, insert)).toBe(false);
  });

  it('throws on an operator it does not know, rather than guess', () => {
    expect(() => matchesFilterPattern({ a: [{ wildcard: '*x' }] }, { a: 'yx' })).toThrow(/wildcard/);
  });
});
