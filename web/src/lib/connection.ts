/**
 * One socket at a time: opening it (token, URL), its state, what each close code means,
 * reconnecting with exponential backoff and full jitter, and the keepalive ping. Every
 * socket handler first checks that its socket is still the current one, so a late event
 * of a replaced socket can neither touch the new one nor start another connection.
 */
import { backoffDelay, parseRestartDelayMs, promptDelay, shouldRetry } from "./backoff.js";
import {
  V2_JSON,
  resolvePolicy,
  storedToken,
  type ConnectionState,
  type TokenReason,
  type TokenValue,
  type WebSocketClientOptions,
} from "./options.js";
import {
  CLIENT_ABANDON,
  CloseCode,
  DEBUG_NAMESPACE,
  OPEN,
  type CloseEventLike,
  type MessageEventLike,
  type WebSocketConstructor,
  type WebSocketLike,
} from "./socket.js";
import { ConfigurationError, redactToken, resolveSocketUrl, withToken } from "./url.js";

/** What the connection tells the client. */
export interface ConnectionEvents {
  /** A socket opened (state is "connected"): send the subscriptions. */
  opened(): void;
  /** A frame arrived on the current socket. */
  frame(raw: unknown): void;
  /** The current socket was let go (closed, abandoned, disconnected). */
  detached(): void;
  /** The state changed. */
  stateChanged(state: ConnectionState): void;
}

function isPromiseLike<T>(value: unknown): value is PromiseLike<T> {
  return value !== null && typeof value === "object" && typeof (value as { then?: unknown }).then === "function";
}

export class Connection {
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

  constructor(
    private readonly options: () => WebSocketClientOptions,
    private readonly events: ConnectionEvents,
    private readonly log: (...args: unknown[]) => void,
  ) {}

  get state(): ConnectionState {
    return this.state_;
  }

  get socket(): WebSocketLike | null {
    return this.socket_;
  }

  /** Connected, with a socket open: a message sent now goes out. */
  get open(): boolean {
    return this.state_ === "connected" && this.socket_ !== null && this.socket_.readyState === OPEN;
  }

  /** Open the connection (no-op when already connecting, connected or waiting to retry). */
  connect(): void {
    if (this.wanted && (this.socket_ !== null || this.reconnectTimer !== null || this.state_ === "connecting")) {
      return;
    }
    this.wanted = true;
    this.attempt = 0;
    this.start("connect");
  }

  /** Close with 1000 and stop reconnecting. */
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

  /** The subprotocol of the open socket: "flowwire.v2.json", or null (version 1). */
  get protocol(): string | null {
    const selected = this.socket_?.protocol;
    return selected === V2_JSON ? selected : null;
  }

  /**
   * Protocol version 2's `token_expiring`: ask getToken() for a fresh token and send it
   * in-band (`refresh`). A token that is missing, or a getToken() that fails, leaves the
   * connection to its 4001 close and the usual reconnect.
   */
  refreshToken(): void {
    const socket = this.socket_;
    const generation = this.generation;
    const send = (token: TokenValue): void => {
      if (this.socket_ !== socket || generation !== this.generation) return;
      if (typeof token !== "string" || token === "") {
        this.log("getToken gave no token to refresh with");
        return;
      }
      this.transmit({ type: "refresh", data: { token } });
    };
    let token: TokenValue | PromiseLike<TokenValue>;
    try {
      token = (this.options().getToken ?? storedToken)({ reason: "refresh" });
    } catch (err) {
      this.log("getToken threw", err);
      return;
    }
    if (isPromiseLike<TokenValue>(token)) {
      token.then(send, (err: unknown) => this.log("getToken rejected", err));
    } else {
      send(token);
    }
  }

  /** Send one message as one text frame; false when the socket is not open. */
  transmit(message: unknown): boolean {
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

  // ------------------------------------------------------------------ opening

  private random(): number {
    return (this.options().random ?? Math.random)();
  }

  private start(reason: TokenReason): void {
    const generation = ++this.generation;
    this.setState("connecting");
    let token: TokenValue | PromiseLike<TokenValue>;
    try {
      token = (this.options().getToken ?? storedToken)({ reason });
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
      const options = this.options();
      const url = withToken(resolveSocketUrl(options.url), token);
      const Impl = options.WebSocketImpl ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
      if (Impl === undefined) {
        throw new ConfigurationError(
          "flowwire: no WebSocket implementation (pass options.WebSocketImpl, e.g. the `ws` package)",
        );
      }
      this.log("connecting to", redactToken(url));
      socket = options.protocol === "v1" ? new Impl(url) : new Impl(url, [V2_JSON]);
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
    socket.onopen = () => {
      if (this.socket_ === socket) this.handleOpen();
    };
    socket.onmessage = (event: MessageEventLike) => {
      if (this.socket_ !== socket) return;
      this.sawActivity();
      this.events.frame(event.data);
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
    this.lastActivity = Date.now();
    this.setState("connected");
    this.events.opened();
    this.schedulePing();
  }

  // ------------------------------------------------------------------ closing, reconnecting

  private handleClose(code: number, reason: string): void {
    this.log("closed", code, reason);
    this.detach();
    const policy = resolvePolicy(this.options());
    if (!this.wanted || !policy.reconnect) {
      this.wanted = false;
      this.setState("disconnected");
      return;
    }
    const prompt = () => promptDelay(policy.backoff, () => this.random());
    switch (code) {
      case CloseCode.TOKEN_EXPIRED:
        this.scheduleReconnect(prompt(), "expired");
        return;
      case CloseCode.SERVICE_RESTART: {
        const asked = parseRestartDelayMs(reason);
        this.scheduleReconnect(asked !== null ? Math.min(asked, policy.backoff.maxDelayMs) : prompt(), "reconnect");
        return;
      }
      case CloseCode.SLOW_CONSUMER:
        this.scheduleReconnect(prompt(), "reconnect");
        return;
      default:
        this.retryAfterFailure();
    }
  }

  /** Reconnect with exponential backoff and full jitter, unless out of retries. */
  private retryAfterFailure(): void {
    const policy = resolvePolicy(this.options()).backoff;
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
      if (this.wanted && this.socket_ === null) this.start(reason);
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
    this.events.detached();
  }

  private clearReconnectTimer(): void {
    if (this.reconnectTimer !== null) {
      clearTimeout(this.reconnectTimer);
      this.reconnectTimer = null;
    }
  }

  // ------------------------------------------------------------------ keepalive

  /** Anything received shows the connection is alive. */
  private sawActivity(): void {
    this.lastActivity = Date.now();
    if (this.pongTimer !== null) {
      clearTimeout(this.pongTimer);
      this.pongTimer = null;
    }
  }

  /** Ping after `pingIntervalMs` without any inbound frame; abandon the socket if still silent. */
  private schedulePing(delay = this.options().pingIntervalMs ?? 25_000): void {
    const interval = this.options().pingIntervalMs ?? 25_000;
    if (interval <= 0 || this.pingTimer !== null) return;
    this.pingTimer = setTimeout(() => {
      this.pingTimer = null;
      if (this.socket_ === null) return;
      const idle = Date.now() - this.lastActivity;
      if (idle < interval) {
        this.schedulePing(interval - idle);
        return;
      }
      if (!this.transmit({ type: "ping", timestamp: new Date().toISOString() })) return;
      if (this.pongTimer === null) {
        this.pongTimer = setTimeout(() => {
          this.pongTimer = null;
          this.abandonSocket("no reply to ping");
        }, this.options().pongTimeoutMs ?? 10_000);
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

  private setState(state: ConnectionState): void {
    if (this.state_ === state) return;
    this.state_ = state;
    this.log("state", state);
    this.events.stateChanged(state);
  }
}
