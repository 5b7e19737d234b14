/** Keyed, bounded lists for the hooks: pure functions returning new arrays. */

/**
 * Put `item` first (newest first), merged over the entry with the same key if any,
 * keeping at most `limit` entries (the oldest fall off).
 */
export function upsertNewestFirst<T extends object>(
  list: readonly T[],
  item: T,
  key: (value: T) => string,
  limit: number,
): T[] {
  const k = key(item);
  const previous = list.find((value) => key(value) === k);
  const merged = previous === undefined ? item : { ...previous, ...item };
  const rest = list.filter((value) => key(value) !== k);
  return [merged, ...rest].slice(0, Math.max(0, limit));
}

/**
 * Update the entry with the same key where it is, or append `item`; keep at most
 * `limit` entries, dropping the oldest (first) ones.
 */
export function upsertInPlace<T extends object>(
  list: readonly T[],
  item: T,
  key: (value: T) => string,
  limit: number,
): T[] {
  const k = key(item);
  const index = list.findIndex((value) => key(value) === k);
  let next: T[];
  if (index >= 0) {
    next = list.slice();
    next[index] = { ...(list[index] as T), ...item };
  } else {
    next = [...list, item];
  }
  const max = Math.max(0, limit);
  return next.length > max ? next.slice(next.length - max) : next;
}
