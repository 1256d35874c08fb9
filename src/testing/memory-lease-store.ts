import type { Lease, LeaseStore, NewLease } from '../worker/ports.js';

const keyOf = (streamArn: string, shardId: string) => `${streamArn}|${shardId}`;

/**
 * A lease table in memory with the same conditional semantics as the DynamoDB one: every write
 * but `create` checks the owner and the fencing counter. `failNext` makes calls fail, to test how
 * the worker rides out a lease table that is briefly unavailable.
 */
export class MemoryLeaseStore implements LeaseStore {
  readonly #items = new Map<string, Lease>();
  #failures = 0;
  readonly calls = { create: 0, list: 0, take: 0, renew: 0, checkpoint: 0, release: 0, remove: 0 };

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

  #update(lease: Lease, next: Partial<Lease>, requireOwner: boolean): Lease | undefined {
    const key = keyOf(lease.streamArn, lease.shardId);
    const current = this.#items.get(key);
    if (!current || current.counter !== lease.counter || (requireOwner && (lease.owner === undefined || current.owner !== lease.owner))) return undefined;
    const updated = { ...current, ...next };
    this.#items.set(key, updated);
    return updated;
  }

  async create(lease: NewLease): Promise<boolean> {
    this.calls.create++;
    this.#gate();
    const key = keyOf(lease.streamArn, lease.shardId);
    if (this.#items.has(key)) return false;
    this.#items.set(key, { ...lease, owner: undefined, counter: 0, doneAbove: [] });
    return true;
  }

  async list(streamArn: string): Promise<Lease[]> {
    this.calls.list++;
    this.#gate();
    return [...this.#items.values()].filter((l) => l.streamArn === streamArn);
  }

  async take(lease: Lease, owner: string): Promise<Lease | undefined> {
    this.calls.take++;
    this.#gate();
    return this.#update(lease, { owner, counter: lease.counter + 1 }, false);
  }

  async renew(lease: Lease): Promise<Lease | undefined> {
    this.calls.renew++;
    this.#gate();
    return this.#update(lease, { counter: lease.counter + 1 }, true);
  }

  async checkpoint(lease: Lease, checkpoint: string, doneAbove: readonly string[]): Promise<boolean> {
    this.calls.checkpoint++;
    this.#gate();
    return this.#update(lease, { checkpoint, doneAbove: [...doneAbove] }, true) !== undefined;
  }

  async release(lease: Lease): Promise<boolean> {
    this.calls.release++;
    this.#gate();
    return this.#update(lease, { owner: undefined, counter: lease.counter + 1 }, true) !== undefined;
  }

  async remove(lease: Lease): Promise<void> {
    this.calls.remove++;
    this.#gate();
    const key = keyOf(lease.streamArn, lease.shardId);
    if (this.#items.get(key)?.counter === lease.counter) this.#items.delete(key);
  }
}
