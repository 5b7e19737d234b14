import { describe, expect, it } from "vitest";
import { isPartitionCursor, ResumeCursor } from "../../src/lib/resume.js";

describe("the resume cursor", () => {
  it("keeps the last id, and drops an event not after it (one stream)", () => {
    const cursor = new ResumeCursor();
    cursor.live("5-0");
    expect(cursor.cursor).toBe("5-0");
    expect(cursor.accept("6-0")).toBe(true);
    expect(cursor.accept("6-0")).toBe(false);
    expect(cursor.cursor).toBe("6-0");
  });

  it("keeps the last partitioned cursor and sends it back, ids compared never", () => {
    const cursor = new ResumeCursor();
    cursor.live("v1.5-0.3-0.0-0");
    expect(cursor.cursor).toBe("v1.5-0.3-0.0-0");
    // Partition 0's event, then partition 1's with a smaller id: both are new.
    expect(cursor.accept("9-0", "v1.9-0.3-0.0-0")).toBe(true);
    expect(cursor.accept("4-0", "v1.9-0.4-0.0-0")).toBe(true);
    expect(cursor.lastEventId).toBe("4-0");
    expect(cursor.cursor).toBe("v1.9-0.4-0.0-0");
    // A later subscribe's position does not move a cursor that events set.
    cursor.live("v1.9-0.4-0.7-0");
    expect(cursor.cursor).toBe("v1.9-0.4-0.0-0");
    // recovered: false moves it to the reply's position.
    cursor.skipTo("v1.10-0.5-0.8-0");
    expect(cursor.cursor).toBe("v1.10-0.5-0.8-0");
  });

  it("recognises partitioned cursors only", () => {
    expect(isPartitionCursor("v1.1-0.2-3")).toBe(true);
    expect(isPartitionCursor("v1.1")).toBe(true);
    expect(isPartitionCursor("1-0")).toBe(false);
    expect(isPartitionCursor("v1.")).toBe(false);
    expect(isPartitionCursor("v2.1-0")).toBe(false);
    expect(isPartitionCursor(7)).toBe(false);
  });
});
