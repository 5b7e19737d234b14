/**
 * Integration: priority and conflation (docs/protocol.md "Priority and conflation")
 * against a real flowwire server. The client (protocol version 2) subscribes to
 * `approvals` and to a workflow channel with `{ conflate: true }`, then stops reading its
 * socket (the `ws` socket's underlying net.Socket is paused) while big step events flood:
 * the gateway's outbox fills (CLIENT_SEND_BUFFER_BYTES, 4 MiB by default) and conflates
 * instead of closing 4008 (seen in /metrics). An approval published after the flood still
 * fits beside the ~50 kB events (the outbox is full for one more of them, not for a small
 * frame) and is written ahead of the queued bulk. The client then reads again: it is not
 * closed, it has the latest state per execution, the approval before the bulk queued
 * before it; a drop and a resume from the cursor it kept (naming the approval written
 * ahead) gives exactly what the gateway's own replay from that cursor gives.
 *
 *   FLOWWIRE_URL, FLOWWIRE_TOKEN, FLOWWIRE_PUBLISH   as for resume.test.ts
 *                     (FLOWWIRE_PUBLISH must accept `--count N`, as `flowwire publish` does)
 *
 * The gateway: CLIENT_SEND_BUFFER_BYTES 4 MiB (the default), SERVER_WRITE_TIMEOUT longer
 * than the flood's publishing (60 s in tests/web/test_client_integration.py).
 *
 * Without these variables the run fails: it never skips silently.
 */
import { execSync } from "node:child_process";
import WebSocket from "ws";
import { afterAll, describe, expect, it } from "vitest";
import { V2_JSON, WebSocketClient } from "../../src/lib/websocket.js";
import type { ServerMessage, SubscribedData } from "../../src/lib/types.js";
import { dropSocket, settle, waitFor } from "./harness.js";

function need(name: string): string {
  const value = process.env[name];
  if (value === undefined || value === "") throw new Error(`lanes integration test needs ${name} (see the file's comment)`);
  return value;
}

const url = need("FLOWWIRE_URL");
const token = need("FLOWWIRE_TOKEN");
const publishCommand = need("FLOWWIRE_PUBLISH");
const metricsUrl = url.replace(/^ws/, "http").replace(/\/ws$/, "/metrics");

const WORKFLOW = "wf_lanes_it";
const CHANNEL = `workflows:${WORKFLOW}`;
const EXECUTIONS = ["exec_lanes_a", "exec_lanes_b", "exec_lanes_c"];
const PAD = "x".repeat(50_000); // a ~50 kB frame: the byte bound fills before the event count
const ID = /^\d+-\d+$/;

/** `count` copies of one event in one publish call: their ids, in stream order. */
function publish(type: string, data: Record<string, unknown>, count = 1): string[] {
  const json = JSON.stringify(data);
  const output = execSync(`${publishCommand} ${type} --count ${count} --data '${json}'`, {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
    timeout: 30_000,
    maxBuffer: 1 << 20,
  });
  const ids = output.trim().split(/\s+/);
  if (ids.length !== count || !ids.every((id) => ID.test(id))) {
    throw new Error(`publish printed ${JSON.stringify(output.slice(0, 200))}, not ${count} event ids`);
  }
  return ids;
}

function step(executionId: string, status: string, output?: Record<string, unknown>): Record<string, unknown> {
  return {
    execution_id: executionId,
    workflow_id: WORKFLOW,
    step_id: "s1",
    step_type: "task",
    status,
    ...(output ? { output } : {}),
  };
}

function approval(approvalId: string): Record<string, unknown> {
  return { approval_id: approvalId, execution_id: EXECUTIONS[0], workflow_id: WORKFLOW, status: "pending" };
}

async function conflatedTotal(): Promise<number> {
  const text = await (await fetch(metricsUrl)).text();
  const line = text.split("\n").find((l) => l.startsWith("flowwire_events_conflated_total "));
  if (line === undefined) throw new Error("no flowwire_events_conflated_total in /metrics");
  return Number(line.split(" ")[1]);
}

interface Got {
  type: string;
  id: string;
  execution: string;
}

/** An event's identity: ids are unique per partition; an execution is in one partition. */
const key = (e: { id: string; execution: string }): string => `${e.execution}/${e.id}`;

/** What the gateway itself replays from `since` on these channels (a raw socket): the
 * events after the cursor, until `count` arrived and nothing more comes. */
async function gatewayReplay(since: string, channels: string[], count: number): Promise<Got[]> {
  const ws = new WebSocket(`${url}?token=${encodeURIComponent(token)}`, [V2_JSON]);
  const got: Got[] = [];
  const replies: SubscribedData[] = [];
  ws.on("message", (raw) => {
    const m = JSON.parse(String(raw)) as { type: string; id?: string; data?: Record<string, unknown> };
    if (m.type === "subscribed" && m.data) replies.push(m.data as unknown as SubscribedData);
    else if (typeof m.id === "string") got.push({ type: m.type, id: m.id, execution: String(m.data?.["execution_id"]) });
  });
  await new Promise<void>((resolve, reject) => {
    ws.once("open", () => resolve());
    ws.once("error", reject);
  });
  try {
    for (const channel of channels) ws.send(JSON.stringify({ type: "subscribe", data: { channel, since } }));
    await waitFor("the gateway's replay", () => replies.length === channels.length && got.length >= count);
    await settle();
    expect(replies.map((r) => r.recovered)).toEqual(channels.map(() => true));
    return got;
  } finally {
    ws.close();
  }
}

describe("priority and conflation against a real server", () => {
  const client = new WebSocketClient({
    url,
    getToken: () => token,
    WebSocketImpl: WebSocket,
    backoff: { initialDelayMs: 300, maxDelayMs: 2000 },
    pingIntervalMs: 0,
  });
  afterAll(() => client.disconnect());

  it("conflates a flood it does not read, lets an approval overtake it, and resumes from its cursor exactly", async () => {
    const got: Got[] = [];
    client.on("*", (m: ServerMessage) => {
      if ("id" in m && typeof m.id === "string") {
        got.push({ type: m.type, id: m.id, execution: String((m.data as { execution_id?: unknown }).execution_id) });
      }
    });
    const replies: SubscribedData[] = [];
    client.on("subscribed", (m) => {
      if (m.data !== undefined) replies.push(m.data);
    });
    const sockets: unknown[] = [];
    client.onStatusChange(() => {
      const now = client.socket;
      if (client.state === "connected" && now !== null && now !== sockets.at(-1)) sockets.push(now);
    });

    client.subscribe("approvals");
    client.subscribe(CHANNEL, undefined, { conflate: true });
    client.connect();
    await waitFor("both subscriptions", () => client.isLive("approvals") && client.isLive(CHANNEL));
    expect(client.protocol).toBe(V2_JSON);
    expect(replies.find((r) => r.channel === CHANNEL)?.conflate).toBe(true);
    const conflatedBefore = await conflatedTotal();

    // The client stops reading; the flood fills the kernel's buffers, then the gateway's
    // outbox, which conflates (bounded: a few calls of 1 MB each are enough; the gateway's
    // SERVER_WRITE_TIMEOUT must outlast them). Blocks of 20 events per execution, in
    // turn: the full outbox (~80 events) holds events of every execution, so that each
    // new one has a queued one of its execution to replace (with none, it would be 4008).
    const socket = client.socket as unknown as WebSocket;
    const tcp = (socket as unknown as { _socket: { pause(): void; resume(): void } })._socket;
    tcp.pause();
    const bulk: string[] = [];
    for (let round = 0; (await conflatedTotal()) < conflatedBefore + 10; round++) {
      if (round >= 60) throw new Error("the gateway never conflated: the outbox did not fill");
      const execution = EXECUTIONS[round % EXECUTIONS.length] as string;
      bulk.push(...publish("step.started", step(execution, "running", { pad: PAD }), 20));
    }
    // The latest state of each execution (small frames: they fit beside the full outbox's
    // last ~50 kB), then an approval: it is written ahead of everything queued.
    const latest = EXECUTIONS.map((execution) => publish("step.completed", step(execution, "completed"))[0] as string);
    const [approvalId] = publish("approval.required", approval("ap_lanes_1"));

    tcp.resume();
    await waitFor("the latest state of every execution", () => latest.every((id) => got.some((e) => e.id === id)));
    await settle();
    expect(client.state).toBe("connected");
    expect(sockets).toEqual([socket]); // never closed (no 4008), never reconnected

    // The approval overtook the queued bulk: the latest states, published before it, came after it.
    const approvalAt = got.findIndex((e) => e.id === approvalId && e.type === "approval.required");
    expect(approvalAt).toBeGreaterThanOrEqual(0);
    for (const id of latest) expect(got.findIndex((e) => e.id === id)).toBeGreaterThan(approvalAt);
    // Latest per execution, in stream order per execution, fewer than were published.
    const steps = got.filter((e) => e.type.startsWith("step."));
    for (const [i, execution] of EXECUTIONS.entries()) {
      const mine = steps.filter((e) => e.execution === execution).map((e) => e.id.split("-").map(Number) as [number, number]);
      const sorted = [...mine].sort((a, b) => a[0] - b[0] || a[1] - b[1]);
      expect(mine).toEqual(sorted);
      expect(steps.filter((e) => e.execution === execution).at(-1)?.id).toBe(latest[i]);
    }
    expect(steps.length).toBeLessThan(bulk.length + latest.length);
    expect(new Set(got.map(key)).size).toBe(got.length);

    // The kept cursor names the approval written ahead of the mark.
    const kept = client.resumeCursor as string;
    expect(kept).toContain(`.${approvalId}`);
    expect(kept).toContain("~");

    // Drop; publish while disconnected (execSync blocks the loop: no reconnect before).
    const before = got.length;
    await dropSocket(client);
    const during = [
      ...publish("step.failed", step(EXECUTIONS[1] as string, "failed")),
      ...publish("approval.required", approval("ap_lanes_2")),
    ];
    await waitFor(
      "the reconnect and the events published while disconnected",
      () => sockets.length === 2 && during.every((id) => got.slice(before).some((e) => e.id === id)),
      20_000,
      () => `sockets ${sockets.length}, state ${client.state}, got ${JSON.stringify(got.slice(before))}, replies ${JSON.stringify(replies.slice(2))}`,
    );
    await settle();
    const resumed = replies.slice(-2);
    expect(resumed.map((r) => r.recovered)).toEqual([true, true]);
    const after = got.slice(before);
    // No duplicate, no gap: exactly what the gateway replays from the kept cursor, which
    // is exactly what was published since (the approval written ahead is not replayed).
    const replay = await gatewayReplay(kept, ["approvals", CHANNEL], during.length);
    expect(after.map(key).sort()).toEqual(replay.map(key).sort());
    expect(after.map((e) => e.id).sort()).toEqual([...during].sort());
    expect(new Set(got.map(key)).size).toBe(got.length);
  });
});
