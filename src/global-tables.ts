import { ConfigError } from './errors.js';
import type { ChangeEvent } from './events.js';

/**
 * For a table that is a replica of a global table: which of its stream's changes to deliver. Every
 * replica's stream holds every change, wherever it was written, so an app deployed in each region
 * would deliver each change once per region; with `deliver: 'local-writes'` each region delivers
 * only the changes written in it. See docs/global-tables.md.
 */
export interface GlobalTableOptions {
  /** `'local-writes'`: only changes written in this region; the others end `replicated` (done, not delivered). */
  readonly deliver: 'local-writes';
  /**
   * This region.
   * @default the region of the stream a record comes from (its `awsRegion`, else the stream ARN's)
   */
  readonly region?: string;
  /**
   * An attribute your writers stamp on every item with the region they write in, such as
   * `writtenIn: 'eu-west-1'`. Needed with global tables version 2019.11.21, which writes no
   * attribute of its own; version 2017.11.29 (legacy) writes `aws:rep:updateregion`, which is read
   * first. Without either, a change is delivered (never dropped on a guess).
   * @default none
   */
  readonly regionAttribute?: string;
}

/** What legacy (2017.11.29) global tables write on every item, in every region. */
const LEGACY_REGION = 'aws:rep:updateregion';
const LEGACY_PREFIX = 'aws:rep:';

const stringAt = (image: unknown, attribute: string): string | undefined => {
  const value = (image as Record<string, unknown> | undefined)?.[attribute];
  return typeof value === 'string' && value !== '' ? value : undefined;
};

/**
 * Where a change was written, as far as its images tell: a region, `'replication'` for legacy
 * global tables' own bookkeeping (a modify that changed only `aws:rep:*` attributes, which follows
 * every write), or `undefined` when they do not say. A remove is judged by its old image: the region
 * that wrote the item's last state.
 */
export const writtenIn = (event: ChangeEvent<unknown>, regionAttribute?: string): string | undefined => {
  const image = event.kind === 'remove' ? event.oldImage : event.newImage;
  if (event.kind === 'modify' && event.changed.length > 0 && event.changed.every((name) => name.startsWith(LEGACY_PREFIX))) return 'replication';
  const legacy = stringAt(image, LEGACY_REGION);
  // Legacy tables stamp a write after it lands (the bookkeeping modify above): the user's own write
  // still carries the previous write's stamps, so they name this change's region only when this
  // change set them (an insert, a remove's last state, or a modify that changed them).
  if (legacy !== undefined && (event.kind !== 'modify' || event.oldImage === undefined || event.changed.some((name) => name.startsWith(LEGACY_PREFIX)))) return legacy;
  if (regionAttribute !== undefined) {
    const stamped = stringAt(image, regionAttribute);
    if (stamped !== undefined) return stamped;
  }
  return undefined;
};

const show = (value: unknown): string => (typeof value === 'string' ? `\`${JSON.stringify(value)}\` (string)` : `\`${String(value)}\` (${value === null ? 'null' : typeof value})`);

/**
 * Validates `globalTable` and returns the test the engine applies to every decoded event: true when
 * the change was written by replication (in another region, or legacy bookkeeping), so it is not
 * delivered here.
 */
export const replicationFilter = (options: GlobalTableOptions): ((event: ChangeEvent<unknown>) => boolean) => {
  if (options === null || typeof options !== 'object') throw new ConfigError('globalTable', `must be an object, got ${show(options)}. Set globalTable: { deliver: 'local-writes', regionAttribute: 'writtenIn' }.`);
  if (options.deliver !== 'local-writes') throw new ConfigError('globalTable.deliver', `must be 'local-writes', got ${show(options.deliver)}. Leave globalTable out to deliver every change.`);
  for (const field of ['region', 'regionAttribute'] as const) {
    const value = options[field];
    if (value !== undefined && (typeof value !== 'string' || value.trim() === '')) throw new ConfigError(`globalTable.${field}`, `must be a non-empty string, got ${show(value)}. Leave it out for the default.`);
  }
  const { region, regionAttribute } = options;
  return (event) => {
    const origin = writtenIn(event, regionAttribute);
    if (origin === undefined) return false;
    if (origin === 'replication') return true;
    const here = region ?? event.meta.region;
    return here !== undefined && origin !== here;
  };
};
