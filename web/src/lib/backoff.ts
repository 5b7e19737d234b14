/**
 * Reconnect delays: exponential backoff with "full jitter" (AWS architecture blog,
 * "Exponential Backoff And Jitter"): the n-th retry waits a uniformly random time in
 * [0, min(maxDelayMs, initialDelayMs * multiplier^n)). Pure functions, no timers.
 */

export interface BackoffOptions {
  /** Upper bound of the first delay, in ms. Default 3000. */
  initialDelayMs: number;
  /** Growth factor per attempt. Default 2. */
  multiplier: number;
  /** Cap of the upper bound, in ms. Default 60000. */
  maxDelayMs: number;
  /**
   * Retries after which the client gives up; `null` (the default) retries forever.
   * Counted since the last successful open.
   */
  maxRetries: number | null;
  /** Upper bound, in ms, of the short jittered delay used for prompt reconnects (1012, 4008, 4001). Default 1000. */
  promptDelayMs: number;
}

export const DEFAULT_BACKOFF: Readonly<BackoffOptions> = Object.freeze({
  initialDelayMs: 3000,
  multiplier: 2,
  maxDelayMs: 60_000,
  maxRetries: null,
  promptDelayMs: 1000,
});

export function resolveBackoff(options: Partial<BackoffOptions> | undefined): BackoffOptions {
  const resolved: BackoffOptions = { ...DEFAULT_BACKOFF, ...options };
  const { initialDelayMs, multiplier, maxDelayMs, maxRetries, promptDelayMs } = resolved;
  if (!(initialDelayMs >= 0) || !Number.isFinite(initialDelayMs)) {
    throw new RangeError(`backoff.initialDelayMs must be a finite number >= 0, got ${initialDelayMs}`);
  }
  if (!(multiplier >= 1) || !Number.isFinite(multiplier)) {
    throw new RangeError(`backoff.multiplier must be a finite number >= 1, got ${multiplier}`);
  }
  if (!(maxDelayMs >= initialDelayMs) || !Number.isFinite(maxDelayMs)) {
    throw new RangeError(`backoff.maxDelayMs must be finite and >= initialDelayMs, got ${maxDelayMs}`);
  }
  if (maxRetries !== null && !(Number.isInteger(maxRetries) && maxRetries >= 0)) {
    throw new RangeError(`backoff.maxRetries must be null or an integer >= 0, got ${maxRetries}`);
  }
  if (!(promptDelayMs >= 0) || !Number.isFinite(promptDelayMs)) {
    throw new RangeError(`backoff.promptDelayMs must be a finite number >= 0, got ${promptDelayMs}`);
  }
  return resolved;
}

/** The upper bound of the delay before retry number `attempt` (0-based). */
export function backoffCeiling(attempt: number, options: BackoffOptions): number {
  // A huge attempt count overflows to Infinity; the cap then applies.
  const exponent = Math.max(0, attempt);
  const ceiling = options.initialDelayMs * Math.pow(options.multiplier, exponent);
  return Number.isFinite(ceiling) ? Math.min(options.maxDelayMs, ceiling) : options.maxDelayMs;
}

/**
 * The delay before retry number `attempt` (0-based), full jitter: uniform in
 * [0, ceiling). `random` returns a number in [0, 1) like Math.random.
 */
export function backoffDelay(
  attempt: number,
  options: BackoffOptions,
  random: () => number = Math.random,
): number {
  return Math.floor(clampUnit(random()) * backoffCeiling(attempt, options));
}

/** A short jittered delay, uniform in [0, promptDelayMs), for prompt reconnects. */
export function promptDelay(options: BackoffOptions, random: () => number = Math.random): number {
  return Math.floor(clampUnit(random()) * options.promptDelayMs);
}

/** True when another retry is allowed after `attempt` retries already made. */
export function shouldRetry(attempt: number, options: BackoffOptions): boolean {
  return options.maxRetries === null || attempt < options.maxRetries;
}

/**
 * The wait a 1012 (service restart) close asks for, in ms: the first number in its
 * reason, read as seconds ("reconnect in 2.5s", "retry after 3 seconds", "2"), or as
 * milliseconds when written "<n>ms". Null when the reason holds no number.
 */
export function parseRestartDelayMs(reason: string | undefined): number | null {
  if (reason === undefined || reason === "") return null;
  const match = /(\d+(?:\.\d+)?)\s*(ms\b|milliseconds?\b)?/i.exec(reason);
  if (match === null) return null;
  const value = Number(match[1]);
  if (!Number.isFinite(value)) return null;
  return Math.round(match[2] !== undefined ? value : value * 1000);
}

function clampUnit(value: number): number {
  if (!(value >= 0)) return 0;
  return value >= 1 ? 1 - Number.EPSILON : value;
}
