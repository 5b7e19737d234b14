/**
 * The flowwire WebSocket client: one socket, remembered and reference-counted
 * subscriptions, resume from the last event id after every reconnect, exponential
 * backoff with full jitter, one dispatch per event.
 *
 * Split by job, as the server's core is: connection.ts (the socket, its state, close
 * codes, backoff, keepalive), subscriptions.ts (held channels, reference counts, merged
 * filters, confirmations), resume.ts (the cursor, duplicates), dispatch.ts (handlers),
 * options.ts (options and the reconnect policy). This class wires them and reads frames.
 */
import { Connection } from "./connection.js";
import { createDebugLogger, debugEnabled, readDebugSetting } from "./debug.js";
import { Dispatcher } from "./dispatch.js";
import { isEventId } from "./ids.js";
import { resolvePolicy, type ConnectionState, type WebSocketClientOptions } from "./options.js";
import { PresenceTracker, type PresenceListener, type PresenceSnapshot } from "./presence.js";
import { ResumeCursor } from "./resume.js";
import { DEBUG_NAMESPACE, type WebSocketLike } from "./socket.js";
import { Subscriptions } from "./subscriptions.js";
import type {
  ClientEventMap,
  ClientEventHandler,
  ClientEventType,
  ClientMessage,
  ConnectedSignal,
  ResyncMessage,
  ServerMessage,
  SubscribeOptions,
  SubscriptionFilters,
  WebSocketMessage,
} from "./types.js";

export { CloseCode, DEBUG_NAMESPACE } from "./socket.js";
export type { CloseEventLike, MessageEventLike, WebSocketConstructor, WebSocketLike } from "./socket.js";
export { resolvePolicy } from "./options.js";
export type { ConnectionState, ProtocolChoice, TokenReason, TokenValue, WebSocketClientOptions } from "./options.js";
export { V2_JSON } from "./options.js";

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

function now(): string {
  return new Date().toISOString();
}

export class WebSocketClient {
  private options: WebSocketClientOptions;
  private debugOn: boolean;
  private readonly log = createDebugLogger(DEBUG_NAMESPACE, () => this.debugOn);
  private readonly dispatcher = new Dispatcher();
  private readonly cursor = new ResumeCursor();
  private readonly connection: Connection;
  private readonly subscriptions: Subscriptions;
  private readonly presenceTracker: PresenceTracker;

  constructor(options: WebSocketClientOptions = {}) {
    this.options = { ...options };
    resolvePolicy(this.options); // fail fast on a bad policy
    this.debugOn = this.computeDebug();
    this.connection = new Connection(
      () => this.options,
      {
        opened: () => this.handleOpen(),
        frame: (raw) => this.handleFrame(raw),
        detached: () => {
          this.presenceTracker.detached();
          if (this.subscriptions.reset()) this.dispatcher.notifyStatus();
        },
        stateChanged: () => this.dispatcher.notifyStatus(),
      },
      this.log,
    );
    this.subscriptions = new Subscriptions(
      (message) => this.connection.transmit(message),
      () => this.connection.open,
      this.log,
    );
    this.presenceTracker = new PresenceTracker(
      (message) => this.connection.transmit(message),
      () => this.connection.open,
    );
  }

  // ------------------------------------------------------------------ public surface

  /** The connection state: disconnected, connecting, connected, reconnecting. */
  get state(): ConnectionState {
    return this.connection.state;
  }

  getState(): ConnectionState {
    return this.connection.state;
  }

  isConnected(): boolean {
    return this.connection.state === "connected";
  }

  /** The id of the last event received. */
  get lastEventId(): string | null {
    return this.cursor.lastEventId;
  }

  /**
   * Where the next reconnect resumes from: the last event id, or a later `position` the
   * client adopted (the highest one before any event, or the one a `recovered: false`
   * reply moved it to).
   */
  get resumeCursor(): string | null {
    return this.cursor.cursor;
  }

  /** The subprotocol the gateway selected: "flowwire.v2.json", or null (version 1). */
  get protocol(): string | null {
    return this.connection.protocol;
  }

  /** The current socket, for diagnostics and tests (e.g. to drop it); null when none. */
  get socket(): WebSocketLike | null {
    return this.connection.socket;
  }

  /** Channels currently remembered (subscribed by at least one caller). */
  get channelNames(): string[] {
    return this.subscriptions.names;
  }

  /** True when the channel is remembered (it will be subscribed whenever connected). */
  isSubscribed(channel: string): boolean {
    return this.subscriptions.has(channel);
  }

  /** True when connected and the server confirmed the channel on this connection. */
  isLive(channel: string): boolean {
    return this.connection.state === "connected" && this.subscriptions.acked(channel);
  }

  /** Number of active subscribe() calls for the channel. */
  subscriberCount(channel: string): number {
    return this.subscriptions.count(channel);
  }

  /**
   * Update options (getToken, url, …); they apply from the next connect. Options given
   * as undefined are left as they were; a bad policy throws and changes nothing.
   */
  configure(options: WebSocketClientOptions): void {
    const given = Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined));
    const next: WebSocketClientOptions = {
      ...this.options,
      ...given,
      backoff: { ...this.options.backoff, ...options.backoff },
    };
    resolvePolicy(next);
    this.options = next;
    this.debugOn = this.computeDebug();
  }

  /** Open the connection (no-op when already connecting, connected or waiting to retry). */
  connect(): void {
    this.debugOn = this.computeDebug();
    this.connection.connect();
  }

  /** Close the connection and stop reconnecting. Subscriptions stay remembered. */
  disconnect(): void {
    this.connection.disconnect();
  }

  /**
   * Subscribe to a channel (executions, executions:{id}, workflows:{id}, approvals,
   * users:{id}). Reference-counted: the channel stays subscribed until every subscribe()
   * has been undone. Sent now if open, else when the socket opens. Returns a function
   * that undoes exactly this call.
   */
  subscribe(channel: string, filters?: SubscriptionFilters, options?: SubscribeOptions): () => void {
    if (typeof channel !== "string" || channel === "") throw new TypeError("subscribe: channel must be a non-empty string");
    const holder = this.subscriptions.add(channel, filters, options?.conflate === true);
    this.dispatcher.notifyStatus();
    let undone = false;
    return () => {
      if (undone) return;
      undone = true;
      if (this.subscriptions.remove(channel, holder)) this.dispatcher.notifyStatus();
    };
  }

  /**
   * Undo one subscribe() of the channel: the one with equal filters when given, else the
   * most recent. The `unsubscribe` message goes out when the last one is undone.
   */
  unsubscribe(channel: string, filters?: SubscriptionFilters): void {
    const holder = this.subscriptions.find(channel, filters);
    if (holder !== null && this.subscriptions.remove(channel, holder)) this.dispatcher.notifyStatus();
  }

  /** Listen to a message type ("*": every server message; "resync": see ResyncMessage). Returns off(). */
  on<T extends ClientEventType>(type: T, handler: ClientEventHandler<T>): () => void {
    return this.dispatcher.on(type, handler);
  }

  off<T extends ClientEventType>(type: T, handler: ClientEventHandler<T>): void {
    this.dispatcher.off(type, handler);
  }

  /**
   * Be told when state, subscriptions or confirmations change (for React's
   * useSyncExternalStore). Returns an unsubscribe function.
   */
  onStatusChange = (listener: () => void): (() => void) => this.dispatcher.onStatusChange(listener);

  /**
   * Send a message (`ping`, `subscribe`, `unsubscribe`; the original accepted any
   * WebSocketMessage and so does this). When the socket is not open the message is not
   * sent: a warning is logged and false returned. Prefer subscribe()/unsubscribe(),
   * which the client remembers and re-sends on reconnect.
   */
  send(message: ClientMessage | WebSocketMessage): boolean {
    if (!this.connection.transmit(message)) {
      console.warn(`[${DEBUG_NAMESPACE}] not connected: message not sent (${String(message.type)})`);
      return false;
    }
    return true;
  }

  // ------------------------------------------------------------------ presence

  /**
   * Who is connected in the organization (no channel), or subscribed to `channel`, over
   * every gateway instance: resolves with the `presence.state` reply; rejects with a
   * PresenceError (the server's code, NOT_CONNECTED or TIMEOUT).
   */
  presence(channel?: string): Promise<PresenceSnapshot> {
    return this.presenceTracker.query(channel);
  }

  /**
   * Be told of a scope's members (channel null: the organization) while watched: once
   * the gateway answers, then on every join or leave (coalesced by the gateway), and
   * again after each reconnect. Reference-counted; returns a function that undoes it.
   */
  watchPresence(channel: string | null, listener: PresenceListener): () => void {
    return this.presenceTracker.watch(channel, listener);
  }

  // ------------------------------------------------------------------ wiring

  private computeDebug(): boolean {
    return this.options.debug ?? debugEnabled(DEBUG_NAMESPACE, readDebugSetting());
  }

  private handleOpen(): void {
    // Version 2: `hello` must be the connection's first message.
    if (this.connection.protocol !== null) {
      this.connection.transmit({ type: "hello", data: { features: ["token_refresh"] } });
    }
    // Every remembered subscription, with its filters, resuming from the cursor.
    this.subscriptions.resubscribeAll(this.cursor.cursor);
    this.presenceTracker.reopened();
    // The original client's own "connected" signal: a `subscribed` without data.
    const signal: ConnectedSignal = { type: "subscribed", timestamp: now() };
    this.dispatcher.emit("subscribed", signal, false);
  }

  /** One frame is one JSON message; it is never split on newlines. */
  private handleFrame(raw: unknown): void {
    if (typeof raw !== "string") {
      this.log("ignoring a non-text frame");
      return;
    }
    let message: unknown;
    try {
      message = JSON.parse(raw);
    } catch {
      // Logged and dropped, as the original client did (the gateway never sends one).
      console.warn(`[${DEBUG_NAMESPACE}] dropping a frame that is not one JSON value:`, raw.slice(0, 200));
      return;
    }
    if (!isRecord(message) || typeof message["type"] !== "string") {
      this.log("ignoring a frame without a type");
      return;
    }
    const type = message["type"];
    if (type === "welcome" || type === "token_expiring" || type === "refreshed") {
      // Version 2's own messages: handled here, to their own handlers only (not "*").
      this.log(type, message["data"]);
      if (type === "token_expiring") this.connection.refreshToken();
      this.dispatcher.emit(type, message as unknown as ClientEventMap[typeof type], false);
      return;
    }
    this.presenceTracker.handle(type, message);
    if (type === "subscribed") {
      this.handleSubscribed(message);
    } else if (type === "error") {
      // A refused subscribe never gets its `subscribed`, so isLive() stays false for it;
      // a refused change leaves the previous subscription in force ("changes nothing").
      const data = isRecord(message["data"]) ? message["data"] : {};
      this.log("server error", data["code"], data["message"]);
    } else if (type !== "unsubscribed" && type !== "pong") {
      const id = message["id"];
      // Each event is delivered once; an id not after the cursor was already handled.
      if (isEventId(id) && !this.cursor.accept(id, message["cursor"])) {
        this.log("dropping duplicate event", id);
        return;
      }
      // An optional field is absent or has a value: a null some publisher wrote is dropped.
      const data = message["data"];
      if (isRecord(data)) {
        for (const key of Object.keys(data)) if (data[key] === null) delete data[key];
      }
    }
    this.dispatcher.emit(type, message as unknown as ServerMessage, true);
  }

  private handleSubscribed(message: Record<string, unknown>): void {
    const data = isRecord(message["data"]) ? message["data"] : {};
    const channel = data["channel"];
    const position = data["position"];
    this.cursor.live(position);
    if (typeof channel !== "string") return;
    const confirmation = this.subscriptions.confirm(channel);
    if (confirmation === null) return; // unsubscribed meanwhile
    if (confirmation.newly) this.dispatcher.notifyStatus();
    if (data["recovered"] === false) {
      this.cursor.skipTo(position);
      const resync: ResyncMessage = {
        type: "resync",
        timestamp: now(),
        data: { channel, since: confirmation.since, position: isEventId(position) ? position : null },
      };
      this.log("resume impossible, state must be reloaded:", channel);
      this.dispatcher.emit("resync", resync, false);
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

/**
 * Disconnect the singleton and forget it (logout, tests): the next getWebSocketClient()
 * makes a new client. The original's name; resetWebSocketClient() is the same function.
 */
export function disconnectWebSocket(): void {
  shared?.disconnect();
  shared = null;
}

export const resetWebSocketClient = disconnectWebSocket;

/** A new, independent client (not the singleton). */
export function createWebSocketClient(options?: WebSocketClientOptions): WebSocketClient {
  return new WebSocketClient(options);
}
