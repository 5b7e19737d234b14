import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import {
  getWebSocketClient,
  resetWebSocketClient,
  WebSocketClient,
} from "../../src/lib/websocket.js";
import type { ResyncMessage } from "../../src/lib/types.js";
import { FakeWebSocket, TEST_URL, event, executionEvent, makeClient, subscribed } from "../helpers/fakeWebSocket.js";

beforeEach(() => {
  FakeWebSocket.reset();
  vi.useFakeTimers();
});

afterEach(() => {
  vi.useRealTimers();
  resetWebSocketClient();
});

/** Connect and complete the handshake. */
function connected(client: WebSocketClient): FakeWebSocket {
  client.connect();
  const socket = FakeWebSocket.latest;
  socket.open();
  return socket;
}

describe("connecting", () => {
  it("gets a token from getToken() and sends it as ?token=", () => {
    const getToken = vi.fn(() => "jwt-1");
    const client = makeClient({ getToken });
    client.connect();
    expect(getToken).toHaveBeenCalledTimes(1);
    expect(getToken).toHaveBeenCalledWith({ reason: "connect" });
    expect(FakeWebSocket.instances).toHaveLength(1);
    expect(FakeWebSocket.latest.url).toBe(`${TEST_URL}?token=jwt-1`);
    expect(client.state).toBe("connecting");
    FakeWebSocket.latest.open();
    expect(client.state).toBe("connected");
    expect(client.isConnected()).toBe(true);
  });

  it("waits for an async getToken() and drops it when disconnected meanwhile", async () => {
    let resolve: (token: string) => void = () => {};
    const client = makeClient({ getToken: () => new Promise<string>((r) => (resolve = r)) });
    client.connect();
    expect(FakeWebSocket.instances).toHaveLength(0);
    resolve("late");
    await Promise.resolve();
    expect(FakeWebSocket.latest.token).toBe("late");

    const client2 = makeClient({ getToken: () => new Promise<string>((r) => (resolve = r)) });
    client2.connect();
    client2.disconnect();
    resolve("too-late");
    await Promise.resolve();
    expect(FakeWebSocket.instances).toHaveLength(1); // none for client2
  });

  it("connect() twice makes one socket", () => {
    const client = makeClient();
    client.connect();
    client.connect();
    FakeWebSocket.latest.open();
    client.connect();
    expect(FakeWebSocket.instances).toHaveLength(1);
  });

  it("disconnect() closes with 1000 and does not reconnect", () => {
    const client = makeClient();
    const socket = connected(client);
    client.disconnect();
    expect(socket.closeCalls).toEqual([{ code: 1000, reason: "client disconnect" }]);
    socket.serverClose(1000);
    vi.advanceTimersByTime(10 * 60_000);
    expect(FakeWebSocket.instances).toHaveLength(1);
    expect(client.state).toBe("disconnected");
  });

  it("reports a configuration error instead of retrying forever", () => {
    const error = vi.spyOn(console, "error").mockImplementation(() => {});
    const client = makeClient({ url: "http://" }); // not a valid URL
    client.connect();
    expect(FakeWebSocket.instances).toHaveLength(0);
    expect(client.state).toBe("disconnected");
    expect(error).toHaveBeenCalled();
    vi.advanceTimersByTime(60_000);
    expect(FakeWebSocket.instances).toHaveLength(0);
  });
});

describe("reconnect backoff", () => {
  /** Times (ms after the first close) at which each new socket was created. */
  function reconnectTimes(client: WebSocketClient, failures: number): number[] {
    const times: number[] = [];
    const start = Date.now();
    FakeWebSocket.latest.serverClose(1006);
    for (let i = 0; i < failures; i += 1) {
      const before = FakeWebSocket.instances.length;
      // Step 1 ms at a time until the next socket appears (bounded).
      for (let t = 0; t < 200_000 && FakeWebSocket.instances.length === before; t += 1) {
        vi.advanceTimersByTime(1);
      }
      expect(FakeWebSocket.instances.length).toBe(before + 1);
      times.push(Date.now() - start);
      if (i < failures - 1) FakeWebSocket.latest.serverClose(1006); // fails again, never opened
    }
    void client;
    return times;
  }

  it("waits random*3s, then doubles the ceiling up to the cap (full jitter)", () => {
    // random() = 0.5: each delay is half its ceiling: 1.5 s, 3 s, 6 s, 12 s, 24 s, 30 s, 30 s
    const client = makeClient({ random: () => 0.5, backoff: { maxDelayMs: 60_000 } });
    connected(client);
    const times = reconnectTimes(client, 7);
    const delays = times.map((t, i) => t - (i === 0 ? 0 : (times[i - 1] as number)));
    expect(delays).toEqual([1500, 3000, 6000, 12_000, 24_000, 30_000, 30_000]);
  });

  it("honours initialDelayMs, multiplier and maxDelayMs", () => {
    const client = makeClient({
      random: () => 0.999999,
      backoff: { initialDelayMs: 100, multiplier: 3, maxDelayMs: 1000 },
    });
    connected(client);
    const times = reconnectTimes(client, 4);
    const delays = times.map((t, i) => t - (i === 0 ? 0 : (times[i - 1] as number)));
    expect(delays).toEqual([99, 299, 899, 999]);
  });

  it("keeps every delay within [0, ceiling) whatever the random source gives", () => {
    const samples = [0, 0.25, 0.999999, 0.1, 0.7];
    let i = 0;
    const client = makeClient({ random: () => samples[i++ % samples.length] as number });
    connected(client);
    const times = reconnectTimes(client, 5);
    const delays = times.map((t, k) => t - (k === 0 ? 0 : (times[k - 1] as number)));
    const ceilings = [3000, 6000, 12_000, 24_000, 48_000];
    delays.forEach((delay, k) => {
      expect(delay).toBeGreaterThanOrEqual(0);
      expect(delay).toBeLessThan(ceilings[k] as number);
    });
  });

  it("retries forever by default (more than the original's 10 attempts)", () => {
    const client = makeClient({ backoff: { maxDelayMs: 3000 } });
    connected(client);
    FakeWebSocket.latest.serverClose(1006);
    for (let i = 0; i < 25; i += 1) {
      vi.advanceTimersByTime(3000);
      FakeWebSocket.latest.serverClose(1006);
    }
    expect(FakeWebSocket.instances.length).toBe(26);
    expect(client.state).toBe("reconnecting");
  });

  it("stops after maxRetries", () => {
    const client = makeClient({ backoff: { maxRetries: 2 } });
    connected(client);
    FakeWebSocket.latest.serverClose(1006);
    vi.advanceTimersByTime(60_000);
    FakeWebSocket.latest.serverClose(1006);
    vi.advanceTimersByTime(60_000);
    FakeWebSocket.latest.serverClose(1006);
    vi.advanceTimersByTime(10 * 60_000);
    expect(FakeWebSocket.instances).toHaveLength(3);
    expect(client.state).toBe("disconnected");
  });

  it("resets to the first delay after a successful open", () => {
    const client = makeClient({ random: () => 0.5 });
    connected(client);
    FakeWebSocket.latest.serverClose(1006);
    vi.advanceTimersByTime(1500); // retry 1
    FakeWebSocket.latest.serverClose(1006);
    vi.advanceTimersByTime(3000); // retry 2
    expect(FakeWebSocket.instances).toHaveLength(3);
    FakeWebSocket.latest.open(); // success: reset
    FakeWebSocket.latest.serverClose(1006);
    vi.advanceTimersByTime(1499);
    expect(FakeWebSocket.instances).toHaveLength(3);
    vi.advanceTimersByTime(1);
    expect(FakeWebSocket.instances).toHaveLength(4);
  });

  it("gets a fresh token from getToken() on every reconnect", () => {
    let n = 0;
    const getToken = vi.fn(() => `jwt-${++n}`);
    const client = makeClient({ getToken });
    connected(client);
    FakeWebSocket.latest.serverClose(1006);
    vi.advanceTimersByTime(3000);
    expect(getToken).toHaveBeenCalledTimes(2);
    expect(getToken).toHaveBeenLastCalledWith({ reason: "reconnect" });
    expect(FakeWebSocket.latest.token).toBe("jwt-2");
  });
});

describe("close codes", () => {
  it("4001: calls getToken() again (reason 'expired') before reconnecting, promptly", () => {
    const tokens = ["old", "fresh"];
    const calls: string[] = [];
    const getToken = vi.fn(({ reason }: { reason: string }) => {
      calls.push(`getToken:${reason}:${FakeWebSocket.instances.length}`);
      return tokens.shift() ?? "none";
    });
    const client = makeClient({ getToken });
    connected(client);
    FakeWebSocket.latest.serverClose(4001, "token expired");
    expect(FakeWebSocket.instances).toHaveLength(1);
    vi.advanceTimersByTime(1000); // within promptDelayMs, not the 3 s backoff
    expect(FakeWebSocket.instances).toHaveLength(2);
    // The second getToken() call came before the second socket was made.
    expect(calls).toEqual(["getToken:connect:0", "getToken:expired:1"]);
    expect(FakeWebSocket.latest.token).toBe("fresh");
  });

  it("1012 with a delay in the reason reconnects after exactly that delay, resuming", () => {
    const client = makeClient();
    client.subscribe("executions");
    const first = connected(client);
    first.receive(subscribed("executions"));
    first.receive(executionEvent("execution.started", "1764152400123-0", "exec_a"));
    first.serverClose(1012, "service restart, reconnect in 2.5s");
    vi.advanceTimersByTime(2499);
    expect(FakeWebSocket.instances).toHaveLength(1);
    vi.advanceTimersByTime(1);
    expect(FakeWebSocket.instances).toHaveLength(2);
    FakeWebSocket.latest.open();
    expect(FakeWebSocket.latest.messagesOfType("subscribe")[0]?.data).toEqual({
      channel: "executions",
      since: "1764152400123-0",
    });
  });

  it("1012 without a number reconnects after a short jittered delay", () => {
    const client = makeClient({ random: () => 0.9 });
    connected(client);
    FakeWebSocket.latest.serverClose(1012, "service restart");
    vi.advanceTimersByTime(899);
    expect(FakeWebSocket.instances).toHaveLength(1);
    vi.advanceTimersByTime(1);
    expect(FakeWebSocket.instances).toHaveLength(2);
  });

  it("4008 (slow consumer) reconnects promptly and resumes from the last id", () => {
    const client = makeClient({ random: () => 0.5 });
    client.subscribe("executions:exec_a");
    const first = connected(client);
    first.receive(executionEvent("execution.started", "5-3", "exec_a"));
    first.serverClose(4008, "slow consumer");
    vi.advanceTimersByTime(500);
    expect(FakeWebSocket.instances).toHaveLength(2);
    FakeWebSocket.latest.open();
    expect(FakeWebSocket.latest.messagesOfType("subscribe")[0]?.data).toEqual({
      channel: "executions:exec_a",
      since: "5-3",
    });
  });

  it("4029 (rate limited) backs off like any failure", () => {
    const client = makeClient({ random: () => 0.5 });
    connected(client);
    FakeWebSocket.latest.serverClose(4029, "rate limit exceeded");
    vi.advanceTimersByTime(1499);
    expect(FakeWebSocket.instances).toHaveLength(1);
    vi.advanceTimersByTime(1);
    expect(FakeWebSocket.instances).toHaveLength(2);
  });

  it("reconnect: false stays disconnected after a close", () => {
    const client = makeClient({ reconnect: false });
    connected(client);
    FakeWebSocket.latest.serverClose(1006);
    vi.advanceTimersByTime(60_000);
    expect(FakeWebSocket.instances).toHaveLength(1);
    expect(client.state).toBe("disconnected");
  });
});

describe("stale sockets", () => {
  it("a late close of the old socket does not replace the new one or start another", () => {
    const client = makeClient();
    const old = connected(client);
    client.disconnect();
    client.connect();
    const current = FakeWebSocket.latest;
    expect(current).not.toBe(old);
    current.open();
    old.serverClose(1006); // the old socket's close event arrives late
    expect(client.socket).toBe(current);
    expect(client.state).toBe("connected");
    vi.advanceTimersByTime(10 * 60_000);
    expect(FakeWebSocket.instances).toHaveLength(2);
  });

  it("a late close of the old socket while the new one is still opening is ignored", () => {
    const client = makeClient();
    const old = connected(client);
    client.disconnect();
    client.connect();
    const current = FakeWebSocket.latest;
    old.serverClose(1000);
    expect(client.socket).toBe(current);
    expect(client.state).toBe("connecting");
    current.open();
    vi.advanceTimersByTime(10 * 60_000);
    expect(FakeWebSocket.instances).toHaveLength(2);
    expect(client.state).toBe("connected");
  });

  it("messages and open events of a replaced socket are ignored", () => {
    const client = makeClient();
    const handler = vi.fn();
    client.on("execution.started", handler);
    const old = connected(client);
    client.disconnect();
    client.connect();
    old.receive(executionEvent("execution.started", "1-0", "exec_a"));
    old.open();
    expect(handler).not.toHaveBeenCalled();
    expect(client.state).toBe("connecting");
  });

  it("a socket abandoned after a ping timeout cannot start a second connection", () => {
    const client = makeClient({ pingIntervalMs: 1000, pongTimeoutMs: 500, random: () => 0.5 });
    const old = connected(client);
    vi.advanceTimersByTime(1000);
    expect(old.messagesOfType("ping")).toHaveLength(1);
    vi.advanceTimersByTime(500); // no pong: abandoned
    expect(old.closeCalls).toHaveLength(1);
    expect(client.socket).toBeNull();
    vi.advanceTimersByTime(1500); // backoff
    expect(FakeWebSocket.instances).toHaveLength(2);
    FakeWebSocket.latest.open();
    const current = FakeWebSocket.latest;
    old.serverClose(1006); // its close arrives after all
    expect(client.socket).toBe(current);
    for (let i = 0; i < 60; i += 1) {
      vi.advanceTimersByTime(1000);
      current.receive({ type: "pong", timestamp: "2025-11-26T10:00:00Z" }); // the new one is healthy
    }
    expect(FakeWebSocket.instances).toHaveLength(2);
    expect(client.state).toBe("connected");
  });

  it("a pong (or any frame) keeps the connection", () => {
    const client = makeClient({ pingIntervalMs: 1000, pongTimeoutMs: 500 });
    const socket = connected(client);
    for (let i = 0; i < 5; i += 1) {
      vi.advanceTimersByTime(1000);
      socket.receive({ type: "pong", timestamp: "2025-11-26T10:00:00Z" });
    }
    expect(socket.messagesOfType("ping").length).toBeGreaterThanOrEqual(4);
    expect(socket.closeCalls).toHaveLength(0);
    expect(FakeWebSocket.instances).toHaveLength(1);
  });
});

describe("subscriptions", () => {
  it("subscribes made before open are sent when it opens, with their filters", () => {
    const client = makeClient();
    client.subscribe("executions", { statuses: ["failed"] });
    client.subscribe("approvals");
    client.connect();
    const socket = FakeWebSocket.latest;
    expect(socket.sent).toHaveLength(0); // nothing sent while connecting
    socket.open();
    expect(socket.messagesOfType("subscribe").map((m) => m.data)).toEqual([
      { channel: "executions", filters: { statuses: ["failed"] } },
      { channel: "approvals" },
    ]);
  });

  it("sends a subscribe at once when already open", () => {
    const client = makeClient();
    const socket = connected(client);
    client.subscribe("workflows:wf_1");
    expect(socket.messagesOfType("subscribe").map((m) => m.data)).toEqual([{ channel: "workflows:wf_1" }]);
  });

  it("reference-counts: the channel stays until the last subscriber leaves", () => {
    const client = makeClient();
    const socket = connected(client);
    const offA = client.subscribe("executions:exec_a");
    const offB = client.subscribe("executions:exec_a");
    expect(socket.messagesOfType("subscribe")).toHaveLength(1); // same filters: one message
    expect(client.subscriberCount("executions:exec_a")).toBe(2);
    offA();
    offA(); // idempotent
    expect(socket.messagesOfType("unsubscribe")).toHaveLength(0);
    expect(client.isSubscribed("executions:exec_a")).toBe(true);
    offB();
    expect(socket.messagesOfType("unsubscribe").map((m) => m.data)).toEqual([{ channel: "executions:exec_a" }]);
    expect(client.isSubscribed("executions:exec_a")).toBe(false);
  });

  it("unsubscribe(channel) undoes one subscribe at a time", () => {
    const client = makeClient();
    const socket = connected(client);
    client.subscribe("approvals");
    client.subscribe("approvals");
    client.unsubscribe("approvals");
    expect(socket.messagesOfType("unsubscribe")).toHaveLength(0);
    client.unsubscribe("approvals");
    expect(socket.messagesOfType("unsubscribe")).toHaveLength(1);
    client.unsubscribe("approvals"); // nothing left: no message
    expect(socket.messagesOfType("unsubscribe")).toHaveLength(1);
  });

  it("sends the union of subscribers' filters, and narrows it again when one leaves", () => {
    const client = makeClient();
    const socket = connected(client);
    const offA = client.subscribe("executions", { statuses: ["failed"] });
    client.subscribe("executions", { statuses: ["completed"] });
    offA();
    expect(socket.messagesOfType("subscribe").map((m) => m.data)).toEqual([
      { channel: "executions", filters: { statuses: ["failed"] } },
      { channel: "executions", filters: { statuses: ["completed", "failed"] } },
      { channel: "executions", filters: { statuses: ["completed"] } },
    ]);
  });

  it("a subscriber without filters widens the channel to everything", () => {
    const client = makeClient();
    const socket = connected(client);
    client.subscribe("executions", { workflow_ids: ["wf_1"] });
    client.subscribe("executions");
    expect(socket.messagesOfType("subscribe").at(-1)?.data).toEqual({ channel: "executions" });
  });

  it("unsubscribing while disconnected sends nothing and is not resent on open", () => {
    const client = makeClient();
    const off = client.subscribe("approvals");
    client.subscribe("executions");
    off();
    const socket = connected(client);
    expect(socket.messages.map((m) => [m.type, m.data?.["channel"]])).toEqual([["subscribe", "executions"]]);
  });

  it("isLive(channel) is true only while connected and after the server's `subscribed`", () => {
    const client = makeClient();
    client.subscribe("executions:exec_a");
    expect(client.isLive("executions:exec_a")).toBe(false);
    const socket = connected(client);
    expect(client.isLive("executions:exec_a")).toBe(false); // sent, not confirmed
    socket.receive(subscribed("executions:exec_a"));
    expect(client.isLive("executions:exec_a")).toBe(true);
    socket.serverClose(1006);
    expect(client.isLive("executions:exec_a")).toBe(false);
    vi.advanceTimersByTime(3000);
    FakeWebSocket.latest.open();
    expect(client.isLive("executions:exec_a")).toBe(false); // not yet confirmed again
    FakeWebSocket.latest.receive(subscribed("executions:exec_a"));
    expect(client.isLive("executions:exec_a")).toBe(true);
  });

  it("notifies status listeners on state and confirmation changes", () => {
    const client = makeClient();
    const listener = vi.fn();
    const stop = client.onStatusChange(listener);
    client.subscribe("approvals");
    const socket = connected(client);
    socket.receive(subscribed("approvals"));
    const calls = listener.mock.calls.length;
    expect(calls).toBeGreaterThanOrEqual(4); // subscribe, connecting, connected, confirmed
    stop();
    socket.serverClose(1006);
    expect(listener.mock.calls.length).toBe(calls);
  });
});

describe("resume", () => {
  it("resubscribes every channel with its filters and `since` after a reconnect", () => {
    const client = makeClient();
    client.subscribe("executions", { workflow_ids: ["wf_2", "wf_1"], statuses: ["failed"] });
    client.subscribe("executions:exec_a");
    const first = connected(client);
    first.receive(subscribed("executions"));
    first.receive(subscribed("executions:exec_a"));
    first.receive(executionEvent("execution.started", "1000-0", "exec_a"));
    first.receive(executionEvent("execution.failed", "1000-1", "exec_a"));
    first.serverClose(1006);
    vi.advanceTimersByTime(3000);
    const second = FakeWebSocket.latest;
    expect(second).not.toBe(first);
    second.open();
    expect(second.messagesOfType("subscribe").map((m) => m.data)).toEqual([
      { channel: "executions", filters: { workflow_ids: ["wf_1", "wf_2"], statuses: ["failed"] }, since: "1000-1" },
      { channel: "executions:exec_a", since: "1000-1" },
    ]);
  });

  it("adopts the highest `position` as its cursor before any event", () => {
    const client = makeClient();
    client.subscribe("executions");
    client.subscribe("approvals");
    const first = connected(client);
    expect(client.resumeCursor).toBeNull();
    first.receive(subscribed("executions", { position: "1764152400999-0" }));
    first.receive(subscribed("approvals", { position: "1764152400123-4" })); // lower: ignored
    expect(client.resumeCursor).toBe("1764152400999-0");
    expect(client.lastEventId).toBeNull();
    first.serverClose(1006);
    vi.advanceTimersByTime(3000);
    FakeWebSocket.latest.open();
    expect(FakeWebSocket.latest.messagesOfType("subscribe").map((m) => m.data?.["since"])).toEqual([
      "1764152400999-0",
      "1764152400999-0",
    ]);
  });

  it("an event id overrides any position as the cursor", () => {
    const client = makeClient();
    client.subscribe("executions");
    const socket = connected(client);
    socket.receive(subscribed("executions", { position: "50-0" }));
    socket.receive(executionEvent("execution.created", "60-0", "exec_a"));
    expect(client.resumeCursor).toBe("60-0");
  });

  it("surfaces `recovered: false` as a `resync` event the app can act on", () => {
    const client = makeClient();
    const resync = vi.fn<(message: ResyncMessage) => void>();
    client.on("resync", resync);
    client.subscribe("executions:exec_a");
    const first = connected(client);
    first.receive(executionEvent("execution.started", "10-0", "exec_a"));
    first.serverClose(1006);
    vi.advanceTimersByTime(3000);
    const second = FakeWebSocket.latest;
    second.open();
    second.receive(subscribed("executions:exec_a", { position: "99-0", recovered: false }));
    expect(resync).toHaveBeenCalledTimes(1);
    expect(resync.mock.calls[0]?.[0]).toMatchObject({
      type: "resync",
      data: { channel: "executions:exec_a", since: "10-0", position: "99-0" },
    });
    expect(client.isLive("executions:exec_a")).toBe(true); // live from `position` on
  });

  it("after `recovered: false` the next reconnect resumes from the new position", () => {
    const client = makeClient();
    const resync = vi.fn();
    client.on("resync", resync);
    client.subscribe("executions");
    const first = connected(client);
    first.receive(executionEvent("execution.started", "10-0", "exec_a"));
    first.serverClose(1006);
    vi.advanceTimersByTime(3000);
    const second = FakeWebSocket.latest;
    second.open();
    second.receive(subscribed("executions", { position: "99-0", recovered: false }));
    expect(client.resumeCursor).toBe("99-0");
    expect(client.lastEventId).toBe("10-0");
    second.serverClose(1006);
    vi.advanceTimersByTime(3000);
    const third = FakeWebSocket.latest;
    third.open();
    expect(third.messagesOfType("subscribe")[0]?.data).toEqual({ channel: "executions", since: "99-0" });
    third.receive(subscribed("executions", { position: "99-0", recovered: true }));
    third.receive(executionEvent("execution.completed", "100-0", "exec_a"));
    expect(resync).toHaveBeenCalledTimes(1);
    expect(client.lastEventId).toBe("100-0");
  });

  it("`recovered: true` raises no resync", () => {
    const client = makeClient();
    const resync = vi.fn();
    client.on("resync", resync);
    client.subscribe("approvals");
    const socket = connected(client);
    socket.receive(subscribed("approvals", { recovered: true }));
    expect(resync).not.toHaveBeenCalled();
  });
});

describe("receiving", () => {
  it("tracks the last event id", () => {
    const client = makeClient();
    const socket = connected(client);
    expect(client.lastEventId).toBeNull();
    socket.receive(executionEvent("execution.created", "1764152400123-0", "exec_a"));
    expect(client.lastEventId).toBe("1764152400123-0");
    socket.receive(event("step.started", "1764152400123-1", { execution_id: "exec_a", step_id: "s1", step_type: "action", status: "running" }));
    expect(client.lastEventId).toBe("1764152400123-1");
    socket.receive({ type: "pong", timestamp: "2025-11-26T10:00:00Z" });
    expect(client.lastEventId).toBe("1764152400123-1");
  });

  it("compares ids numerically and drops events not after the last id", () => {
    const client = makeClient();
    const handler = vi.fn();
    client.on("execution.started", handler);
    const socket = connected(client);
    socket.receive(executionEvent("execution.started", "999-5", "exec_a"));
    socket.receive(executionEvent("execution.started", "1000-0", "exec_a")); // "1000-0" < "999-5" as strings
    socket.receive(executionEvent("execution.started", "1000-0", "exec_a")); // duplicate
    socket.receive(executionEvent("execution.started", "999-9", "exec_a")); // older
    socket.receive(executionEvent("execution.started", "1000-10", "exec_a")); // "1000-10" < "1000-9" as strings
    socket.receive(executionEvent("execution.started", "1000-9", "exec_a")); // older
    expect(handler.mock.calls.map((c) => (c[0] as { id: string }).id)).toEqual(["999-5", "1000-0", "1000-10"]);
    expect(client.lastEventId).toBe("1000-10");
  });

  it("dispatches an event once to every handler of its type and to '*'", () => {
    const client = makeClient();
    const a = vi.fn();
    const b = vi.fn();
    const all = vi.fn();
    client.on("approval.required", a);
    client.on("approval.required", b);
    client.on("*", all);
    const socket = connected(client);
    socket.receive(event("approval.required", "1-0", { approval_id: "ap_1", execution_id: "exec_a", workflow_id: "wf", status: "pending" }));
    expect(a).toHaveBeenCalledTimes(1);
    expect(b).toHaveBeenCalledTimes(1);
    expect(all).toHaveBeenCalledTimes(1);
  });

  it("on() returns an off function; off() removes a handler", () => {
    const client = makeClient();
    const a = vi.fn();
    const b = vi.fn();
    const offA = client.on("execution.completed", a);
    client.on("execution.completed", b);
    const socket = connected(client);
    offA();
    client.off("execution.completed", b);
    socket.receive(executionEvent("execution.completed", "1-0", "exec_a"));
    expect(a).not.toHaveBeenCalled();
    expect(b).not.toHaveBeenCalled();
  });

  it("a throwing handler does not stop the others", () => {
    vi.spyOn(console, "error").mockImplementation(() => {});
    const client = makeClient();
    const after = vi.fn();
    client.on("execution.failed", () => {
      throw new Error("boom");
    });
    client.on("execution.failed", after);
    connected(client).receive(executionEvent("execution.failed", "1-0", "exec_a"));
    expect(after).toHaveBeenCalledTimes(1);
  });

  it("parses one JSON message per frame: a multi-line frame is one message", () => {
    const client = makeClient();
    const handler = vi.fn();
    client.on("execution.started", handler);
    const socket = connected(client);
    const pretty = JSON.stringify(executionEvent("execution.started", "1-0", "exec_a", { error_message: "line1\nline2" }), null, 2);
    expect(pretty.split("\n").length).toBeGreaterThan(3);
    socket.receive(pretty);
    expect(handler).toHaveBeenCalledTimes(1);
    expect((handler.mock.calls[0]?.[0] as { data: { error_message: string } }).data.error_message).toBe("line1\nline2");
  });

  it("never splits a frame on newlines: a newline-joined frame is rejected whole, later frames still work", () => {
    const client = makeClient();
    const handler = vi.fn();
    client.on("*", handler);
    const socket = connected(client);
    const joined = [
      JSON.stringify(executionEvent("execution.started", "1-0", "exec_a")),
      JSON.stringify(executionEvent("execution.completed", "2-0", "exec_a")),
    ].join("\n");
    socket.receive(joined);
    expect(handler).not.toHaveBeenCalled();
    expect(client.lastEventId).toBeNull();
    socket.receive(executionEvent("execution.started", "3-0", "exec_a"));
    socket.receive(executionEvent("execution.completed", "4-0", "exec_a"));
    expect(handler).toHaveBeenCalledTimes(2);
    expect(client.state).toBe("connected");
  });

  it("ignores non-JSON, non-object and typeless frames", () => {
    vi.spyOn(console, "warn").mockImplementation(() => {});
    const client = makeClient();
    const handler = vi.fn();
    client.on("*", handler);
    const socket = connected(client);
    socket.receive("not json");
    socket.receive("[1,2]");
    socket.receive('{"data":{}}');
    socket.onmessage?.({ data: new ArrayBuffer(4) });
    expect(handler).not.toHaveBeenCalled();
  });
});

describe("getWebSocketClient", () => {
  it("returns one client; later options update it", () => {
    const a = getWebSocketClient();
    const getToken = vi.fn(() => "t");
    const b = getWebSocketClient({ getToken, url: TEST_URL, WebSocketImpl: FakeWebSocket, pingIntervalMs: 0 });
    expect(b).toBe(a);
    a.connect();
    expect(getToken).toHaveBeenCalled();
    expect(FakeWebSocket.latest.url).toBe(`${TEST_URL}?token=t`);
    resetWebSocketClient();
    expect(getWebSocketClient()).not.toBe(a);
  });
});
