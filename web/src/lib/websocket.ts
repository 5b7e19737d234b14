/**
 * The flowwire WebSocket client: one socket, remembered and reference-counted
 * subscriptions, resume from the last event id after every reconnect, exponential
 * backoff with full jitter, one dispatch per event.
 */
import {
  backoffDelay,
  promptDelay,
  parseRestartDelayMs,
  resolveBackoff,
  shouldRetry,
  type BackoffOptions,
} from "./backoff.js";
import { createDebugLogger, debugEnabled, readDebugSetting } from "./debug.js";
import { filtersKey, mergeFilters } from "./filters.js";
import { isAfter, isEventId, maxEventId } from "./ids.js";
import type {
  ClientEventHandler,
  ClientEventMap,
  ClientEventType,
  ClientMessage,
  ResyncMessage,
  ServerMessage,
  SubscribeData,
  SubscriptionFilters,
} from "./types.js";
import { ConfigurationError, redactToken, resolveSocketUrl, withToken } from "./url.js";

// ---------------------------------------------------------------------------------------
// The socket the client drives: the browser's WebSocket, or any class with the same
// surface (the `ws` package in Node, a fake in tests).

/** Method-style signature: accepted bivariantly, so DOM and `ws` handler types fit. */
type Handler<E> = { bivarianceHack(event: E): void }["bivarianceHack"];

export interface CloseEventLike {
  readonly code: number;
  readonly reason: string;
  readonly wasClean?: boolean;
}

export interface MessageEventLike {
  readonly data: unknown;
}

export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: Handler<unknown> | null;
  onmessage: Handler<MessageEventLike> | null;
  onclose: Handler<CloseEventLike> | null;
  onerror: Handler<unknown> | null;
}

export type WebSocketConstructor = new (url: string) => WebSocketLike;

const OPEN = 1;

// ---------------------------------------------------------------------------------------

export type ConnectionState = "disconnected" | "connecting" | "connected" | "reconnecting";

/** Why getToken() is called: first connect, a retry, or a 4001 (token expired) close. */
export type TokenReason = "connect" | "reconnect" | "expired";

export type TokenValue = string | null | undefined;

export interface WebSocketClientOptions {
  /** ws:// or wss:// URL. Default: VITE_WS_URL, else ws(s)://<page host>/ws. */
  url?: string;
  /** Called on every connect; the token goes in `?token=`. May return a promise. */
  getToken?: (context: { reason: TokenReason }) => TokenValue | PromiseLike<TokenValue>;
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
  /** Random source in [0, 1) for jitter (tests). Default Math.random. */
  random?: () => number;
}

/** A remembered subscription: one entry per subscribe() call still active. */
interface Holder {
  readonly id: number;
  readonly filters: SubscriptionFilters | undefined;
}

interface ChannelEntry {
  holders: Holder[];
  /** filtersKey() of what was last sent on the current socket, null when not sent. */
  sentKey: string | null;
  /** The `since` sent with the current socket's subscribe, for the resync event. */
  sentSince: string | null;
  /** The server confirmed (`subscribed`) on the current socket. */
  acked: boolean;
}

type AnyHandler = (message: never) => void;

export const DEBUG_NAMESPACE = "websocket:client";

/** Close codes the server uses (DESIGN.md §3). */
export const CloseCode = {
  NORMAL: 1000,
  POLICY: 1008,
  TOO_BIG: 1009,
  INTERNAL: 1011,
  SERVICE_RESTART: 1012,
  TRY_AGAIN_LATER: 1013,
  TOKEN_EXPIRED: 4001,
  SLOW_CONSUMER: 4008,
  RATE_LIMITED: 4029,
} as const;

/** Client-side close code used when the client itself abandons a socket (ping timeout). */
const CLIENT_ABANDON = 4000;

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

function isPromiseLike<T>(value: unknown): value is PromiseLike<T> {
  return isRecord(value) && typeof value["then"] === "function";
}

function now(): string {
  return new Date().toISOString();
}

export class WebSocketClient {
  private options: WebSocketClientOptions;
  private socket_: WebSocketLike | null = null;
  private state_: ConnectionState = "disconnected";
  /** connect() was called and disconnect() was not. */
  private wanted = false;
  /** Retries scheduled since the last successful open. */
  private attempt = 0;
  /** Bumped on every connect/disconnect; a pending async getToken() of an older one is dropped. */
  private generation = 0;
  private reconnectTimer: ReturnType<typeof setTimeout> | null = null;
  private pingTimer: ReturnType<typeof setTimeout> | null = null;
  private pongTimer: ReturnType<typeof setTimeout> | null = null;
  private lastActivity = 0;
  private readonly channels = new Map<string, ChannelEntry>();
  private nextHolderId = 1;
  private lastEventId_: string | null = null;
  private position_: string | null = null;
  private readonly handlers = new Map<string, Set<AnyHandler>>();
  private readonly statusListeners = new Set<() => void>();
  private debugOn: boolean;
  private readonly log = createDebugLogger(DEBUG_NAMESPACE, () => this.debugOn);

  constructor(options: WebSocketClientOptions = {}) {
    this.options = { ...options };
    resolveBackoff(options.backoff); // fail fast on a bad policy
    this.debugOn = this.computeDebug();
  }

  // ------------------------------------------------------------------ public surface

  /** The connection state: disconnected, connecting, connected, reconnecting. */
  get state(): ConnectionState {
    return this.state_;
  }

  getState(): ConnectionState {
    return this.state_;
  }

  isConnected(): boolean {
    return this.state_ === "connected";
  }

  /** The id of the last event received: the resume cursor. */
  get lastEventId(): string | null {
    return this.lastEventId_;
  }

  /**
   * Where the next reconnect resumes from: the last event id, or a later `position` the
   * client adopted (the highest one before any event, or the one a `recovered: false`
   * reply moved it to).
   */
  get resumeCursor(): string | null {
    return maxEventId(this.lastEventId_, this.position_);
  }

  /** The current socket, for diagnostics and tests (e.g. to drop it); null when none. */
  get socket(): WebSocketLike | null {
    return this.socket_;
  }

  /** Channels currently remembered (subscribed by at least one caller). */
  get channelNames(): string[] {
    return [...this.channels.keys()];
  }

  /** True when the channel is remembered (it will be subscribed whenever connected). */
  isSubscribed(channel: string): boolean {
    return this.channels.has(channel);
  }

  /** True when connected and the server confirmed the channel on this connection. */
  isLive(channel: string): boolean {
    return this.state_ === "connected" && this.channels.get(channel)?.acked === true;
  }

  /** Number of active subscribe() calls for the channel. */
  subscriberCount(channel: string): number {
    return this.channels.get(channel)?.holders.length ?? 0;
  }

  /** Update options (getToken, url, …); they apply from the next connect. */
  configure(options: WebSocketClientOptions): void {
    if (options.backoff !== undefined) resolveBackoff({ ...this.options.backoff, ...options.backoff });
    this.options = {
      ...this.options,
      ...options,
      backoff: { ...this.options.backoff, ...options.backoff },
    };
    this.debugOn = this.computeDebug();
  }

  /** Open the connection (no-op when already connecting, connected or waiting to retry). */
  connect(): void {
    this.debugOn = this.computeDebug();
    if (this.wanted && (this.socket_ !== null || this.reconnectTimer !== null || this.state_ === "connecting")) {
      return;
    }
    this.wanted = true;
    this.attempt = 0;
    this.open("connect");
  }

  /** Close the connection and stop reconnecting. Subscriptions stay remembered. */
  disconnect(): void {
    this.wanted = false;
    this.generation += 1;
    this.clearReconnectTimer();
    const socket = this.socket_;
    this.detach();
    if (socket !== null) {
      this.log("disconnect");
      try {
        socket.close(CloseCode.NORMAL, "client disconnect");
      } catch {
        // already closed
      }
    }
    this.setState("disconnected");
  }

  /**
   * Subscribe to a channel (executions, executions:{id}, workflows:{id}, approvals,
   * users:{id}). Reference-counted: the channel stays subscribed until every subscribe()
   * has been undone. Sent now if open, else when the socket opens. Returns a function
   * that undoes exactly this call.
   */
  subscribe(channel: string, filters?: SubscriptionFilters): () => void {
    if (typeof channel !== "string" || channel === "") throw new TypeError("subscribe: channel must be a non-empty string");
    const holder: Holder = { id: this.nextHolderId++, filters };
    let entry = this.channels.get(channel);
    if (entry === undefined) {
      entry = { holders: [], sentKey: null, sentSince: null, acked: false };
      this.channels.set(channel, entry);
    }
    entry.holders.push(holder);
    this.log("subscribe", channel, `(${entry.holders.length} subscriber(s))`);
    this.syncChannel(channel, entry);
    this.notifyStatus();
    let undone = false;
    return () => {
      if (undone) return;
      undone = true;
      this.removeHolder(channel, (h) => h.id === holder.id);
    };
  }

  /**
   * Undo one subscribe() of the channel: the one with equal filters when given, else the
   * most recent. The `unsubscribe` message goes out when the last one is undone.
   */
  unsubscribe(channel: string, filters?: SubscriptionFilters): void {
    const entry = this.channels.get(channel);
    if (entry === undefined) return;
    const key = filters === undefined ? null : filtersKey(filters);
    const matching = entry.holders.filter((h) => key === null || filtersKey(h.filters) === key);
    const target = matching[matching.length - 1];
    if (target === undefined) return;
    this.removeHolder(channel, (h) => h.id === target.id);
  }

  /** Listen to a message type ("*": every server message; "resync": see ResyncMessage). Returns off(). */
  on<T extends ClientEventType>(type: T, handler: ClientEventHandler<T>): () => void {
    let set = this.handlers.get(type);
    if (set === undefined) {
      set = new Set();
      this.handlers.set(type, set);
    }
    set.add(handler as AnyHandler);
    return () => this.off(type, handler);
  }

  off<T extends ClientEventType>(type: T, handler: ClientEventHandler<T>): void {
    const set = this.handlers.get(type);
    if (set === undefined) return;
    set.delete(handler as AnyHandler);
    if (set.size === 0) this.handlers.delete(type);
  }

  /**
   * Be told when state, subscriptions or confirmations change (for React's
   * useSyncExternalStore). Returns an unsubscribe function.
   */
  onStatusChange = (listener: () => void): (() => void) => {
    this.statusListeners.add(listener);
    return () => {
      this.statusListeners.delete(listener);
    };
  };

  /** Send a client message; false when the socket is not open. */
  send(message: ClientMessage): boolean {
    const socket = this.socket_;
    if (socket === null || socket.readyState !== OPEN) return false;
    try {
      socket.send(JSON.stringify(message));
      return true;
    } catch (err) {
      this.log("send failed", err);
      return false;
    }
  }

  // ------------------------------------------------------------------ connecting

  private computeDebug(): boolean {
    return this.options.debug ?? debugEnabled(DEBUG_NAMESPACE, readDebugSetting());
  }

  private backoffOptions(): BackoffOptions {
    return resolveBackoff(this.options.backoff);
  }

  private random(): number {
    return (this.options.random ?? Math.random)();
  }

  private open(reason: TokenReason): void {
    const generation = ++this.generation;
    this.setState("connecting");
    let token: TokenValue | PromiseLike<TokenValue>;
    try {
      token = this.options.getToken?.({ reason });
    } catch (err) {
      this.log("getToken threw", err);
      this.retryAfterFailure();
      return;
    }
    if (isPromiseLike<TokenValue>(token)) {
      token.then(
        (value) => {
          if (generation === this.generation && this.wanted) this.createSocket(value);
        },
        (err: unknown) => {
          if (generation !== this.generation || !this.wanted) return;
          this.log("getToken rejected", err);
          this.retryAfterFailure();
        },
      );
    } else {
      this.createSocket(token);
    }
  }

  private createSocket(token: TokenValue): void {
    let socket: WebSocketLike;
    try {
      const url = withToken(resolveSocketUrl(this.options.url), token);
      const Impl = this.options.WebSocketImpl ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
      if (Impl === undefined) {
        throw new ConfigurationError(
          "flowwire: no WebSocket implementation (pass options.WebSocketImpl, e.g. the `ws` package)",
        );
      }
      this.log("connecting to", redactToken(url));
      socket = new Impl(url);
    } catch (err) {
      if (err instanceof ConfigurationError) {
        // A configuration error will not fix itself by retrying: report it and stop.
        console.error(`[${DEBUG_NAMESPACE}]`, err.message);
        this.wanted = false;
        this.setState("disconnected");
        return;
      }
      this.log("cannot open socket", err);
      this.retryAfterFailure();
      return;
    }
    this.socket_ = socket;
    // Every handler checks that its socket is still the current one: a late event of a
    // socket we already replaced must never touch the new one or start a connection.
    socket.onopen = () => {
      if (this.socket_ === socket) this.handleOpen();
    };
    socket.onmessage = (event: MessageEventLike) => {
      if (this.socket_ === socket) this.handleFrame(event.data);
    };
    socket.onerror = (event: unknown) => {
      if (this.socket_ === socket) this.log("socket error", event);
    };
    socket.onclose = (event: CloseEventLike) => {
      if (this.socket_ === socket) this.handleClose(event.code, event.reason);
      else this.log("ignoring close of a replaced socket", event.code);
    };
  }

  private handleOpen(): void {
    this.log("open");
    this.attempt = 0;
    for (const entry of this.channels.values()) {
      entry.sentKey = null;
      entry.sentSince = null;
      entry.acked = false;
    }
    this.lastActivity = Date.now();
    this.setState("connected");
    // Every remembered subscription, with its filters, resuming from the cursor.
    const since = this.resumeCursor;
    for (const [channel, entry] of this.channels) this.sendSubscribe(channel, entry, since);
    this.schedulePing();
  }

  private handleClose(code: number, reason: string): void {
    this.log("closed", code, reason);
    this.detach();
    if (!this.wanted || this.options.reconnect === false) {
      this.wanted = false;
      this.setState("disconnected");
      return;
    }
    const policy = this.backoffOptions();
    switch (code) {
      case CloseCode.TOKEN_EXPIRED:
        this.scheduleReconnect(promptDelay(policy, () => this.random()), "expired");
        return;
      case CloseCode.SERVICE_RESTART: {
        const asked = parseRestartDelayMs(reason);
        const delay = asked !== null ? Math.min(asked, policy.maxDelayMs) : promptDelay(policy, () => this.random());
        this.scheduleReconnect(delay, "reconnect");
        return;
      }
      case CloseCode.SLOW_CONSUMER:
        this.scheduleReconnect(promptDelay(policy, () => this.random()), "reconnect");
        return;
      default:
        this.retryAfterFailure();
    }
  }

  /** Reconnect with exponential backoff and full jitter, unless out of retries. */
  private retryAfterFailure(): void {
    const policy = this.backoffOptions();
    if (!shouldRetry(this.attempt, policy)) {
      this.log(`giving up after ${this.attempt} retries`);
      this.wanted = false;
      this.setState("disconnected");
      return;
    }
    this.scheduleReconnect(backoffDelay(this.attempt, policy, () => this.random()), "reconnect");
  }

  private scheduleReconnect(delayMs: number, reason: TokenReason): void {
    this.clearReconnectTimer();
    this.attempt += 1;
    this.log(`reconnecting in ${delayMs} ms (attempt ${this.attempt})`);
    this.setState("reconnecting");
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      if (this.wanted && this.socket_ === null) this.open(reason);
    }, delayMs);
  }

  /** Forget the current socket (its late events are ignored) and stop its timers. */
  private detach(): void {
    const socket = this.socket_;
    this.socket_ = null;
    this.clearPingTimers();
    if (socket !== null) {
      socket.onopen = null;
      socket.onmessage = null;
      socket.onerror = null;
      // onclose stays: it only logs for a replaced socket.
    }
    let changed = false;
    for (const entry of this.channels.values()) {
      if (entry.acked || entry.sentKey !== null) changed = true;
      entry.acked = false;
      entry.sentKey = null;
      entry.sentSince = null;
    }
    if (changed) this.notifyStatus();
  }

  private clearReconnectTimer(): void {
    if (this.reconnectTimer !== null) {
      clearTimeout(this.reconnectTimer);
      this.reconnectTimer = null;
    }
  }

  // ------------------------------------------------------------------ keepalive

  /** Ping after `pingIntervalMs` without any inbound frame; abandon the socket if still silent. */
  private schedulePing(delay = this.options.pingIntervalMs ?? 25_000): void {
    const interval = this.options.pingIntervalMs ?? 25_000;
    if (interval <= 0 || this.pingTimer !== null) return;
    this.pingTimer = setTimeout(() => {
      this.pingTimer = null;
      if (this.socket_ === null) return;
      const idle = Date.now() - this.lastActivity;
      if (idle < interval) {
        this.schedulePing(interval - idle);
        return;
      }
      if (!this.send({ type: "ping", timestamp: now() })) return;
      if (this.pongTimer === null) {
        this.pongTimer = setTimeout(() => {
          this.pongTimer = null;
          this.abandonSocket("no reply to ping");
        }, this.options.pongTimeoutMs ?? 10_000);
      }
      this.schedulePing(interval);
    }, delay);
  }

  private clearPingTimers(): void {
    if (this.pingTimer !== null) clearTimeout(this.pingTimer);
    if (this.pongTimer !== null) clearTimeout(this.pongTimer);
    this.pingTimer = null;
    this.pongTimer = null;
  }

  /** Give up on a socket that went silent: forget it now, close it, reconnect. */
  private abandonSocket(why: string): void {
    const socket = this.socket_;
    if (socket === null) return;
    this.log("abandoning socket:", why);
    this.detach();
    try {
      socket.close(CLIENT_ABANDON, why);
    } catch {
      // ignore
    }
    this.retryAfterFailure();
  }

  // ------------------------------------------------------------------ subscriptions

  private removeHolder(channel: string, match: (holder: Holder) => boolean): void {
    const entry = this.channels.get(channel);
    if (entry === undefined) return;
    const index = entry.holders.findIndex(match);
    if (index < 0) return;
    entry.holders.splice(index, 1);
    this.log("unsubscribe", channel, `(${entry.holders.length} subscriber(s) left)`);
    if (entry.holders.length === 0) {
      this.channels.delete(channel);
      if (entry.sentKey !== null) this.send({ type: "unsubscribe", timestamp: now(), data: { channel } });
    } else {
      this.syncChannel(channel, entry);
    }
    this.notifyStatus();
  }

  /** Send the channel's (merged) filters if the socket is open and they changed. */
  private syncChannel(channel: string, entry: ChannelEntry): void {
    if (this.socket_ === null || this.socket_.readyState !== OPEN || this.state_ !== "connected") return;
    const merged = mergeFilters(entry.holders.map((h) => h.filters));
    if (entry.sentKey === filtersKey(merged)) return;
    // Live on an open connection: no `since` (nothing was missed on this connection).
    this.sendSubscribe(channel, entry, null);
  }

  private sendSubscribe(channel: string, entry: ChannelEntry, since: string | null): void {
    const filters = mergeFilters(entry.holders.map((h) => h.filters));
    const data: SubscribeData = {
      channel,
      ...(filters !== undefined ? { filters } : {}),
      ...(since !== null ? { since } : {}),
    };
    if (this.send({ type: "subscribe", timestamp: now(), data })) {
      entry.sentKey = filtersKey(filters);
      entry.sentSince = since;
    }
  }

  // ------------------------------------------------------------------ receiving

  /** One frame is one JSON message; it is never split on newlines. */
  private handleFrame(raw: unknown): void {
    // Anything received shows the connection is alive.
    this.lastActivity = Date.now();
    if (this.pongTimer !== null) {
      clearTimeout(this.pongTimer);
      this.pongTimer = null;
    }
    if (typeof raw !== "string") {
      this.log("ignoring a non-text frame");
      return;
    }
    let message: unknown;
    try {
      message = JSON.parse(raw);
    } catch {
      this.log("ignoring a frame that is not one JSON value:", raw.slice(0, 200));
      return;
    }
    if (!isRecord(message) || typeof message["type"] !== "string") {
      this.log("ignoring a frame without a type");
      return;
    }
    const type = message["type"];
    if (type === "subscribed") {
      this.handleSubscribed(message);
    } else if (type === "unsubscribed" || type === "pong") {
      // nothing to track
    } else if (type === "error") {
      this.handleError(message);
    } else {
      const id = message["id"];
      if (isEventId(id)) {
        // Each event is delivered once; an id not after the cursor was already handled.
        if (!isAfter(id, this.lastEventId_)) {
          this.log("dropping duplicate event", id);
          return;
        }
        this.lastEventId_ = id;
      }
    }
    this.dispatch(type, message as unknown as ServerMessage);
  }

  private handleSubscribed(message: Record<string, unknown>): void {
    const data = isRecord(message["data"]) ? message["data"] : {};
    const channel = data["channel"];
    const position = data["position"];
    if (isEventId(position) && this.lastEventId_ === null) {
      // No event seen yet: the subscription's live position is our cursor.
      this.position_ = maxEventId(this.position_, position);
    }
    if (typeof channel !== "string") return;
    const entry = this.channels.get(channel);
    if (entry === undefined) return; // unsubscribed meanwhile
    if (!entry.acked) {
      entry.acked = true;
      this.notifyStatus();
    }
    if (data["recovered"] === false) {
      // What lay between our cursor and `position` is gone for good: resume from
      // `position` next time, instead of asking again for history the stream lost.
      if (isEventId(position)) this.position_ = maxEventId(this.position_, position);
      const resync: ResyncMessage = {
        type: "resync",
        timestamp: now(),
        data: { channel, since: entry.sentSince, position: isEventId(position) ? position : null },
      };
      this.log("resume impossible, state must be reloaded:", channel);
      this.dispatch("resync", resync);
    }
  }

  private handleError(message: Record<string, unknown>): void {
    const data = isRecord(message["data"]) ? message["data"] : {};
    // A refused subscribe never gets its `subscribed`, so isLive() stays false for it;
    // a refused change leaves the previous subscription in force ("changes nothing").
    this.log("server error", data["code"], data["message"]);
  }

  private dispatch(type: string, message: ClientEventMap[ClientEventType]): void {
    const targets = [...(this.handlers.get(type) ?? []), ...(type === "resync" ? [] : (this.handlers.get("*") ?? []))];
    for (const handler of targets) {
      try {
        (handler as (message: unknown) => void)(message);
      } catch (err) {
        // One failing handler must not starve the others.
        console.error(`[${DEBUG_NAMESPACE}] handler for ${type} threw`, err);
      }
    }
  }

  // ------------------------------------------------------------------ status

  private setState(state: ConnectionState): void {
    if (this.state_ === state) return;
    this.state_ = state;
    this.log("state", state);
    this.notifyStatus();
  }

  private notifyStatus(): void {
    for (const listener of [...this.statusListeners]) {
      try {
        listener();
      } catch (err) {
        console.error(`[${DEBUG_NAMESPACE}] status listener threw`, err);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------

let shared: WebSocketClient | null = null;

/**
 * The application's client (a singleton, as in the original). The first call creates
 * it; a later call with options updates them (they apply from the next connect).
 */
export function getWebSocketClient(options?: WebSocketClientOptions): WebSocketClient {
  if (shared === null) {
    shared = new WebSocketClient(options);
  } else if (options !== undefined) {
    shared.configure(options);
  }
  return shared;
}

/** Disconnect and forget the singleton (tests, logout). */
export function resetWebSocketClient(): void {
  shared?.disconnect();
  shared = null;
}

/** A new, independent client (not the singleton). */
export function createWebSocketClient(options?: WebSocketClientOptions): WebSocketClient {
  return new WebSocketClient(options);
}
