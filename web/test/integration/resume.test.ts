/**
 * Integration: the real client against a real flowwire server.
 *
 *   FLOWWIRE_URL      ws://127.0.0.1:PORT/ws
 *   FLOWWIRE_TOKEN    a JWT the server accepts (sent as ?token=)
 *   FLOWWIRE_PUBLISH  a shell command prefix; `${FLOWWIRE_PUBLISH} <type> --data '<json>'`
 *                     appends one event to the server's stream and prints its id
 *                     (e.g. "flowwire publish" with REDIS_URL set)
 *
 * Run with `npm run test:integration` (not part of `npm test`). Without these variables
 * the run fails: it never skips silently.
 */
import { execSync } from "node:child_process";
import WebSocket from "ws";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WebSocketClient } from "../../src/lib/websocket.js";
import type { ServerMessage, SubscribedData } from "../../src/lib/types.js";
import { dropSocket, settle, waitFor } from "./harness.js";

function requireEnv(): { url: string; token: string; publish: string } {
  const url = process.env["FLOWWIRE_URL"];
  const token = process.env["FLOWWIRE_TOKEN"];
  const publish = process.env["FLOWWIRE_PUBLISH"];
  const missing = [
    ["FLOWWIRE_URL", url, "the server's WebSocket URL, e.g. ws://127.0.0.1:8080/ws"],
    ["FLOWWIRE_TOKEN", token, "a JWT the server accepts"],
    ["FLOWWIRE_PUBLISH", publish, 'a command prefix that publishes one event and prints its id, e.g. "flowwire publish"'],
  ].filter(([, value]) => value === undefined || value === "");
  if (missing.length > 0) {
    throw new Error(
      "integration test needs a running flowwire server; not set: " +
        missing.map(([name, , what]) => `${name} (${what})`).join("; "),
    );
  }
  return { url: url as string, token: token as string, publish: publish as string };
}

const env = requireEnv();

const EXECUTION = "exec_it000001";
const OTHER = "exec_it000002";
const CHANNEL = `executions:${EXECUTION}`;
const WORKFLOW = "wf_it0001";
const ID = /^\d+-\d+$/;

function publish(type: string, data: Record<string, unknown>): string {
  const json = JSON.stringify(data);
  if (json.includes("'")) throw new Error("payload must not contain a single quote");
  const output = execSync(`${env.publish} ${type} --data '${json}'`, {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
    timeout: 30_000,
  });
  const id = output.trim().split(/\s+/).pop() ?? "";
  if (!ID.test(id)) throw new Error(`publish printed ${JSON.stringify(output)}, not an event id`);
  return id;
}

function execution(type: string, executionId: string, status: string): string {
  return publish(type, { execution_id: executionId, workflow_id: WORKFLOW, status });
}

describe("against a real server", () => {
  let client: WebSocketClient;
  const events: Array<{ type: string; id: string; executionId: unknown; cursor: unknown }> = [];
  const subscribedReplies: SubscribedData[] = [];
  let opens = 0;

  beforeAll(() => {
    client = new WebSocketClient({
      url: env.url,
      getToken: () => env.token,
      WebSocketImpl: WebSocket,
      backoff: { initialDelayMs: 300, maxDelayMs: 2000 },
      pingIntervalMs: 0,
      debug: process.env["FLOWWIRE_DEBUG"] === "1",
    });
    client.on("*", (message: ServerMessage) => {
      if ("id" in message && typeof message.id === "string") {
        events.push({
          type: message.type,
          id: message.id,
          executionId: (message.data as { execution_id?: unknown }).execution_id,
          cursor: (message as { cursor?: unknown }).cursor, // partitioned streams only
        });
      }
    });
    client.on("subscribed", (message) => {
      if (message.data !== undefined) subscribedReplies.push(message.data); // not the connected signal
    });
    client.onStatusChange(() => {
      if (client.state === "connected") opens += 1;
    });
  });

  afterAll(() => {
    client?.disconnect();
  });

  it("delivers exactly the subscribed execution's events, then resumes after a drop with none lost or repeated", async () => {
    // Subscribed before the socket opens: sent on open.
    client.subscribe(CHANNEL);
    client.connect();
    await waitFor(`the server to confirm ${CHANNEL}`, () => client.isLive(CHANNEL));
    expect(subscribedReplies[0]?.channel).toBe(CHANNEL);

    // 3 events for our execution, 1 for another.
    const first = [
      execution("execution.created", EXECUTION, "pending"),
      execution("execution.started", OTHER, "running"),
      execution("execution.started", EXECUTION, "running"),
      execution("execution.paused", EXECUTION, "paused"),
    ];
    const expectedFirst = [first[0], first[2], first[3]];
    await waitFor("the first 3 events", () => events.length >= 3);
    await settle();
    expect(events.map((e) => e.id)).toEqual(expectedFirst);
    expect(events.map((e) => e.type)).toEqual(["execution.created", "execution.started", "execution.paused"]);
    expect(events.every((e) => e.executionId === EXECUTION)).toBe(true);
    expect(client.lastEventId).toBe(first[3]);
    // The resume cursor: the last frame's `cursor` (partitioned streams), else its id.
    const lastCursor = events.at(-1)?.cursor;
    expect(client.resumeCursor).toBe(typeof lastCursor === "string" ? lastCursor : first[3]);

    // Drop the connection (no close handshake, as a network failure would).
    const socket = client.socket as unknown as WebSocket;
    expect(socket).toBeInstanceOf(WebSocket);
    await dropSocket(client);
    expect(client.isLive(CHANNEL)).toBe(false);
    // Published while disconnected: execSync blocks the event loop, so the reconnect
    // timer cannot fire before both are in the stream.
    const second = [
      execution("execution.resumed", EXECUTION, "running"),
      execution("execution.completed", EXECUTION, "completed"),
    ];

    await waitFor("the reconnect", () => opens >= 2 && client.isLive(CHANNEL));
    await waitFor("the 2 events published while disconnected", () => events.length >= 5);
    await settle();
    expect(events.map((e) => e.id)).toEqual([...expectedFirst, ...second]);
    expect(events.slice(3).map((e) => e.type)).toEqual(["execution.resumed", "execution.completed"]);
    expect(new Set(events.map((e) => e.id)).size).toBe(events.length);
    // The resubscribe resumed (`since`) and the server had the history.
    const resumed = subscribedReplies.at(-1);
    expect(resumed?.channel).toBe(CHANNEL);
    expect(resumed?.recovered).toBe(true);
    expect(client.lastEventId).toBe(second[1]);
  });
});
