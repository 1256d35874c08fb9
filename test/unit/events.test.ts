import { describe, expect, it } from 'vitest';
import { changedAttributes, decodeRecord, entity, isExactNumber, MalformedRecordError } from '../../src/index.js';
import type { AttributeValue, ChangeEvent } from '../../src/index.js';
import { streamRecords, toGetRecordsShape } from '../../src/testing/index.js';

const records = streamRecords({ table: 'TaskApp', region: 'eu-west-1' });
const task = { PK: 'USER#1', SK: 'TASK#1', TaskId: '1', Status: 'OPEN', Version: 1, Tags: new Set(['a', 'b']), Meta: { owner: 'ann', steps: [1, 2] } };

describe('decodeRecord', () => {
  it('decodes the Lambda event record shape', () => {
    // Prepare
    const raw = records.modify(task, { ...task, Status: 'DONE', Version: 2 });

    // Act
    const event = decodeRecord(raw) as ChangeEvent<typeof task>;

    // Assess
    expect(event).toMatchObject({
      kind: 'modify',
      eventID: raw.eventID,
      key: { PK: 'USER#1', SK: 'TASK#1' },
      newImage: { Status: 'DONE', Version: 2, Tags: new Set(['a', 'b']) },
      oldImage: { Status: 'OPEN', Version: 1 },
      changed: ['Status', 'Version'],
      expired: false,
      meta: { table: 'TaskApp', region: 'eu-west-1', streamArn: records.streamArn, sequenceNumber: raw.dynamodb.SequenceNumber, eventID: raw.eventID },
    });
    expect(event.meta.approximateCreationTime).toBe(raw.dynamodb.ApproximateCreationDateTime * 1000);
  });

  it('decodes the GetRecords shape to the same event', () => {
    // Prepare: GetRecords has a Date, no eventSourceARN and a capitalised userIdentity.
    const raw = records.remove(task, { eventID: 'ttl-1' });
    const ttl = { ...raw, userIdentity: { type: 'Service' as const, principalId: 'dynamodb.amazonaws.com' as const } };

    // Act
    const fromLambda = decodeRecord(ttl, { shardId: 'shardId-1' });
    const fromGetRecords = decodeRecord(toGetRecordsShape(ttl), { streamArn: records.streamArn, shardId: 'shardId-1' });

    // Assess
    expect(fromGetRecords).toEqual(fromLambda);
    expect(fromGetRecords.expired).toBe(true);
    expect(fromGetRecords.kind).toBe('remove');
  });

  it('marks only deletes by the DynamoDB service as expired', () => {
    expect(decodeRecord(records.remove(task)).expired).toBe(false);
    expect(decodeRecord(records.remove(task, { ttl: true })).expired).toBe(true);
  });

  it('compares images deeply: nested maps, lists and sets in any order', () => {
    // Prepare
    const before: Record<string, AttributeValue> = { A: { SS: ['x', 'y'] }, B: { M: { c: { L: [{ N: '1' }, { S: 'z' }] } } }, C: { N: '1.50' }, D: { S: 'same' } };
    const after: Record<string, AttributeValue> = { A: { SS: ['y', 'x'] }, B: { M: { c: { L: [{ N: '1' }, { S: 'Z' }] } } }, C: { N: '1.5' }, E: { BOOL: true } };

    // Act
    const changed = changedAttributes(before, after);

    // Assess: set order and number spelling do not count; a nested change, a removal and an addition do.
    expect(changed).toEqual(['B', 'D', 'E']);
  });

  it('lists every attribute as changed for inserts and removes', () => {
    expect(decodeRecord(records.insert({ PK: 'USER#1', SK: 'A', X: 1 })).changed).toEqual(['PK', 'SK', 'X']);
    expect(decodeRecord(records.remove({ PK: 'USER#1', SK: 'A', Y: 1 })).changed).toEqual(['PK', 'SK', 'Y']);
  });

  it('resolves the entity from the key', () => {
    // Prepare
    const Task = entity('Task', { key: { PK: 'USER#', SK: /^TASK#\d+$/ } });
    const User = entity('User', { key: { PK: 'USER#', SK: 'PROFILE' } });
    const entityOf = (keys: Readonly<Record<string, AttributeValue>>) => [Task, User].find((e) => e.matches(keys))?.name;

    // Act / Assess
    expect(decodeRecord(records.insert(task), { entityOf }).entity).toBe('Task');
    expect(decodeRecord(records.insert({ PK: 'USER#1', SK: 'PROFILE' }), { entityOf }).entity).toBe('User');
    expect(decodeRecord(records.insert({ PK: 'ORG#1', SK: 'TASK#1' }), { entityOf }).entity).toBeUndefined();
  });

  describe('numbers', () => {
    const big = { PK: 'USER#1', SK: 'N' };
    const withNumber = (n: string) => {
      const raw = records.insert(big);
      raw.dynamodb.NewImage = { ...raw.dynamodb.NewImage, Amount: { N: n } };
      return raw;
    };

    it('keeps exact numbers as JS numbers', () => {
      expect(decodeRecord(withNumber('12.25')).newImage?.['Amount']).toBe(12.25);
      expect(decodeRecord(withNumber('9007199254740991')).newImage?.['Amount']).toBe(9007199254740991);
    });

    it('never rounds silently: a number that would lose digits fails the record', () => {
      expect(() => decodeRecord(withNumber('12345678901234567890123'))).toThrow(MalformedRecordError);
      expect(() => decodeRecord(withNumber('0.12345678901234567890123'))).toThrow(/numbers: 'auto'/);
    });

    it("keeps every digit with numbers: 'auto' and 'exact'", () => {
      const auto = decodeRecord(withNumber('12345678901234567890123'), { numbers: 'auto' }).newImage?.['Amount'];
      expect(String(auto)).toBe('12345678901234567890123');
      expect(decodeRecord(withNumber('7'), { numbers: 'auto' }).newImage?.['Amount']).toBe(7);
      expect(String(decodeRecord(withNumber('7'), { numbers: 'exact' }).newImage?.['Amount'])).toBe('7');
      expect(typeof decodeRecord(withNumber('7'), { numbers: 'exact' }).newImage?.['Amount']).toBe('object');
    });

    const NS_DIGITS = '12345678901234567890123456789012345678'; // 38 significant digits
    const VALID: readonly (readonly [string, string])[] = [
      ['zero', '0'],
      ['negative zero', '-0'],
      ['zero with a fraction and a huge exponent', '0.000e999'],
      ['leading zeros, which do not count', `000${NS_DIGITS}`],
      ['leading zeros after the point', `0.000${NS_DIGITS}`],
      ['trailing zeros of an integer, which do not count', `1${'0'.repeat(40)}`],
      ['38 significant digits', NS_DIGITS],
      ['a bare fraction', '.5'],
      ['a trailing point', '5.'],
      ['an exponent', '1e5'],
      ['a signed exponent', '-1.5E-3'],
      ['a plus sign', '+7'],
      ['the smallest magnitude', '1E-130'],
      ['the smallest negative magnitude', '-1E-130'],
      ['the largest magnitude', `9.${'9'.repeat(37)}E+125`],
      ['the largest negative magnitude', `-9.${'9'.repeat(37)}E+125`],
    ];
    const INVALID: readonly (readonly [string, string, RegExp])[] = [
      ['letters', 'abc', /not a decimal number/],
      ['the empty string', '', /not a decimal number/],
      ['a lone point', '.', /not a decimal number/],
      ['a lone sign', '-', /not a decimal number/],
      ['a space', ' 1', /not a decimal number/],
      ['a trailing space', '1 ', /not a decimal number/],
      ['an exponent without digits', '1e', /not a decimal number/],
      ['an exponent without a mantissa', 'e5', /not a decimal number/],
      ['two points', '1.2.3', /not a decimal number/],
      ['two signs', '--1', /not a decimal number/],
      ['digit separators', '1_000', /not a decimal number/],
      ['hexadecimal', '0x10', /not a decimal number/],
      ['Infinity', 'Infinity', /not a decimal number/],
      ['NaN', 'NaN', /not a decimal number/],
      ['39 significant digits', `${NS_DIGITS}9`, /39 significant digits/],
      ['39 significant digits around a point', `1.${'0'.repeat(37)}1`, /39 significant digits/],
      ['a magnitude too large', '1E+126', /larger in magnitude/],
      ['a negative magnitude too large', '-1E+126', /larger in magnitude/],
      ['an overflowing exponent', '1e999', /larger in magnitude/],
      ['a magnitude too small', '1E-131', /smaller in magnitude/],
      ['just below the smallest magnitude', `9.${'9'.repeat(37)}E-131`, /smaller in magnitude/],
    ];
    /** A modify whose image holds `n` at `where`, or a remove without images whose key is `n`. */
    const placed = (n: string, where: 'top' | 'set' | 'list' | 'map' | 'old' | 'key') => {
      const raw = where === 'key' ? records.remove({ PK: 'USER#1', SK: 'N' }) : records.modify({ PK: 'USER#1', SK: 'N' }, { PK: 'USER#1', SK: 'N' });
      const d = raw.dynamodb as { NewImage?: Record<string, AttributeValue>; OldImage?: Record<string, AttributeValue>; Keys: Record<string, AttributeValue> };
      if (where === 'key') {
        d.Keys = { Id: { N: n } };
        delete d.NewImage;
        delete d.OldImage;
        return raw;
      }
      if (!d.NewImage || !d.OldImage) throw new Error('a modify has both images');
      if (where === 'top') d.NewImage['Amount'] = { N: n };
      if (where === 'set') d.NewImage['Sizes'] = { NS: ['1', n] };
      if (where === 'list') d.NewImage['Lines'] = { L: [{ S: 'x' }, { M: { Cost: { N: n } } }] };
      if (where === 'map') d.NewImage['Totals'] = { M: { Net: { N: '1' }, Gross: { N: n } } };
      if (where === 'old') d.OldImage['Amount'] = { N: n };
      return raw;
    };
    const PATHS = [
      ['top', 'dynamodb.NewImage.Amount'],
      ['set', 'dynamodb.NewImage.Sizes[1]'],
      ['list', 'dynamodb.NewImage.Lines[1].Cost'],
      ['map', 'dynamodb.NewImage.Totals.Gross'],
      ['old', 'dynamodb.OldImage.Amount'],
      ['key', 'dynamodb.Keys.Id'],
    ] as const;

    it.each(VALID)('accepts %s as a DynamoDB number in every mode', (_what, n) => {
      for (const numbers of ['auto', 'exact'] as const) for (const [where] of PATHS) expect(() => decodeRecord(placed(n, where), { numbers })).not.toThrow();
      // 'number' mode takes it too, or refuses it only for the digits a JS number would lose.
      for (const [where] of PATHS) {
        try {
          decodeRecord(placed(n, where));
        } catch (error) {
          expect(String(error)).toMatch(/without losing digits/);
        }
      }
    });

    it.each(INVALID)('rejects %s in every mode and everywhere in an image, naming the attribute and what is wrong', (_what, n, problem) => {
      for (const numbers of ['number', 'auto', 'exact'] as const) {
        for (const [where, path] of PATHS) {
          let thrown: unknown;
          try {
            decodeRecord(placed(n, where), { numbers });
          } catch (error) {
            thrown = error;
          }
          expect(thrown, `${numbers} mode, ${where}`).toBeInstanceOf(MalformedRecordError);
          const message = (thrown as Error).message;
          expect(message).toContain(`${path} is not a DynamoDB number`);
          expect(message).toMatch(problem);
          // No mode is recommended that would take the value; the value stays out of the message.
          expect(message).not.toMatch(/numbers: '/);
          if (n.length > 3) expect(message).not.toContain(n);
        }
      }
    });

    it("names the attribute of a number that 'number' mode cannot hold exactly", () => {
      expect(() => decodeRecord(placed(NS_DIGITS, 'map'))).toThrow(/dynamodb\.NewImage\.Totals\.Gross .*numbers: 'auto'/);
    });

    it('tells exact conversions from lossy ones', () => {
      expect(isExactNumber('1e3', 1000)).toBe(true);
      expect(isExactNumber('0.10', 0.1)).toBe(true);
      expect(isExactNumber('-0.000001', -0.000001)).toBe(true);
      expect(isExactNumber('9007199254740993', 9007199254740992)).toBe(false);
    });
  });

  describe('malformed records', () => {
    const good = records.insert(task);
    it.each([
      ['not an object', 'x', /not an object/],
      ['an unknown eventName', { ...good, eventName: 'UPSERT' }, /eventName "UPSERT"/],
      ['no eventID', { ...good, eventID: undefined }, /no eventID/],
      ['no dynamodb section', { ...good, dynamodb: undefined }, /no dynamodb section/],
      ['no sequence number', { ...good, dynamodb: { ...good.dynamodb, SequenceNumber: undefined } }, /SequenceNumber/],
      ['no keys', { ...good, dynamodb: { ...good.dynamodb, Keys: {} } }, /Keys/],
      ['no new image on an insert', { ...good, dynamodb: { ...good.dynamodb, NewImage: undefined } }, /NEW_IMAGE or NEW_AND_OLD_IMAGES/],
      ['a bad attribute value', { ...good, dynamodb: { ...good.dynamodb, NewImage: { PK: { X: 1 } } } }, /NewImage is not a valid DynamoDB image/],
      ['no stream ARN in the GetRecords shape', { ...good, eventSourceARN: undefined }, /no eventSourceARN/],
    ])('rejects a record with %s, naming what is wrong', (_what, raw, message) => {
      expect(() => decodeRecord(raw)).toThrow(message);
      expect(() => decodeRecord(raw)).toThrow(MalformedRecordError);
    });
  });
});

describe('unmarshalling', () => {
  it('gives exactly what @aws-sdk/util-dynamodb unmarshall gives, for every attribute type', async () => {
    // Prepare: items with every DynamoDB type, nested, built by marshall.
    const { marshall, unmarshall } = await import('@aws-sdk/util-dynamodb');
    const items = Array.from({ length: 50 }, (_, i) => ({
      PK: `USER#${i}`,
      SK: `ITEM#${i}`,
      S: 'text ✓ ü',
      Empty: '',
      N: i * 1.5,
      Neg: -i,
      Bool: i % 2 === 0,
      Nil: null,
      Bin: new Uint8Array([i, 1, 2]),
      SS: new Set([`a${i}`, 'b']),
      NS: new Set([i, 2.5]),
      BS: new Set([new Uint8Array([1]), new Uint8Array([2, i])]),
      L: [1, 'two', { three: [3, { four: null }] }, [true, false], new Set(['x'])],
      M: { a: { b: { c: [i, `${i}`] } }, empty: {}, list: [] },
    }));
    const records = streamRecords();

    for (const item of items) {
      const raw = records.insert(item);
      // Act
      const event = decodeRecord(raw);
      const exact = decodeRecord(raw, { numbers: 'exact' });

      // Assess
      expect(event.newImage).toEqual(unmarshall(marshall(item) as never));
      expect(exact.newImage).toEqual(unmarshall(marshall(item) as never, { wrapNumbers: true }));
    }
  });
});

describe('changed of inserts and removes (attribute names, sorted)', () => {
  it('is right whatever the previous record carried: same names, other order, other set, none', () => {
    // Prepare
    const records = streamRecords();
    const a = decodeRecord(records.insert({ PK: 'A', SK: '1', Zeta: 1, Alpha: 2 }));
    const b = decodeRecord(records.insert({ PK: 'B', SK: '2', Zeta: 3, Alpha: 4 }));
    const c = decodeRecord(records.insert({ PK: 'C', SK: '3', Alpha: 5, Zeta: 6 }));
    const d = decodeRecord(records.remove({ PK: 'D', SK: '4', Mid: 'x' }));
    const e = decodeRecord(records.insert({ PK: 'E', SK: '5', Zeta: 1, Alpha: 2, Extra: true }));

    // Assess
    expect(a.changed).toEqual(['Alpha', 'PK', 'SK', 'Zeta']);
    expect(b.changed).toEqual(['Alpha', 'PK', 'SK', 'Zeta']);
    expect(c.changed).toEqual(['Alpha', 'PK', 'SK', 'Zeta']);
    expect(d.changed).toEqual(['Mid', 'PK', 'SK']);
    expect(e.changed).toEqual(['Alpha', 'Extra', 'PK', 'SK', 'Zeta']);
    // Shared between events, so nobody may change it.
    expect(Object.isFrozen(b.changed)).toBe(true);
  });
});
