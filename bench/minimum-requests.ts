/**
 * Fewest requests for entries of these sizes sent in this order, at most `maxRecords` entries and
 * `maxBytes` bytes a request: a greedy cut of the sequence, which is optimal when order is kept.
 */
export const minimumRequests = (sizes: readonly number[], maxRecords: number, maxBytes: number): number => {
  let requests = 0;
  let count = 0;
  let bytes = 0;
  for (const size of sizes) {
    if (count === 0 || count + 1 > maxRecords || bytes + size > maxBytes) {
      requests++;
      count = 0;
      bytes = 0;
    }
    count++;
    bytes += size;
  }
  return requests;
};
