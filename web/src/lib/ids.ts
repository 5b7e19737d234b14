/**
 * Stream entry ids ("<milliseconds>-<sequence>", e.g. "1764152400123-0"; a bare
 * "<milliseconds>" means sequence 0, as the server's `since` accepts) are the client's
 * resume cursor. They must be compared numerically, milliseconds first, then
 * sequence: as strings "999-0" > "1000-0", which is wrong.
 */

export interface ParsedEventId {
  readonly ms: bigint;
  readonly seq: bigint;
}

const ID_PATTERN = /^(\d{1,20})(?:-(\d{1,20}))?$/;

/** Parse a stream id, or return null when it is not of the form "<ms>[-<seq>]". */
export function parseEventId(id: string): ParsedEventId | null {
  const match = ID_PATTERN.exec(id);
  if (match === null) return null;
  return { ms: BigInt(match[1] as string), seq: BigInt(match[2] ?? "0") };
}

export function isEventId(value: unknown): value is string {
  return typeof value === "string" && ID_PATTERN.test(value);
}

/**
 * Compare two stream ids: negative when a < b, 0 when equal, positive when a > b.
 * Throws on a malformed id (callers validate with isEventId first).
 */
export function compareEventIds(a: string, b: string): number {
  const pa = parseEventId(a);
  const pb = parseEventId(b);
  if (pa === null) throw new TypeError(`not a stream id: ${JSON.stringify(a)}`);
  if (pb === null) throw new TypeError(`not a stream id: ${JSON.stringify(b)}`);
  if (pa.ms !== pb.ms) return pa.ms < pb.ms ? -1 : 1;
  if (pa.seq !== pb.seq) return pa.seq < pb.seq ? -1 : 1;
  return 0;
}

/** The greater of two ids; a null or malformed side loses. */
export function maxEventId(a: string | null, b: string | null): string | null {
  const aValid = a !== null && isEventId(a);
  const bValid = b !== null && isEventId(b);
  if (!aValid) return bValid ? b : null;
  if (!bValid) return a;
  return compareEventIds(a, b) >= 0 ? a : b;
}

/** True when `id` is strictly after `cursor` (always true when there is no cursor). */
export function isAfter(id: string, cursor: string | null): boolean {
  if (cursor === null || !isEventId(cursor)) return true;
  return compareEventIds(id, cursor) > 0;
}
