import { describe, expect, it } from "vitest";
import { upsertInPlace, upsertNewestFirst } from "../../src/lib/boundedList.js";

type Row = { id: string; v?: number; w?: string };
const key = (r: Row) => r.id;

describe("bounded keyed lists", () => {
  it("newest first, one entry per key, merged, bounded", () => {
    let list: Row[] = [];
    list = upsertNewestFirst(list, { id: "a", v: 1, w: "keep" }, key, 3);
    list = upsertNewestFirst(list, { id: "b", v: 1 }, key, 3);
    list = upsertNewestFirst(list, { id: "a", v: 2 }, key, 3);
    expect(list).toEqual([{ id: "a", v: 2, w: "keep" }, { id: "b", v: 1 }]);
    list = upsertNewestFirst(list, { id: "c" }, key, 3);
    list = upsertNewestFirst(list, { id: "d" }, key, 3);
    expect(list.map(key)).toEqual(["d", "c", "a"]);
  });

  it("in place: keeps first-seen order, drops the oldest when over the bound", () => {
    let list: Row[] = [];
    list = upsertInPlace(list, { id: "s1", v: 1 }, key, 2);
    list = upsertInPlace(list, { id: "s2", v: 1 }, key, 2);
    list = upsertInPlace(list, { id: "s1", v: 2 }, key, 2);
    expect(list).toEqual([{ id: "s1", v: 2 }, { id: "s2", v: 1 }]);
    list = upsertInPlace(list, { id: "s3" }, key, 2);
    expect(list.map(key)).toEqual(["s2", "s3"]);
  });

  it("never mutates its input", () => {
    const list: Row[] = Object.freeze([{ id: "a" }]) as Row[];
    expect(() => upsertNewestFirst(list, { id: "a", v: 1 }, key, 5)).not.toThrow();
    expect(() => upsertInPlace(list, { id: "a", v: 1 }, key, 5)).not.toThrow();
    expect(list).toEqual([{ id: "a" }]);
  });
});
