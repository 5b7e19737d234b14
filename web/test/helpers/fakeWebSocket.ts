import type { CloseEventLike, MessageEventLike, WebSocketClientOptions, WebSocketLike } from "../../src/lib/websocket.js";
import { WebSocketClient } from "../../src/lib/websocket.js";

type Handler<E> = ((event: E) => void) | null;

/**
 * A WebSocket double: records what the client sends; the test drives the server side
 * (open, receive, close) by hand. Like a browser, close() does not fire onclose by itself.
 */
export class FakeWebSocket implements WebSocketLike {
  static instances: FakeWebSocket[] = [];

  static reset(): void {
    FakeWebSocket.instances = [];
  }

  static get latest(): FakeWebSocket {
    const socket = FakeWebSocket.instances[FakeWebSocket.instances.length - 1];
    if (socket === undefined) throw new Error("no FakeWebSocket was created");
    return socket;
  }

  readonly url: string;
  /** The subprotocols the client offered (undefined: none). */
  readonly protocols: string | string[] | undefined;
  /** The subprotocol the server selected, set by open(). */
  protocol = "";
  readyState = 0;
  readonly sent: string[] = [];
  readonly closeCalls: Array<{ code: number | undefined; reason: string | undefined }> = [];
  onopen: Handler<unknown> = null;
  onmessage: Handler<MessageEventLike> = null;
  onclose: Handler<CloseEventLike> = null;
  onerror: Handler<unknown> = null;

  constructor(url: string, protocols?: string | string[]) {
    this.url = url;
    this.protocols = protocols;
    FakeWebSocket.instances.push(this);
  }

  send(data: string): void {
    if (this.readyState !== 1) throw new Error("InvalidStateError: socket not open");
    this.sent.push(data);
  }

  close(code?: number, reason?: string): void {
    this.closeCalls.push({ code, reason });
    if (this.readyState < 2) this.readyState = 2;
  }

  // ---- server side, driven by the test

  /** The handshake completes (the server selects `protocol`, default none). */
  open(protocol = ""): void {
    this.protocol = protocol;
    this.readyState = 1;
    this.onopen?.({ type: "open" });
  }

  /** A frame arrives: an object is sent as one JSON text frame, a string as is. */
  receive(frame: unknown): void {
    this.onmessage?.({ data: typeof frame === "string" ? frame : JSON.stringify(frame) });
  }

  /** The connection ends (server close, network drop, or the end of our own close()). */
  serverClose(code = 1006, reason = ""): void {
    this.readyState = 3;
    this.onclose?.({ code, reason, wasClean: code !== 1006 });
  }

  /** The client's messages, parsed. */
  get messages(): Array<{ type: string; data?: Record<string, unknown>; timestamp?: string }> {
    return this.sent.map((s) => JSON.parse(s) as { type: string; data?: Record<string, unknown> });
  }

  messagesOfType(type: string): Array<{ type: string; data?: Record<string, unknown> }> {
    return this.messages.filter((m) => m.type === type);
  }

  get token(): string | null {
    return new URL(this.url).searchParams.get("token");
  }
}

export const TEST_URL = "ws://gateway.test/ws";

/** A client on FakeWebSocket with deterministic jitter and no keepalive pings. */
export function makeClient(options: WebSocketClientOptions = {}): WebSocketClient {
  return new WebSocketClient({
    url: TEST_URL,
    WebSocketImpl: FakeWebSocket,
    pingIntervalMs: 0,
    random: () => 0.5,
    debug: false,
    ...options,
  });
}

/** A server event frame. */
export function event(
  type: string,
  id: string,
  data: Record<string, unknown> = {},
): { type: string; id: string; timestamp: string; data: Record<string, unknown> } {
  return { type, id, timestamp: "2025-11-26T10:00:00Z", data };
}

export function executionEvent(
  type: string,
  id: string,
  executionId: string,
  extra: Record<string, unknown> = {},
) {
  return event(type, id, { execution_id: executionId, workflow_id: "wf_1", status: "running", ...extra });
}

export function subscribed(channel: string, extra: Record<string, unknown> = {}) {
  return { type: "subscribed", timestamp: "2025-11-26T10:00:00Z", data: { channel, filters: {}, position: "0-0", ...extra } };
}
