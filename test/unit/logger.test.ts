import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/index.js';

const capture = () => {
  const stream = new PassThrough();
  const lines: Record<string, unknown>[] = [];
  stream.on('data', (chunk: Buffer) => {
    for (const line of chunk.toString('utf8').split('\n').filter(Boolean)) lines.push(JSON.parse(line) as Record<string, unknown>);
  });
  return { stream, lines };
};

describe('createLogger', () => {
  it('writes JSON lines, object first and constant message', () => {
    // Prepare
    const { stream, lines } = capture();
    const logger = createLogger({ destination: stream, base: { service: 'tasks' } });

    // Act
    logger.info({ shardId: 'shardId-1', seq: '42' }, 'checkpoint written');

    // Assess
    expect(lines[0]).toMatchObject({ level: 'info', service: 'tasks', shardId: 'shardId-1', seq: '42', msg: 'checkpoint written' });
  });

  it('redacts item images by default, at any of the first levels', () => {
    // Prepare
    const { stream, lines } = capture();
    const logger = createLogger({ destination: stream });

    // Act
    logger.warn({ newImage: { Secret: 'hunter2' }, event: { oldImage: { Secret: 'hunter2' } }, letter: { record: { dynamodb: { NewImage: { Secret: { S: 'hunter2' } } } } } }, 'x');

    // Assess
    expect(JSON.stringify(lines)).not.toContain('hunter2');
    expect(lines[0]?.['newImage']).toBe('[redacted: item image]');
  });

  it('lets images through when logImages is on', () => {
    // Prepare
    const { stream, lines } = capture();
    const logger = createLogger({ destination: stream, logImages: true });

    // Act
    logger.info({ newImage: { Secret: 'hunter2' } }, 'x');

    // Assess
    expect(JSON.stringify(lines)).toContain('hunter2');
  });
});
