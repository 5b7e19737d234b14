/**
 * Protocol version 2, priority and conflation in the client: the `conflate` subscribe
 * option, and the resume cursor through a priority window (approvals written ahead of
 * stream order: frames carry "v1.<mark>~<partition>.<id>").
 */
import { beforeEach, describe, expect, it } from "vitest";
import { isPartitionCursor, ResumeCursor } from "../../src/lib/resume.js";
import { V2_JSON } from "../../src/lib/websocket.js";
import { FakeWebSocket, makeClient } from "../helpers/fakeWebSocket.js";

beforeEach(() => {
  FakeWebSocket.reset();
});

const event = (id: string, cursor?: string) => ({
  type: "step.started",
  timestamp: "t",
  id,
  ...(cursor !== undefined ? { cursor } : {}),
  data: { execution_id: "e1", step_id: "s", step_type: "task", status: "running" },
});

describe("priority and conflation", () => {
  it("sends conflate when every subscribe() of the channel asks for it", () => {
    const client = makeClient();
    const undo = client.subscribe("workflows:wf-1", undefined, { conflate: true });
    client.connect();
    FakeWebSocket.latest.open(V2_JSON);
    const subscribes = () => FakeWebSocket.latest.messages.filter((m) => m.type === "subscribe");
    expect(subscribes()[0]?.data).toEqual({ channel: "workflows:wf-1", conflate: true });
    // A second holder that wants every event: the channel is exactly-once again.
    const strict = client.subscribe("workflows:wf-1");
    expect(subscribes()[1]?.data).toEqual({ channel: "workflows:wf-1" });
    strict();
    expect(subscribes()[2]?.data).toEqual({ channel: "workflows:wf-1", conflate: true });
    undo();
  });

  it("keeps the cursor of a priority window and goes back to ids after it", () => {
    const cursor = new ResumeCursor();
    expect(cursor.accept("10-0")).toBe(true);
    // The approval (42) overtakes queued events 11 and 12: all three are new.
    expect(cursor.accept("42-0", "v1.10-0~0.42-0")).toBe(true);
    expect(cursor.accept("11-0", "v1.11-0~0.42-0")).toBe(true);
    expect(cursor.accept("12-0", "v1.12-0~0.42-0")).toBe(true);
    expect(cursor.cursor).toBe("v1.12-0~0.42-0");
    // Past the approval the frames carry no cursor again: the id is the resume point.
    expect(cursor.accept("43-0")).toBe(true);
    expect(cursor.cursor).toBe("43-0");
    expect(cursor.accept("43-0")).toBe(false);
  });

  it("delivers every frame of a priority window through the client, in arrival order", () => {
    const client = makeClient();
    const ids: string[] = [];
    client.on("step.started", (message) => ids.push(String(message.id)));
    client.subscribe("workflows:wf-1");
    client.connect();
    FakeWebSocket.latest.open(V2_JSON);
    const ws = FakeWebSocket.latest;
    ws.receive(event("10-0"));
    ws.receive(event("42-0", "v1.10-0~0.42-0"));
    ws.receive(event("11-0", "v1.11-0~0.42-0"));
    expect(ids).toEqual(["10-0", "42-0", "11-0"]);
    expect(client.resumeCursor).toBe("v1.11-0~0.42-0");
  });

  it("recognises resume cursors naming events ahead", () => {
    expect(isPartitionCursor("v1.1-0~0.2-0")).toBe(true);
    expect(isPartitionCursor("v1.1-0.4-0~1.5-0~0.2-0")).toBe(true);
    expect(isPartitionCursor("v1.1-0~")).toBe(false);
    expect(isPartitionCursor("v1.1-0~0.2")).toBe(false);
  });
});
