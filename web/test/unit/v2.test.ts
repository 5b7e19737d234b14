/**
 * Protocol version 2 in the client: what it offers, `hello` first, and the in-band token
 * refresh through getToken() on `token_expiring`.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { V2_JSON } from "../../src/lib/websocket.js";
import { FakeWebSocket, makeClient } from "../helpers/fakeWebSocket.js";

beforeEach(() => {
  FakeWebSocket.reset();
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

const expiring = { type: "token_expiring", timestamp: "t", data: { expires_at: "2026-12-05T10:00:00.000Z" } };

describe("protocol version 2", () => {
  it("offers flowwire.v2.json by default and nothing with protocol v1", () => {
    makeClient().connect();
    expect(FakeWebSocket.latest.protocols).toEqual([V2_JSON]);
    makeClient({ protocol: "v1" }).connect();
    expect(FakeWebSocket.latest.protocols).toBeUndefined();
  });

  it("sends hello first when the gateway selected version 2, before the subscriptions", () => {
    const client = makeClient();
    client.subscribe("executions");
    client.connect();
    FakeWebSocket.latest.open(V2_JSON);
    expect(client.protocol).toBe(V2_JSON);
    const sent = FakeWebSocket.latest.messages;
    expect(sent[0]).toEqual({ type: "hello", data: { features: ["token_refresh"] } });
    expect(sent[1]?.type).toBe("subscribe");
  });

  it("speaks version 1 to a gateway that selected no subprotocol (no hello)", () => {
    const client = makeClient();
    client.subscribe("executions");
    client.connect();
    FakeWebSocket.latest.open();
    expect(client.protocol).toBeNull();
    expect(FakeWebSocket.latest.messages.map((m) => m.type)).toEqual(["subscribe"]);
  });

  it("refreshes the token in-band through getToken on token_expiring", async () => {
    const reasons: string[] = [];
    const client = makeClient({
      getToken: ({ reason }) => {
        reasons.push(reason);
        return reason === "refresh" ? Promise.resolve("fresh") : "first";
      },
    });
    const seen: string[] = [];
    client.on("token_expiring", (m) => seen.push(m.data.expires_at));
    const all: string[] = [];
    client.on("*", (m) => all.push(m.type));
    client.connect();
    const socket = FakeWebSocket.latest;
    socket.open(V2_JSON);
    socket.receive(expiring);
    await vi.runAllTimersAsync();
    expect(reasons).toEqual(["connect", "refresh"]);
    expect(socket.messagesOfType("refresh")).toEqual([{ type: "refresh", data: { token: "fresh" } }]);
    expect(seen).toEqual(["2026-12-05T10:00:00.000Z"]);
    socket.receive({ type: "refreshed", timestamp: "t", data: { expires_at: "2026-12-05T11:00:00.000Z" } });
    expect(all).toEqual([]); // version 2's own messages are not "*" server messages
    expect(FakeWebSocket.instances).toHaveLength(1); // the same connection throughout
  });

  it("sends no refresh when getToken gives no token, or when the socket was replaced", async () => {
    const client = makeClient({ getToken: () => null });
    client.connect();
    FakeWebSocket.latest.open(V2_JSON);
    FakeWebSocket.latest.receive(expiring);
    expect(FakeWebSocket.latest.messagesOfType("refresh")).toEqual([]);
    let resolve: (value: string) => void = () => {};
    client.configure({ getToken: () => new Promise<string>((r) => (resolve = r)) });
    const first = FakeWebSocket.latest;
    first.receive(expiring);
    first.serverClose(1006);
    resolve("late");
    await vi.advanceTimersByTimeAsync(0);
    expect(first.messagesOfType("refresh")).toEqual([]);
  });
});
