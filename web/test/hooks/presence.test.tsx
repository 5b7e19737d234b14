import { act, cleanup, renderHook } from "@testing-library/react";
import type { ReactNode } from "react";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { usePresence } from "../../src/hooks/usePresence.js";
import { WebSocketProvider } from "../../src/hooks/useWebSocket.js";
import { PresenceError } from "../../src/lib/presence.js";
import type { WebSocketClient } from "../../src/lib/websocket.js";
import { openSocket, push } from "../helpers/act.js";
import { FakeWebSocket, makeClient } from "../helpers/fakeWebSocket.js";
import { validateFrame } from "../helpers/schema.js";

let client: WebSocketClient;
const TS = "2026-11-26T10:30:00.000Z";

function wrapper({ children }: { children: ReactNode }) {
  return <WebSocketProvider client={client}>{children}</WebSocketProvider>;
}

const member = (user_id: string, connections = 1) => ({ user_id, connections });

function state(channel: string | null, members: Array<{ user_id: string; connections: number }>, watching = true) {
  const data: Record<string, unknown> = { members, count: members.length, watching };
  if (channel !== null) data["channel"] = channel;
  return { type: "presence.state", timestamp: TS, data };
}

function diff(channel: string | null, joined: Array<{ user_id: string; connections: number }>, left: string[], count: number) {
  const data: Record<string, unknown> = { joined, left, count };
  if (channel !== null) data["channel"] = channel;
  return { type: "presence.diff", timestamp: TS, data };
}

beforeEach(() => {
  FakeWebSocket.reset();
  client = makeClient();
});

afterEach(() => {
  cleanup();
  client.disconnect();
});

describe("usePresence", () => {
  it("watches the channel, takes the snapshot, then applies diffs as set operations", () => {
    const { result } = renderHook(() => usePresence("executions:e1"), { wrapper });
    expect(result.current).toEqual({ members: [], count: 0, ready: false });
    const socket = openSocket();
    const sent = socket.messagesOfType("presence");
    expect(sent.map((m) => m.data)).toEqual([{ channel: "executions:e1", watch: true }]);
    for (const frame of socket.sent) validateFrame(frame);
    push(socket, state("executions:e1", [member("alice"), member("bob", 2)]));
    expect(result.current).toEqual({ members: [member("alice"), member("bob", 2)], count: 2, ready: true });
    push(socket, diff("executions:e1", [member("carol"), member("bob", 1)], ["alice"], 2));
    expect(result.current.members).toEqual([member("bob", 1), member("carol")]);
    push(socket, diff("executions:other", [member("zed")], [], 1)); // another scope
    push(socket, diff(null, [member("zed")], [], 1)); // the organization's
    expect(result.current.members).toEqual([member("bob", 1), member("carol")]);
  });

  it("without a channel watches the organization", () => {
    const { result } = renderHook(() => usePresence(), { wrapper });
    const socket = openSocket();
    expect(socket.messagesOfType("presence").map((m) => m.data)).toEqual([{ watch: true }]);
    push(socket, state(null, [member("alice")]));
    expect(result.current.members).toEqual([member("alice")]);
  });

  it("asks again after a reconnect (presence is never resumed) and after a resync diff", () => {
    const { result } = renderHook(() => usePresence("workflows:w1"), { wrapper });
    let socket = openSocket();
    push(socket, state("workflows:w1", [member("alice")]));
    act(() => socket.serverClose(1006)); // dropped: the client reconnects...
    act(() => {
      client.disconnect(); // ...at once here, instead of after its backoff
      client.connect();
    });
    expect(FakeWebSocket.instances).toHaveLength(2);
    socket = openSocket();
    expect(socket.messagesOfType("presence").map((m) => m.data)).toEqual([{ channel: "workflows:w1", watch: true }]);
    push(socket, state("workflows:w1", [member("bob")]));
    expect(result.current.members).toEqual([member("bob")]);
    push(socket, { type: "presence.diff", timestamp: TS, data: { channel: "workflows:w1", joined: [], left: [], count: 5000, resync: true } });
    expect(socket.messagesOfType("presence")).toHaveLength(2);
    push(socket, state("workflows:w1", [member("carol")]));
    expect(result.current.members).toEqual([member("carol")]);
  });

  it("two hooks on one scope share one watch; the last unmount stops it", () => {
    const a = renderHook(() => usePresence("executions:e1"), { wrapper });
    const b = renderHook(() => usePresence("executions:e1"), { wrapper });
    const socket = openSocket();
    expect(socket.messagesOfType("presence")).toHaveLength(1);
    push(socket, state("executions:e1", [member("alice")]));
    expect(b.result.current.members).toEqual([member("alice")]);
    a.unmount();
    expect(socket.messagesOfType("presence")).toHaveLength(1);
    b.unmount();
    expect(socket.messagesOfType("presence").map((m) => m.data)).toEqual([
      { channel: "executions:e1", watch: true },
      { channel: "executions:e1", watch: false },
    ]);
  });

  it("enabled: false watches nothing", () => {
    const { result } = renderHook(() => usePresence("executions:e1", { enabled: false }), { wrapper });
    client.connect();
    const socket = openSocket();
    expect(socket.messagesOfType("presence")).toEqual([]);
    expect(result.current.ready).toBe(false);
  });
});

describe("client.presence()", () => {
  it("resolves with the matching presence.state", async () => {
    client.connect();
    const socket = openSocket();
    const org = client.presence();
    const channel = client.presence("executions:e1");
    expect(socket.messagesOfType("presence").map((m) => m.data)).toEqual([{}, { channel: "executions:e1" }]);
    push(socket, state("executions:e1", [member("bob")], false)); // replies matched by channel
    push(socket, state(null, [member("alice"), member("bob")], false));
    await expect(channel).resolves.toEqual({ channel: "executions:e1", members: [member("bob")], count: 1 });
    await expect(org).resolves.toEqual({ channel: null, members: [member("alice"), member("bob")], count: 2 });
  });

  it("rejects on an error about it, when not connected, and on a disconnect", async () => {
    await expect(client.presence()).rejects.toMatchObject({ code: "NOT_CONNECTED" });
    client.connect();
    const socket = openSocket();
    const refused = client.presence("users:bob");
    push(socket, { type: "error", timestamp: TS, data: { code: "FORBIDDEN", message: "no", type: "presence", channel: "users:bob" } });
    await expect(refused).rejects.toBeInstanceOf(PresenceError);
    await expect(refused).rejects.toMatchObject({ code: "FORBIDDEN" });
    const cut = client.presence();
    act(() => socket.serverClose(1006));
    await expect(cut).rejects.toMatchObject({ code: "NOT_CONNECTED" });
  });
});
