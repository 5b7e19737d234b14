import { describe, expect, it } from "vitest";
import {
  DEFAULT_BACKOFF,
  backoffCeiling,
  backoffDelay,
  parseRestartDelayMs,
  promptDelay,
  resolveBackoff,
  shouldRetry,
} from "../../src/lib/backoff.js";

describe("backoff policy", () => {
  it("defaults: first ceiling 3 s, doubling, capped at 60 s, retries forever", () => {
    const policy = resolveBackoff(undefined);
    expect(policy).toEqual(DEFAULT_BACKOFF);
    expect([0, 1, 2, 3, 4, 5, 6, 7].map((n) => backoffCeiling(n, policy))).toEqual([
      3000, 6000, 12_000, 24_000, 48_000, 60_000, 60_000, 60_000,
    ]);
    expect(shouldRetry(1_000_000, policy)).toBe(true);
  });

  it("full jitter: uniform in [0, ceiling)", () => {
    const policy = resolveBackoff({});
    expect(backoffDelay(0, policy, () => 0)).toBe(0);
    expect(backoffDelay(0, policy, () => 0.5)).toBe(1500);
    expect(backoffDelay(2, policy, () => 0.999999)).toBe(11_999);
    // An out-of-contract random source still stays within bounds.
    expect(backoffDelay(0, policy, () => 1)).toBeLessThan(3000);
    expect(backoffDelay(0, policy, () => -3)).toBe(0);
    expect(backoffDelay(0, policy, () => Number.NaN)).toBe(0);
    for (let attempt = 0; attempt < 12; attempt += 1) {
      for (let i = 0; i < 200; i += 1) {
        const delay = backoffDelay(attempt, policy);
        expect(delay).toBeGreaterThanOrEqual(0);
        expect(delay).toBeLessThan(backoffCeiling(attempt, policy));
      }
    }
  });

  it("does not overflow for huge attempt counts", () => {
    const policy = resolveBackoff({});
    expect(backoffCeiling(100_000, policy)).toBe(60_000);
  });

  it("honours maxRetries", () => {
    const policy = resolveBackoff({ maxRetries: 3 });
    expect([0, 1, 2, 3, 4].map((n) => shouldRetry(n, policy))).toEqual([true, true, true, false, false]);
  });

  it("prompt delay is jittered within promptDelayMs", () => {
    const policy = resolveBackoff({ promptDelayMs: 400 });
    expect(promptDelay(policy, () => 0)).toBe(0);
    expect(promptDelay(policy, () => 0.5)).toBe(200);
  });

  it("rejects nonsense settings", () => {
    expect(() => resolveBackoff({ initialDelayMs: -1 })).toThrow(RangeError);
    expect(() => resolveBackoff({ multiplier: 0.5 })).toThrow(RangeError);
    expect(() => resolveBackoff({ maxDelayMs: 10 })).toThrow(RangeError);
    expect(() => resolveBackoff({ maxRetries: 1.5 })).toThrow(RangeError);
    expect(() => resolveBackoff({ promptDelayMs: Number.POSITIVE_INFINITY })).toThrow(RangeError);
  });
});

describe("1012 close reason", () => {
  it.each([
    ["reconnect in 2.5s", 2500],
    ["service restart; reconnect in 3 seconds", 3000],
    ["2", 2000],
    ["retry after 750ms", 750],
    ["restarting, retry in 0s", 0],
  ])("%j -> %d ms", (reason, expected) => {
    expect(parseRestartDelayMs(reason)).toBe(expected);
  });

  it("no number: null", () => {
    expect(parseRestartDelayMs("service restart")).toBeNull();
    expect(parseRestartDelayMs("")).toBeNull();
    expect(parseRestartDelayMs(undefined)).toBeNull();
  });
});
