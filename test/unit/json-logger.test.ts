import { describe, expect, it } from 'vitest';
import { createJsonLogger } from '../../src/index.js';

const capture = () => {
  const lines: Record<string, unknown>[] = [];
  const write = (line: string) => {
    expect(line.endsWith('\n')).toBe(true);
    lines.push(JSON.parse(line) as Record<string, unknown>);
  };
  return { write, lines };
};

describe('createJsonLogger', () => {
  it('writes one JSON line per call in createLogger\'s shape: level label, ISO time, bindings, fields, msg', () => {
    // Prepare
    const { write, lines } = capture();
    const logger = createJsonLogger({ write, base: { service: 'tasks' }, level: 'info' });

    // Act
    logger.child({ requestId: 'r-1' }).info({ shardId: 'shardId-1', seq: '42' }, 'checkpoint written');
    logger.warn('plain message');

    // Assess
    expect(lines[0]).toMatchObject({ level: 'info', service: 'tasks', requestId: 'r-1', shardId: 'shardId-1', seq: '42', msg: 'checkpoint written' });
    expect(Date.parse(String(lines[0]?.['time']))).not.toBeNaN();
    expect(lines[1]).toMatchObject({ level: 'warn', msg: 'plain message' });
  });

  it('drops lines below its level, and names the variable for an unknown level', () => {
    // Prepare
    const { write, lines } = capture();
    const logger = createJsonLogger({ write, level: 'warn' });

    // Act
    logger.debug('no');
    logger.info({ a: 1 }, 'no');
    logger.error('yes');

    // Assess
    expect(lines.map((l) => l['msg'])).toEqual(['yes']);
    expect(() => createJsonLogger({ level: 'loud' })).toThrow(/Unknown log level `loud` \(from the `level` option\): use one of trace, debug, info, warn, error, fatal, silent/);
  });

  it('redacts item images at any depth by default, and lets them through when logImages is on', () => {
    // Prepare
    const redacted = capture();
    const open = capture();
    const payload = { newImage: { Secret: 'hunter2' }, event: { oldImage: { Secret: 'hunter2' } }, letter: { record: { dynamodb: { NewImage: { Secret: { S: 'hunter2' } } } } }, deeper: [{ a: { b: { c: { OldImage: 'hunter2' } } } }] };

    // Act
    createJsonLogger({ write: redacted.write }).warn(payload, 'x');
    createJsonLogger({ write: open.write, logImages: true }).warn(payload, 'x');

    // Assess
    expect(JSON.stringify(redacted.lines)).not.toContain('hunter2');
    expect(redacted.lines[0]?.['newImage']).toBe('[redacted: item image]');
    expect(JSON.stringify(open.lines).match(/hunter2/g)).toHaveLength(4);
  });

  it('serializes errors as { type, message, stack } with their own fields and cause, and survives cycles and bigints', () => {
    // Prepare
    const { write, lines } = capture();
    const logger = createJsonLogger({ write });
    const error = Object.assign(new TypeError('boom', { cause: new Error('root') }), { code: 'E_BOOM' });
    Object.assign(error, { self: error });
    const cyclic: Record<string, unknown> = { n: 1n };
    cyclic['me'] = cyclic;
    const shared = { x: 1 };

    // Act
    logger.error({ err: error, cyclic, a: shared, b: shared }, 'failed');

    // Assess
    const err = lines[0]?.['err'] as Record<string, unknown>;
    expect(err).toMatchObject({ type: 'TypeError', message: 'boom', code: 'E_BOOM', self: '[Circular]', cause: { type: 'Error', message: 'root' } });
    expect(String(err['stack'])).toContain('TypeError: boom');
    expect(lines[0]?.['cyclic']).toEqual({ n: '1', me: '[Circular]' });
    expect(lines[0]).toMatchObject({ a: { x: 1 }, b: { x: 1 } });
  });

  it('still writes the message when a field cannot be serialized', () => {
    // Prepare
    const { write, lines } = capture();
    const logger = createJsonLogger({ write });

    // Act
    logger.info({ bad: { toJSON: () => { throw new Error('no'); } } }, 'still here');

    // Assess
    expect(lines[0]).toMatchObject({ level: 'info', msg: 'still here', logError: 'Error: no' });
  });
});
