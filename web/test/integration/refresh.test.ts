/**
 * Integration: protocol version 2 against a real flowwire server. The client offers
 * `flowwire.v2.json`, says hello, and when the gateway tells it its token expires soon
 * (`token_expiring`) it refreshes in-band through getToken({ reason: "refresh" }): the
 * same socket stays open past the first token's expiry and keeps receiving events.
 *
 *   FLOWWIRE_URL, FLOWWIRE_TOKEN, FLOWWIRE_PUBLISH   as for resume.test.ts
 *   FLOWWIRE_JWT_SECRET   the gateway's JWT_SECRET: the test mints, when it runs, a token
 *                         of FLOWWIRE_TOKEN's user that expires 3 s later (the gateway's
 *                         TOKEN_REFRESH_NOTICE must be at most JWT_LEEWAY + 3 s)
 */
import { execSync } from "node:child_process";
import { createHmac } from "node:crypto";
import WebSocket from "ws";
import { describe, expect, it } from "vitest";
import { V2_JSON, WebSocketClient, type TokenReason } from "../../src/lib/websocket.js";

function need(name: string): string {
  const value = process.env[name];
  if (value === undefined || value === "") throw new Error(`integration test needs ${name} (see the file's comment)`);
  return value;
}

const url = need("FLOWWIRE_URL");
const token = need("FLOWWIRE_TOKEN");
const secret = need("FLOWWIRE_JWT_SECRET");

/** An HS256 token of FLOWWIRE_TOKEN's claims, expiring `ttl` seconds from now. */
function mint(ttl: number): string {
  const part = (value: object): string => Buffer.from(JSON.stringify(value)).toString("base64url");
  const claims = JSON.parse(Buffer.from(token.split(".")[1] ?? "", "base64url").toString()) as Record<string, unknown>;
  const now = Math.floor(Date.now() / 1000);
  const unsigned = `${part({ alg: "HS256", typ: "JWT" })}.${part({ ...claims, iat: now, nbf: now, exp: now + ttl })}`;
  return `${unsigned}.${createHmac("sha256", secret).update(unsigned).digest("base64url")}`;
}
const publishCommand = need("FLOWWIRE_PUBLISH");

function publish(executionId: string): string {
  const data = JSON.stringify({ execution_id: executionId, workflow_id: "wf_refresh", status: "running" });
  const output = execSync(`${publishCommand} execution.started --data '${data}'`, { encoding: "utf8", timeout: 30_000 });
  return output.trim().split(/\s+/).pop() ?? "";
}

async function waitFor(what: string, predicate: () => boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe("protocol version 2 against a real server", () => {
  it("refreshes its token in-band: the connection outlives the first token", async () => {
    const shortToken = mint(3);
    const reasons: TokenReason[] = [];
    const client = new WebSocketClient({
      url,
      getToken: ({ reason }) => {
        reasons.push(reason);
        return reason === "connect" ? shortToken : token;
      },
      WebSocketImpl: WebSocket,
      pingIntervalMs: 0,
    });
    const kinds: string[] = [];
    let expiresAt = "";
    client.on("welcome", (m) => kinds.push(`welcome:${m.data.granted.join(",")}`));
    client.on("token_expiring", (m) => {
      kinds.push("token_expiring");
      expiresAt = m.data.expires_at;
    });
    client.on("refreshed", () => kinds.push("refreshed"));
    const ids: string[] = [];
    client.on("execution.started", (m) => ids.push(m.id ?? ""));
    // Sockets opened: one, if the refresh kept the connection.
    let opens = 0;
    let socket: unknown = null;
    client.onStatusChange(() => {
      if (client.state === "connected" && client.socket !== socket) {
        socket = client.socket;
        opens += 1;
      }
    });
    try {
      client.subscribe("executions");
      client.connect();
      await waitFor("the subscription", () => client.isLive("executions"));
      expect(client.protocol).toBe(V2_JSON);
      await waitFor("token_expiring and refreshed", () => kinds.includes("refreshed"));
      expect(kinds).toEqual(["welcome:token_refresh", "token_expiring", "refreshed"]);
      expect(reasons).toEqual(["connect", "refresh"]);
      // Past the first token's expiry (plus a second): still the same connection.
      const wait = Date.parse(expiresAt) + 1000 - Date.now();
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, wait)));
      const id = publish("exec_refresh01");
      await waitFor("the event after the first token expired", () => ids.includes(id));
      expect(opens).toBe(1);
      expect(client.state).toBe("connected");
    } finally {
      client.disconnect();
    }
  });
});
