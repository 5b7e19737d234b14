import { describe, expect, it } from "vitest";
import { compareEventIds, isAfter, isEventId, maxEventId, parseEventId } from "../../src/lib/ids.js";

describe("stream ids", () => {
  it("parses ms and seq", () => {
    expect(parseEventId("1764152400123-7")).toEqual({ ms: 1764152400123n, seq: 7n });
    expect(parseEventId("1764152400123")).toEqual({ ms: 1764152400123n, seq: 0n });
    expect(parseEventId("abc")).toBeNull();
    expect(parseEventId("")).toBeNull();
    expect(parseEventId("1-2-3")).toBeNull();
    expect(parseEventId("1-")).toBeNull();
    expect(parseEventId("-1-0")).toBeNull();
    expect(isEventId("0-0")).toBe(true);
    expect(isEventId(12)).toBe(false);
  });

  it("compares by milliseconds, then sequence, numerically (not as strings)", () => {
    expect(compareEventIds("999-0", "1000-0")).toBeLessThan(0); // "999-0" > "1000-0" as strings
    expect(compareEventIds("1000-9", "1000-10")).toBeLessThan(0); // "1000-9" > "1000-10" as strings
    expect(compareEventIds("1000-10", "1000-9")).toBeGreaterThan(0);
    expect(compareEventIds("5-5", "5-5")).toBe(0);
    expect(compareEventIds("5", "5-0")).toBe(0);
    expect(compareEventIds("18446744073709551615-0", "18446744073709551614-99")).toBeGreaterThan(0);
    expect(() => compareEventIds("x", "1-0")).toThrow(TypeError);
  });

  it("maxEventId ignores null and malformed sides", () => {
    expect(maxEventId(null, null)).toBeNull();
    expect(maxEventId(null, "2-0")).toBe("2-0");
    expect(maxEventId("2-0", "bogus")).toBe("2-0");
    expect(maxEventId("999-0", "1000-0")).toBe("1000-0");
  });

  it("isAfter: strictly after the cursor; anything is after no cursor", () => {
    expect(isAfter("1-0", null)).toBe(true);
    expect(isAfter("1-1", "1-0")).toBe(true);
    expect(isAfter("1-0", "1-0")).toBe(false);
    expect(isAfter("999-9", "1000-0")).toBe(false);
  });
});
