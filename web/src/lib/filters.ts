import type { SubscriptionFilters } from "./types.js";

const FILTER_KEYS = ["workflow_ids", "execution_ids", "statuses"] as const;
type FilterKey = (typeof FILTER_KEYS)[number];

/** Drop empty lists, sort and de-duplicate values: equal meaning, equal shape. */
export function normalizeFilters(filters: SubscriptionFilters | null | undefined): SubscriptionFilters | undefined {
  if (filters === null || filters === undefined) return undefined;
  const out: SubscriptionFilters = {};
  for (const key of FILTER_KEYS) {
    const values = filters[key];
    if (Array.isArray(values) && values.length > 0) {
      out[key] = [...new Set(values)].sort();
    }
  }
  return Object.keys(out).length > 0 ? out : undefined;
}

/** A stable string for a filter set (same meaning, same key). */
export function filtersKey(filters: SubscriptionFilters | null | undefined): string {
  return JSON.stringify(normalizeFilters(filters) ?? {});
}

/**
 * The filters to send for a channel shared by several subscribers: per field, no
 * constraint if any subscriber has none, otherwise the union of their values. The
 * server holds one filter set per channel and connection, so this is the narrowest set
 * that still delivers every event each subscriber asked for; it can deliver more than
 * one subscriber wants (constraints of different fields are ANDed per subscriber), so
 * handlers check what they receive (the hooks do).
 */
export function mergeFilters(
  all: ReadonlyArray<SubscriptionFilters | null | undefined>,
): SubscriptionFilters | undefined {
  if (all.length === 0) return undefined;
  const normalized = all.map(normalizeFilters);
  const out: SubscriptionFilters = {};
  for (const key of FILTER_KEYS) {
    let union: Set<string> | null = new Set<string>();
    for (const filters of normalized) {
      const values = filters?.[key as FilterKey];
      if (values === undefined || values === null) {
        union = null; // one subscriber without this constraint: none at all
        break;
      }
      for (const value of values) union.add(value);
    }
    if (union !== null && union.size > 0) out[key] = [...union].sort();
  }
  return Object.keys(out).length > 0 ? out : undefined;
}
