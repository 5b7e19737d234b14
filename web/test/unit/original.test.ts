/**
 * The original client's runtime surface (../shared/reference/original-client-surface.md),
 * as flowwire keeps it: the token from localStorage 'auth_token', VITE_WS_URL as a bare
 * host, the options autoReconnect / reconnectInterval / maxReconnectAttempts (honoured,
 * with jitter), disconnectWebSocket(), the client's own `subscribed` signal on open,
 * send() warning when not open, handlers isolated from each other.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import {
  disconnectWebSocket,
  getWebSocketClient,
  resolvePolicy,
  WebSocketClient,
  type WebSocketEventHandler,
  type WebSocketMessage,
} from "../../src/index.js";
import { resolveSocketUrl } from "../../src/lib/url.js";
import { FakeWebSocket, executionEvent, makeClient, subscribed } from "../helpers/fakeWebSocket.js";

beforeEach(() => {
  FakeWebSocket.reset();
  vi.useFakeTimers();
  localStorage.clear();
});

afterEach(() => {
  vi.useRealTimers();
  vi.unstubAllEnvs();
  vi.unstubAllGlobals();
  disconnectWebSocket();
  localStorage.clear();
});

describe("token", () => {
  it("defaults to localStorage 'auth_token', read on every connect", () => {
    localStorage.setItem("auth_token", "stored-1");
    const client = new WebSocketClient({ url: "ws://gw.test/ws", WebSocketImpl: FakeWebSocket, pingIntervalMs: 0 });
    client.connect();
    expect(FakeWebSocket.latest.token).toBe("stored-1");
    localStorage.setItem("auth_token", "stored-2");
    FakeWebSocket.latest.serverClose(1006);
    vi.advanceTimersByTime(3000);
    expect(FakeWebSocket.latest.token).toBe("stored-2");
    client.disconnect();
  });

  it("connects without a token when there is none stored, and getToken overrides the default", () => {
    const none = new WebSocketClient({ url: "ws://gw.test/ws", WebSocketImpl: FakeWebSocket, pingIntervalMs: 0 });
    none.connect();
    expect(FakeWebSocket.latest.url).toBe("ws://gw.test/ws");
    none.disconnect();
    localStorage.setItem("auth_token", "stored");
    const own = makeClient({ getToken: () => "given" });
    own.connect();
    expect(FakeWebSocket.latest.token).toBe("given");
    own.disconnect();
  });
});

describe("VITE_WS_URL", () => {
  it("as a bare host, as the original expected it: scheme from the page, path /ws", () => {
    vi.stubGlobal("location", { protocol: "http:", host: "localhost:3000" });
    expect(resolveSocketUrl(undefined, "127.0.0.1:8080")).toBe("ws://127.0.0.1:8080/ws");
    expect(resolveSocketUrl(undefined, "localhost:8080")).toBe("ws://localhost:8080/ws");
    expect(resolveSocketUrl(undefined, "gw.example.com")).toBe("ws://gw.example.com/ws");
    expect(resolveSocketUrl(undefined, "gw.example.com/realtime/ws")).toBe("ws://gw.example.com/realtime/ws");
    vi.stubGlobal("location", { protocol: "https:", host: "app.example" });
    expect(resolveSocketUrl(undefined, "gw.example.com:8443")).toBe("wss://gw.example.com:8443/ws");
    expect(resolveSocketUrl(undefined, "//gw.example.com")).toBe("wss://gw.example.com/ws");
  });

  it("with a scheme, with or without a path; or a path on the page's host", () => {
    vi.stubGlobal("location", { protocol: "http:", host: "localhost:3000" });
    expect(resolveSocketUrl(undefined, "ws://localhost:8080")).toBe("ws://localhost:8080/ws");
    expect(resolveSocketUrl(undefined, "wss://gw.example.com/custom")).toBe("wss://gw.example.com/custom");
    expect(resolveSocketUrl(undefined, "http://127.0.0.1:8080")).toBe("ws://127.0.0.1:8080/ws");
    expect(resolveSocketUrl(undefined, "/gateway/ws")).toBe("ws://localhost:3000/gateway/ws");
  });

  it("without a page: a bare host gets ws:", () => {
    vi.stubGlobal("location", undefined);
    expect(resolveSocketUrl(undefined, "127.0.0.1:8080")).toBe("ws://127.0.0.1:8080/ws");
  });

  it("is what the client connects to when no url option is given", () => {
    vi.stubEnv("VITE_WS_URL", "127.0.0.1:8080");
    const client = new WebSocketClient({ WebSocketImpl: FakeWebSocket, pingIntervalMs: 0, getToken: () => "t" });
    client.connect();
    expect(FakeWebSocket.latest.url).toBe("ws://127.0.0.1:8080/ws?token=t");
    client.disconnect();
  });
});

describe("the original's reconnect options", () => {
  it("maps autoReconnect, reconnectInterval and maxReconnectAttempts onto the policy", () => {
    expect(resolvePolicy({})).toMatchObject({ reconnect: true, backoff: { initialDelayMs: 3000, maxRetries: null } });
    expect(resolvePolicy({ autoReconnect: false }).reconnect).toBe(false);
    expect(resolvePolicy({ reconnectInterval: 500, maxReconnectAttempts: 4 }).backoff).toMatchObject({
      initialDelayMs: 500,
      maxRetries: 4,
      maxDelayMs: 60_000,
    });
    expect(resolvePolicy({ maxReconnectAttempts: Infinity }).backoff.maxRetries).toBeNull();
    // A first delay above the default cap raises the cap.
    expect(resolvePolicy({ reconnectInterval: 90_000 }).backoff.maxDelayMs).toBe(90_000);
  });

  it("refuses bad values and contradictions with a clear error", () => {
    expect(() => new WebSocketClient({ reconnectInterval: -1 })).toThrow(/reconnectInterval/);
    expect(() => new WebSocketClient({ maxReconnectAttempts: 2.5 })).toThrow(/maxReconnectAttempts/);
    expect(() => new WebSocketClient({ autoReconnect: true, reconnect: false })).toThrow(/disagree/);
    expect(() => new WebSocketClient({ reconnectInterval: 100, backoff: { initialDelayMs: 200 } })).toThrow(/disagree/);
    const client = getWebSocketClient({ url: "ws://a/ws" });
    expect(() => getWebSocketClient({ maxReconnectAttempts: -3 })).toThrow(RangeError);
    expect(getWebSocketClient()).toBe(client); // the refused update changed nothing
  });

  it("autoReconnect: false: no reconnect after an unexpected close", () => {
    const client = makeClient({ autoReconnect: false });
    client.connect();
    FakeWebSocket.latest.open();
    FakeWebSocket.latest.serverClose(1006);
    vi.advanceTimersByTime(10 * 60_000);
    expect(FakeWebSocket.instances).toHaveLength(1);
    expect(client.state).toBe("disconnected");
  });

  it("reconnectInterval is the first delay's ceiling, doubling with jitter; maxReconnectAttempts is honoured", () => {
    const client = makeClient({ reconnectInterval: 1000, maxReconnectAttempts: 3, random: () => 0.5 });
    client.connect();
    FakeWebSocket.latest.open();
    FakeWebSocket.latest.serverClose(1006);
    const delays: number[] = [];
    let last = Date.now();
    for (let attempt = 0; attempt < 3; attempt += 1) {
      const before = FakeWebSocket.instances.length;
      while (FakeWebSocket.instances.length === before) vi.advanceTimersByTime(1);
      delays.push(Date.now() - last);
      last = Date.now();
      FakeWebSocket.latest.serverClose(1006);
    }
    expect(delays).toEqual([500, 1000, 2000]);
    vi.advanceTimersByTime(10 * 60_000);
    expect(FakeWebSocket.instances).toHaveLength(4); // the first socket and 3 retries, no more
    expect(client.state).toBe("disconnected");
  });
});

describe("the original's events and calls", () => {
  it("emits its own `subscribed` (no data) on every open, after re-sending the subscriptions", () => {
    const client = makeClient();
    const seen: WebSocketMessage[] = [];
    const all: unknown[] = [];
    const handler: WebSocketEventHandler = (message) => {
      seen.push(message);
      expect(FakeWebSocket.latest.messagesOfType("subscribe")).toHaveLength(1);
    };
    client.on("subscribed", handler);
    client.on("*", (message) => all.push(message));
    client.subscribe("executions");
    client.connect();
    FakeWebSocket.latest.open();
    expect(seen).toHaveLength(1);
    expect(seen[0]).toEqual({ type: "subscribed", timestamp: expect.any(String) });
    // The server's confirmation also reaches the handler, with data.
    FakeWebSocket.latest.receive(subscribed("executions"));
    expect(seen[1]?.data).toMatchObject({ channel: "executions" });
    // "*" gets server messages only.
    expect(all).toHaveLength(1);
    FakeWebSocket.latest.serverClose(1006);
    vi.advanceTimersByTime(3000);
    FakeWebSocket.latest.open();
    expect(seen.filter((m) => m.data === undefined)).toHaveLength(2);
    client.disconnect();
  });

  it("send() sends any WebSocketMessage when open, warns and drops it when not", () => {
    const warn = vi.spyOn(console, "warn").mockImplementation(() => {});
    const client = makeClient();
    const message: WebSocketMessage = { type: "ping", timestamp: new Date().toISOString() };
    expect(client.send(message)).toBe(false);
    expect(warn).toHaveBeenCalledTimes(1);
    expect(warn.mock.calls[0]?.join(" ")).toMatch(/not connected/);
    client.connect();
    FakeWebSocket.latest.open();
    expect(client.send(message)).toBe(true);
    expect(FakeWebSocket.latest.messagesOfType("ping")).toHaveLength(1);
    expect(warn).toHaveBeenCalledTimes(1);
    client.disconnect();
  });

  it("a throwing handler is logged and the others still run; a non-JSON frame is logged and dropped", () => {
    const error = vi.spyOn(console, "error").mockImplementation(() => {});
    const warn = vi.spyOn(console, "warn").mockImplementation(() => {});
    const client = makeClient();
    const got: string[] = [];
    client.on("execution.failed", () => {
      throw new Error("boom");
    });
    client.on("execution.failed", (message) => got.push(message.data.execution_id));
    client.connect();
    FakeWebSocket.latest.open();
    FakeWebSocket.latest.receive("not json {");
    FakeWebSocket.latest.receive(executionEvent("execution.failed", "1-1", "exec_1", { status: "failed" }));
    expect(got).toEqual(["exec_1"]);
    expect(error).toHaveBeenCalledTimes(1);
    expect(warn).toHaveBeenCalledTimes(1);
    expect(warn.mock.calls[0]?.join(" ")).toMatch(/not one JSON value: not json \{/);
    client.disconnect();
  });

  it("an optional field a publisher wrote as null arrives absent", () => {
    const client = makeClient();
    const got: Array<Record<string, unknown>> = [];
    client.on("execution.completed", (message) => got.push(message.data));
    client.connect();
    FakeWebSocket.latest.open();
    FakeWebSocket.latest.receive(
      executionEvent("execution.completed", "1-1", "exec_1", { status: "completed", result: null, error_message: null }),
    );
    expect(got).toHaveLength(1);
    expect(got[0]).toEqual({ execution_id: "exec_1", workflow_id: "wf_1", status: "completed" });
    client.disconnect();
  });

  it("disconnectWebSocket() disconnects the singleton and forgets it", () => {
    const first = getWebSocketClient({ url: "ws://gw.test/ws", WebSocketImpl: FakeWebSocket, pingIntervalMs: 0 });
    first.connect();
    FakeWebSocket.latest.open();
    disconnectWebSocket();
    expect(first.state).toBe("disconnected");
    expect(FakeWebSocket.latest.closeCalls).toEqual([{ code: 1000, reason: "client disconnect" }]);
    expect(getWebSocketClient()).not.toBe(first);
  });
});
