/**
 * The client's options, their defaults (the original's where they were sensible), and
 * the reconnect policy they resolve to.
 */
import { DEFAULT_BACKOFF, resolveBackoff, type BackoffOptions } from "./backoff.js";
import type { WebSocketConstructor } from "./socket.js";

export type ConnectionState = "disconnected" | "connecting" | "connected" | "reconnecting";

/**
 * Why getToken() is called: first connect, a retry, a 4001 (token expired) close, or
 * (protocol version 2) the gateway's `token_expiring` notice: the token returned is sent
 * in-band (`refresh`) and the connection, its subscriptions and cursor stay.
 */
export type TokenReason = "connect" | "reconnect" | "expired" | "refresh";

/**
 * The protocol the client asks for: "v2" offers `flowwire.v2.json` (JSON text frames,
 * in-band token refresh); "v1" offers nothing (the original protocol). A gateway that
 * does not know version 2 answers without a subprotocol and the client speaks version 1.
 */
export type ProtocolChoice = "v1" | "v2";

/** The subprotocol the client offers for "v2". */
export const V2_JSON = "flowwire.v2.json";

export type TokenValue = string | null | undefined;

export interface WebSocketClientOptions {
  /**
   * Where to connect. Default: VITE_WS_URL, else ws(s)://<page host>/ws. Either may be a
   * URL (`ws://h:8080/ws`, `wss://h`), a bare host as the original's VITE_WS_URL
   * (`127.0.0.1:8080`, `h.example/realtime/ws`) or a path (`/ws`).
   */
  url?: string;
  /**
   * Called on every connect; the token goes in `?token=`. May return a promise.
   * Default: `localStorage.getItem('auth_token')`, as the original app's.
   */
  getToken?: (context: { reason: TokenReason }) => TokenValue | PromiseLike<TokenValue>;
  /** The original's name for `reconnect` (default true). */
  autoReconnect?: boolean;
  /**
   * The original's retry interval (ms): here the ceiling of the first retry's jittered
   * delay, doubling per retry (`backoff.initialDelayMs`). Default 3000.
   */
  reconnectInterval?: number;
  /**
   * Retries after a lost connection before giving up, counted since the last successful
   * open (`backoff.maxRetries`). Default: unlimited (the original gave up after 10).
   */
  maxReconnectAttempts?: number;
  /** WebSocket implementation: default globalThis.WebSocket (pass `ws` in Node). */
  WebSocketImpl?: WebSocketConstructor;
  /** Reconnect policy; see BackoffOptions for the defaults (3 s, ×2, 60 s cap, forever). */
  backoff?: Partial<BackoffOptions>;
  /** Reconnect after an unexpected close. Default true. */
  reconnect?: boolean;
  /** Send an application ping after this much idle time (ms); 0 disables. Default 25000. */
  pingIntervalMs?: number;
  /** Reconnect when nothing arrives this long after a ping (ms). Default 10000. */
  pongTimeoutMs?: number;
  /** Force debug logging on or off; default: localStorage.debug matches "websocket:*". */
  debug?: boolean;
  /**
   * "v2" (default): offer `flowwire.v2.json`, and refresh the token in-band through
   * getToken({ reason: "refresh" }) when the gateway says it expires soon. "v1": the
   * original protocol. (msgpack, `flowwire.v2.msgpack`, is for services: decoding it in
   * JavaScript costs more than JSON.parse; benchmarks/README.md.)
   */
  protocol?: ProtocolChoice;
  /** Random source in [0, 1) for jitter (tests). Default Math.random. */
  random?: () => number;
}

/** The default token: `localStorage.getItem('auth_token')`, as the original app's. */
export function storedToken(): TokenValue {
  try {
    return (globalThis as { localStorage?: Storage }).localStorage?.getItem("auth_token") ?? null;
  } catch {
    return null; // storage disabled (privacy mode, sandboxed frame)
  }
}

/**
 * The reconnect policy from the options: `reconnect`/`backoff` and the original's
 * `autoReconnect`/`reconnectInterval`/`maxReconnectAttempts` (the same settings under
 * their old names). Giving both names of one setting with different values, or a value
 * out of range, throws a TypeError/RangeError.
 */
export function resolvePolicy(options: WebSocketClientOptions): { reconnect: boolean; backoff: BackoffOptions } {
  const { autoReconnect, reconnect, reconnectInterval, maxReconnectAttempts } = options;
  const backoff: Partial<BackoffOptions> = { ...options.backoff };
  if (autoReconnect !== undefined && reconnect !== undefined && autoReconnect !== reconnect) {
    throw new TypeError("options.autoReconnect and options.reconnect disagree (they are one setting)");
  }
  if (reconnectInterval !== undefined) {
    if (!(reconnectInterval >= 0) || !Number.isFinite(reconnectInterval)) {
      throw new RangeError(`reconnectInterval must be a finite number of ms >= 0, got ${reconnectInterval}`);
    }
    if (backoff.initialDelayMs !== undefined && backoff.initialDelayMs !== reconnectInterval) {
      throw new TypeError("options.reconnectInterval and options.backoff.initialDelayMs disagree (they are one setting)");
    }
    backoff.initialDelayMs = reconnectInterval;
  }
  if (maxReconnectAttempts !== undefined) {
    const retries = maxReconnectAttempts === Infinity ? null : maxReconnectAttempts;
    if (retries !== null && !(Number.isInteger(retries) && retries >= 0)) {
      throw new RangeError(`maxReconnectAttempts must be an integer >= 0 or Infinity, got ${maxReconnectAttempts}`);
    }
    if (backoff.maxRetries !== undefined && backoff.maxRetries !== retries) {
      throw new TypeError("options.maxReconnectAttempts and options.backoff.maxRetries disagree (they are one setting)");
    }
    backoff.maxRetries = retries;
  }
  // A first delay above the default cap raises the cap instead of being refused.
  if (backoff.maxDelayMs === undefined && backoff.initialDelayMs !== undefined) {
    backoff.maxDelayMs = Math.max(DEFAULT_BACKOFF.maxDelayMs, backoff.initialDelayMs);
  }
  return { reconnect: (reconnect ?? autoReconnect) !== false, backoff: resolveBackoff(backoff) };
}
