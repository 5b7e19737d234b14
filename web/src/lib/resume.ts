/**
 * The resume cursor: the id of the last event received, or a later stream position the
 * client adopted; events not after it are duplicates (each event is handled once).
 *
 * Partitioned streams (the server's STREAM_PARTITIONS > 1): event frames and `subscribed`
 * replies carry an opaque `cursor` ("v1.<id>.<id>..."); the last one received is the
 * resume cursor, sent back as `since`. Ids of different partitions are not comparable,
 * so no id comparison is made then: the server delivers each event once per connection,
 * and a resume from the last cursor repeats none.
 *
 * Protocol version 2 (priority): a backlogged connection may write `approval.*` events
 * ahead of stream order; the frames written meanwhile carry a `cursor` naming them
 * ("v1.<mark>~<partition>.<id>...", also with one partition). The rule stays: the last
 * frame's `cursor`, else its id. A frame without one after such a cursor (one
 * partition) means the window closed: its id is the resume point again.
 */
import { isAfter, isEventId, maxEventId } from "./ids.js";

const PARTITION_CURSOR = /^v1(\.\d{1,20}(-\d{1,20})?){1,64}(~\d{1,2}\.\d{1,20}-\d{1,20}){0,16}$/;

/** A partitioned stream's cursor ("v1.<id>.<id>..."). */
export function isPartitionCursor(value: unknown): value is string {
  return typeof value === "string" && PARTITION_CURSOR.test(value);
}

export class ResumeCursor {
  private last: string | null = null;
  private position: string | null = null;
  /** The last partitioned `cursor` received (null: the stream is not partitioned). */
  private vector: string | null = null;

  /** The id of the last event received. */
  get lastEventId(): string | null {
    return this.last;
  }

  /**
   * Where the next reconnect resumes from: the last event id, or a later `position` the
   * client adopted (the highest one before any event, or the one a `recovered: false`
   * reply moved it to).
   */
  get cursor(): string | null {
    return this.vector ?? maxEventId(this.last, this.position);
  }

  /**
   * An event arrived: true when it is new (after the last one), false for a duplicate.
   * With a partitioned `cursor`, that cursor is kept (and the event is new).
   */
  accept(id: string, cursor?: unknown): boolean {
    if (isPartitionCursor(cursor)) {
      this.last = id;
      this.vector = cursor;
      return true;
    }
    if (this.vector?.includes("~")) {
      // The priority window closed (one partition): this id is the resume point.
      this.vector = null;
      this.last = id;
      return true;
    }
    if (!isAfter(id, this.last)) return false;
    this.last = id;
    return true;
  }

  /** A `subscribed` reply's position: before any event, it is the cursor. */
  live(position: unknown): void {
    if (this.last !== null) return;
    if (isPartitionCursor(position)) this.vector = position;
    else if (isEventId(position)) this.position = maxEventId(this.position, position);
  }

  /**
   * A `recovered: false` reply: what lay between the cursor and `position` is gone for
   * good, so resume from `position` next time instead of asking again for history the
   * stream lost.
   */
  skipTo(position: unknown): void {
    if (isPartitionCursor(position)) this.vector = position;
    else if (isEventId(position)) this.position = maxEventId(this.position, position);
  }
}
