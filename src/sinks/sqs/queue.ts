import { SQSClient } from '@aws-sdk/client-sqs';
import { ConfigError } from '../../errors.js';
import { SQS_MAX_MESSAGE_BYTES, SQS_MIN_MESSAGE_BYTES } from './constants.js';

/** Where to send and how: what both the sink and the dead-letter queue resolve from their options. */
export interface ResolvedQueue {
  readonly queueUrl: string;
  readonly fifo: boolean;
  readonly client: SQSClient;
  readonly maxMessageBytes: number;
}

/** The options the sink and the dead-letter queue share. */
export interface QueueOptions {
  readonly queueUrl: string;
  readonly fifo?: boolean;
  readonly client?: SQSClient;
  readonly region?: string;
  readonly endpoint?: string;
  readonly maxMessageBytes?: number;
}

export const show = (value: unknown): string => {
  if (typeof value === 'function') return '(function)';
  if (typeof value === 'string') return `\`${JSON.stringify(value)}\` (string)`;
  if (Array.isArray(value)) return '(array)';
  return `\`${String(value)}\` (${value === null ? 'null' : typeof value})`;
};

const QUEUE_NAME = /^[A-Za-z0-9_-]{1,80}$/;

const queueNameOf = (url: string): string | undefined => {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return undefined;
  }
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') return undefined;
  const name = parsed.pathname.split('/').filter(Boolean).at(-1);
  if (name === undefined || name.length > 80 || !QUEUE_NAME.test(name.replace(/\.fifo$/, ''))) return undefined;
  return name;
};

/**
 * Validates what the sink and the dead-letter queue share and builds the client when none is given.
 * `prefix` names the factory in error messages (`sqs`, `sqsDeadLetterQueue`).
 */
export const resolveQueue = (prefix: string, options: QueueOptions): ResolvedQueue => {
  if (!options || typeof options !== 'object') throw new ConfigError(prefix, `needs options, got ${show(options)}. Pass ${prefix}({ queueUrl }).`);
  const { queueUrl } = options;
  const name = typeof queueUrl === 'string' ? queueNameOf(queueUrl) : undefined;
  if (name === undefined) {
    throw new ConfigError(
      `${prefix}.queueUrl`,
      `must be the URL of an SQS queue, https://sqs.<region>.amazonaws.com/<account>/<queue name>, got ${show(queueUrl)}. Set it to the queue's QueueUrl (CreateQueue and GetQueueUrl return it), for example from an environment variable.`,
    );
  }
  const urlSaysFifo = name.endsWith('.fifo');
  const fifo = options.fifo ?? urlSaysFifo;
  if (typeof fifo !== 'boolean') throw new ConfigError(`${prefix}.fifo`, `must be true or false, got ${show(fifo)}. Leave it out to decide from the queue name.`);
  if (fifo !== urlSaysFifo) {
    throw new ConfigError(
      `${prefix}.fifo`,
      `is ${fifo}, but the queue \`${name}\` is ${urlSaysFifo ? 'a FIFO queue (its name ends in .fifo)' : 'a standard queue (a FIFO queue name ends in .fifo)'}. Leave \`fifo\` out to decide from the queue name.`,
    );
  }
  const maxMessageBytes = options.maxMessageBytes ?? SQS_MAX_MESSAGE_BYTES;
  if (typeof maxMessageBytes !== 'number' || !Number.isInteger(maxMessageBytes) || maxMessageBytes < SQS_MIN_MESSAGE_BYTES || maxMessageBytes > SQS_MAX_MESSAGE_BYTES) {
    throw new ConfigError(
      `${prefix}.maxMessageBytes`,
      `must be an integer from ${SQS_MIN_MESSAGE_BYTES} to ${SQS_MAX_MESSAGE_BYTES}, got ${show(maxMessageBytes)}. Set it to the queue's MaximumMessageSize, or leave it out for SQS's maximum (1 MiB).`,
    );
  }
  return { queueUrl: queueUrl as string, fifo, maxMessageBytes, client: resolveClient(prefix, options) };
};

const resolveClient = (prefix: string, options: QueueOptions): SQSClient => {
  const { client, region, endpoint } = options;
  if (client !== undefined) {
    if (client === null || typeof (client as { send?: unknown }).send !== 'function') {
      throw new ConfigError(`${prefix}.client`, `must be an SQSClient, got ${show(client)}. Pass new SQSClient({ maxAttempts: 1 }) or leave it out.`);
    }
    if (region !== undefined || endpoint !== undefined) {
      throw new ConfigError(`${prefix}.${region !== undefined ? 'region' : 'endpoint'}`, 'applies only to the client built when `client` is left out. Set it on the SQSClient you pass instead.');
    }
    return client;
  }
  if (region !== undefined && (typeof region !== 'string' || region === '')) throw new ConfigError(`${prefix}.region`, `must be an AWS region name such as 'eu-west-1', got ${show(region)}.`);
  if (endpoint !== undefined && (typeof endpoint !== 'string' || endpoint === '')) throw new ConfigError(`${prefix}.endpoint`, `must be a URL, got ${show(endpoint)}. Leave it out for the AWS endpoint of the region.`);
  // One retry owner per hop: the engine retries failed entries with backoff, so the SDK must not.
  return new SQSClient({ maxAttempts: 1, ...(region === undefined ? {} : { region }), ...(endpoint === undefined ? {} : { endpoint }) });
};
