import type { FleetState, Lease, LeaseStore, NewLease } from '../worker/ports.js';

const keyOf = (streamArn: string, shardId: string) => `${streamArn}|${shardId}`;

/** Read and write capacity units consumed, metered the way DynamoDB bills them (on-demand request units). */
export interface LeaseCapacity {
  /** Read units: 4 KB per unit (rounded up per request or Scan page), half for eventually consistent reads. */
  read: number;
  /** Write units: 1 KB per unit of the larger of the item before and after (rounded up per item), failed conditions included. */
  write: number;
  /** Requests sent, per DynamoDB operation. */
  readonly requests: Record<'GetItem' | 'Scan' | 'PutItem' | 'UpdateItem' | 'DeleteItem', number>;
  /** Write units per store call (`take`, `renew`, `checkpoint`, ...). */
  readonly writeBy: Record<string, number>;
  /** Read units per store call (`list`, ...). */
  readonly readBy: Record<string, number>;
}

/** Largest Scan page DynamoDB returns: 1 MB of items read (before any filter). */
const SCAN_PAGE_BYTES = 1024 * 1024;
const READ_UNIT = 4096;
const WRITE_UNIT = 1024;

/** Size of a DynamoDB string attribute value (UTF-8 bytes). */
const s = (value: string): number => Buffer.byteLength(value, 'utf8');
/** Size of a number: about one byte per two significant digits, plus one. */
const num = (value: number): number => Math.ceil(String(value).replace(/^-|\./g, '').length / 2) + 1;
/** A list: 3 bytes plus one byte and the size of each element. */
const list = (values: readonly string[]): number => 3 + values.reduce((n, v) => n + 1 + s(v), 0);

/**
 * The size DynamoDB bills for a lease item as `dynamoDbLeaseStore` writes it (attribute names count
 * too): https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CapacityUnitCalculations.html
 */
export const leaseItemBytes = (lease: Lease): number =>
  s('leaseKey') + s(keyOf(lease.streamArn, lease.shardId)) +
  s('streamArn') + s(lease.streamArn) +
  s('shardId') + s(lease.shardId) +
  (lease.owner === undefined ? 0 : s('owner') + s(lease.owner)) +
  s('counter') + num(lease.counter) +
  s('checkpoint') + s(lease.checkpoint) +
  s('parents') + list(lease.parents) +
  s('doneAbove') + list(lease.doneAbove) +
  s('updatedAt') + num(1_767_225_600_000);

interface FleetItem {
  readonly beats: Map<string, string>;
  version: number;
}

/** Size of the fleet item as `dynamoDbLeaseStore` writes it: key, stream, the `beats` map, `version`, `updatedAt`. */
export const fleetItemBytes = (streamArn: string, fleet: FleetItem | undefined): number => {
  if (!fleet) return 0;
  let beats = 3;
  for (const [id, token] of fleet.beats) beats += 1 + s(id) + s(token);
  return s('leaseKey') + s(`${streamArn}|@fleet`) + s('streamArn') + s(streamArn) + s('beats') + beats + s('version') + num(fleet.version) + s('updatedAt') + num(1_767_225_600_000);
};

const writeUnits = (...bytes: number[]): number => Math.max(1, Math.ceil(Math.max(...bytes) / WRITE_UNIT));

/**
 * A lease table in memory with the same conditional semantics as the DynamoDB one: every lease
 * write but `create` checks the owner and the fencing counter, heartbeats check the token. `failNext` makes calls fail, to test how
 * the worker rides out a lease table that is briefly unavailable. `capacity` meters the read and
 * write units the same calls would consume on DynamoDB (bench:scale reports them).
 */
export class MemoryLeaseStore implements LeaseStore {
  readonly #items = new Map<string, Lease>();
  readonly #fleets = new Map<string, FleetItem>();
  #failures = 0;
  readonly calls = { create: 0, list: 0, take: 0, fleet: 0, beat: 0, unregister: 0, touch: 0, checkpoint: 0, release: 0, remove: 0 };
  readonly capacity: LeaseCapacity = { read: 0, write: 0, requests: { GetItem: 0, Scan: 0, PutItem: 0, UpdateItem: 0, DeleteItem: 0 }, writeBy: {}, readBy: {} };

  /** The next `count` calls reject with a transient error. */
  failNext(count: number): this {
    this.#failures = count;
    return this;
  }

  /** A lease as stored now. */
  get(streamArn: string, shardId: string): Lease | undefined {
    return this.#items.get(keyOf(streamArn, shardId));
  }

  #gate(): void {
    if (this.#failures > 0) {
      this.#failures--;
      throw Object.assign(new Error('Lease table unavailable'), { name: 'InternalServerError', $metadata: { httpStatusCode: 500 } });
    }
  }

  /** Meters one write request on an item: the larger of its size before and after, failed conditions included. */
  #meterWrite(call: string, op: 'PutItem' | 'UpdateItem' | 'DeleteItem', before: Lease | undefined, after: Lease | undefined): void {
    this.capacity.requests[op]++;
    const units = writeUnits(before ? leaseItemBytes(before) : 0, after ? leaseItemBytes(after) : 0);
    this.capacity.write += units;
    this.capacity.writeBy[call] = (this.capacity.writeBy[call] ?? 0) + units;
  }

  #meterRead(call: string, units: number): void {
    this.capacity.read += units;
    this.capacity.readBy[call] = (this.capacity.readBy[call] ?? 0) + units;
  }

  #update(call: string, lease: Lease, next: Partial<Lease>, requireOwner: boolean): Lease | undefined {
    const key = keyOf(lease.streamArn, lease.shardId);
    const current = this.#items.get(key);
    if (!current || current.counter !== lease.counter || (requireOwner && (lease.owner === undefined || current.owner !== lease.owner))) {
      this.#meterWrite(call, 'UpdateItem', current, undefined);
      return undefined;
    }
    const updated = { ...current, ...next };
    this.#meterWrite(call, 'UpdateItem', current, updated);
    this.#items.set(key, updated);
    return updated;
  }

  async create(lease: NewLease): Promise<boolean> {
    this.calls.create++;
    this.#gate();
    const key = keyOf(lease.streamArn, lease.shardId);
    const existing = this.#items.get(key);
    const item = { ...lease, owner: undefined, counter: 0, doneAbove: [] };
    this.#meterWrite('create', 'PutItem', existing, item);
    if (existing) return false;
    this.#items.set(key, item);
    return true;
  }

  /** A paginated, eventually consistent Scan of the whole table (fleet items included), filtered on the stream. */
  async list(streamArn: string): Promise<Lease[]> {
    this.calls.list++;
    this.#gate();
    this.#meterScan('list', false);
    return [...this.#items.values()].filter((l) => l.streamArn === streamArn);
  }

  /** The fleet item as stored now (for tests). */
  fleetNow(streamArn: string): FleetState {
    const fleet = this.#fleets.get(streamArn);
    return { beats: new Map(fleet?.beats ?? []), version: fleet?.version ?? 0 };
  }

  async fleet(streamArn: string, consistent: boolean): Promise<FleetState> {
    this.calls.fleet++;
    this.#gate();
    this.capacity.requests.GetItem++;
    this.#meterRead(consistent ? 'fleet (consistent)' : 'fleet', Math.max(1, Math.ceil(fleetItemBytes(streamArn, this.#fleets.get(streamArn)) / READ_UNIT)) * (consistent ? 1 : 0.5));
    return this.fleetNow(streamArn);
  }

  /** One UpdateItem on the fleet item, metered on its size before and after; `change` returns false for a failed condition. */
  #fleetWrite(call: string, streamArn: string, change: (fleet: FleetItem) => boolean): boolean {
    this.#gate();
    const fleet = this.#fleets.get(streamArn) ?? { beats: new Map<string, string>(), version: 0 };
    const before = fleetItemBytes(streamArn, this.#fleets.get(streamArn));
    const ok = change(fleet);
    if (ok) this.#fleets.set(streamArn, fleet);
    this.capacity.requests.UpdateItem++;
    const units = writeUnits(before, ok ? fleetItemBytes(streamArn, fleet) : 0);
    this.capacity.write += units;
    this.capacity.writeBy[call] = (this.capacity.writeBy[call] ?? 0) + units;
    return ok;
  }

  async beat(streamArn: string, workerId: string, previous: string | undefined, next: string, join = false): Promise<boolean> {
    this.calls.beat++;
    return this.#fleetWrite(join ? 'join' : 'beat', streamArn, (fleet) => {
      if (fleet.beats.get(workerId) !== previous) return false;
      fleet.beats.set(workerId, next);
      if (join) fleet.version++;
      return true;
    });
  }

  async unregister(streamArn: string, workerId: string, token: string): Promise<boolean> {
    this.calls.unregister++;
    return this.#fleetWrite('unregister', streamArn, (fleet) => {
      if (fleet.beats.get(workerId) !== token) return false;
      fleet.beats.delete(workerId);
      fleet.version++;
      return true;
    });
  }

  async touch(streamArn: string): Promise<void> {
    this.calls.touch++;
    this.#fleetWrite('touch', streamArn, (fleet) => {
      fleet.version++;
      return true;
    });
  }

  /** Meters a Scan of every item: pages of at most 1 MB, each rounded up to 4 KB units. */
  #meterScan(call: string, consistent: boolean): void {
    let page = 0;
    const endPage = () => {
      this.capacity.requests.Scan++;
      this.#meterRead(call, Math.max(1, Math.ceil(page / READ_UNIT)) * (consistent ? 1 : 0.5));
      page = 0;
    };
    const sizes = [...this.#items.values()].map(leaseItemBytes);
    for (const [streamArn, fleet] of this.#fleets) sizes.push(fleetItemBytes(streamArn, fleet));
    for (const bytes of sizes) {
      if (page + bytes > SCAN_PAGE_BYTES) endPage();
      page += bytes;
    }
    endPage();
  }

  async take(lease: Lease, owner: string): Promise<Lease | undefined> {
    this.calls.take++;
    this.#gate();
    return this.#update('take', lease, { owner, counter: lease.counter + 1 }, false);
  }

  async checkpoint(lease: Lease, checkpoint: string, doneAbove: readonly string[]): Promise<boolean> {
    this.calls.checkpoint++;
    this.#gate();
    return this.#update('checkpoint', lease, { checkpoint, doneAbove: [...doneAbove] }, true) !== undefined;
  }

  async release(lease: Lease): Promise<boolean> {
    this.calls.release++;
    this.#gate();
    return this.#update('release', lease, { owner: undefined, counter: lease.counter + 1 }, true) !== undefined;
  }

  async remove(lease: Lease): Promise<void> {
    this.calls.remove++;
    this.#gate();
    const key = keyOf(lease.streamArn, lease.shardId);
    const current = this.#items.get(key);
    this.#meterWrite('remove', 'DeleteItem', current, undefined);
    if (current?.counter === lease.counter) this.#items.delete(key);
  }
}
