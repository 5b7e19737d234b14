import { describe, expect, it } from "vitest";
import { filtersKey, mergeFilters, normalizeFilters } from "../../src/lib/filters.js";

describe("filters", () => {
  it("normalizes: drops empty lists, sorts, de-duplicates", () => {
    expect(normalizeFilters({ statuses: [], workflow_ids: ["b", "a", "b"] })).toEqual({ workflow_ids: ["a", "b"] });
    expect(normalizeFilters({})).toBeUndefined();
    expect(normalizeFilters(null)).toBeUndefined();
  });

  it("keys by meaning", () => {
    expect(filtersKey({ statuses: ["x", "y"] })).toBe(filtersKey({ statuses: ["y", "x"], execution_ids: [] }));
    expect(filtersKey(undefined)).toBe(filtersKey({}));
    expect(filtersKey({ statuses: ["x"] })).not.toBe(filtersKey({ workflow_ids: ["x"] }));
  });

  it("merges per field: union, or no constraint if any subscriber has none", () => {
    expect(mergeFilters([])).toBeUndefined();
    expect(mergeFilters([{ statuses: ["failed"] }])).toEqual({ statuses: ["failed"] });
    expect(mergeFilters([{ statuses: ["failed"] }, { statuses: ["completed"] }])).toEqual({
      statuses: ["completed", "failed"],
    });
    expect(
      mergeFilters([
        { statuses: ["failed"], workflow_ids: ["w1"] },
        { workflow_ids: ["w2"] },
      ]),
    ).toEqual({ workflow_ids: ["w1", "w2"] });
    expect(mergeFilters([{ statuses: ["failed"] }, undefined])).toBeUndefined();
  });
});
