/**
 * Integration: presence (client.presence(), client.watchPresence()) against a real
 * flowwire server, two users.
 *
 *   FLOWWIRE_URL       ws://127.0.0.1:PORT/ws
 *   FLOWWIRE_TOKEN     a JWT the server accepts (user A)
 *   FLOWWIRE_TOKEN_2   a JWT of another user of the same organization (user B)
 *
 * Without these variables the run fails: it never skips silently.
 */
import WebSocket from "ws";
import { afterAll, describe, expect, it } from "vitest";
import type { PresenceSnapshot } from "../../src/lib/presence.js";
import { WebSocketClient } from "../../src/lib/websocket.js";

function env(name: string): string {
  const value = process.env[name];
  if (value === undefined || value === "") throw new Error(`presence integration test needs ${name}`);
  return value;
}

const URL_ = env("FLOWWIRE_URL");
const CHANNEL = "executions:exec_presence_it";

function userOf(token: string): string {
  const payload = JSON.parse(Buffer.from(token.split(".")[1] ?? "", "base64url").toString()) as Record<string, unknown>;
  return String(payload["user_id"] ?? payload["sub"]);
}

function client(token: string): WebSocketClient {
  return new WebSocketClient({
    url: URL_,
    getToken: () => token,
    WebSocketImpl: WebSocket,
    backoff: { initialDelayMs: 200, maxDelayMs: 1000 },
    pingIntervalMs: 0,
  });
}

async function waitFor(what: string, predicate: () => boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const users = (snap: PresenceSnapshot | null) => (snap === null ? [] : snap.members.map((m) => m.user_id));

describe("presence against a real server", () => {
  const tokenA = env("FLOWWIRE_TOKEN");
  const tokenB = env("FLOWWIRE_TOKEN_2");
  const a = client(tokenA);
  const b = client(tokenB);
  const [userA, userB] = [userOf(tokenA), userOf(tokenB)];

  afterAll(() => {
    a.disconnect();
    b.disconnect();
  });

  it("answers queries, keeps a watched channel current, and watches again after a drop", async () => {
    a.connect();
    b.connect();
    await waitFor("both connected", () => a.isConnected() && b.isConnected());

    let org: PresenceSnapshot = await a.presence();
    for (let i = 0; i < 100 && users(org).length < 2; i++) org = await a.presence();
    expect(users(org)).toEqual([userA, userB].sort());

    let watched: PresenceSnapshot | null = null;
    const snapshots: PresenceSnapshot[] = [];
    const stop = a.watchPresence(CHANNEL, (snap) => {
      watched = snap;
      snapshots.push(snap);
    });
    await waitFor("the watch's snapshot", () => watched !== null);
    expect(users(watched)).toEqual([]);

    const release = b.subscribe(CHANNEL);
    await waitFor("B to join the channel", () => users(watched).includes(userB));
    expect(watched).toMatchObject({ channel: CHANNEL, count: 1, members: [{ user_id: userB, connections: 1 }] });
    await expect(b.presence(CHANNEL)).resolves.toMatchObject({ count: 1 });

    // A's connection drops: the watch is asked again on the new socket.
    const before = snapshots.length;
    const socket = a.socket as unknown as WebSocket;
    socket.terminate();
    // On a new socket (the backoff's jitter may reconnect within one poll: a poll for
    // "disconnected" could miss it).
    await waitFor("A reconnected", () => a.isConnected() && (a.socket as unknown) !== socket);
    await waitFor("the watch's new snapshot", () => snapshots.length > before);
    expect(users(watched)).toEqual([userB]);

    release();
    await waitFor("B to leave the channel", () => users(watched).length === 0);
    await expect(a.presence("users:someone-else")).rejects.toMatchObject({ code: "FORBIDDEN" });
    stop();
  });
});
