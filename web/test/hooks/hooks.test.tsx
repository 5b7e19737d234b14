import { act, cleanup, render, renderHook } from "@testing-library/react";
import type { ReactNode } from "react";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import {
  WebSocketProvider,
  useAllExecutions,
  useExecutionApprovals,
  useExecutionSteps,
  useExecutionUpdates,
  useWebSocket,
  useWebSocketEvent,
  useWebSocketSubscription,
  useWorkflowExecutions,
} from "../../src/hooks/useWebSocket.js";
import type { WebSocketClient } from "../../src/lib/websocket.js";
import { openSocket, push } from "../helpers/act.js";
import { FakeWebSocket, event, executionEvent, makeClient, subscribed } from "../helpers/fakeWebSocket.js";

let client: WebSocketClient;
let nextId = 1;
const id = () => `1764152400000-${nextId++}`;

function wrapper({ children }: { children: ReactNode }) {
  return <WebSocketProvider client={client}>{children}</WebSocketProvider>;
}

beforeEach(() => {
  FakeWebSocket.reset();
  client = makeClient();
});

afterEach(() => {
  cleanup();
  client.disconnect();
});

describe("useExecutionUpdates", () => {
  it("isLive is false while disconnected, true only when connected and confirmed", () => {
    const { result } = renderHook(() => useExecutionUpdates("exec_a"), { wrapper });
    expect(result.current.isLive).toBe(false); // connecting
    const socket = openSocket();
    expect(socket.messagesOfType("subscribe").map((m) => m.data)).toEqual([{ channel: "executions:exec_a" }]);
    expect(result.current.isLive).toBe(false); // connected, not yet confirmed
    push(socket, subscribed("executions:exec_a"));
    expect(result.current.isLive).toBe(true);
    act(() => socket.serverClose(1006));
    expect(client.state).toBe("reconnecting");
    expect(result.current.isLive).toBe(false);
  });

  it("isLive stays false when another channel is confirmed", () => {
    const { result } = renderHook(() => useExecutionUpdates("exec_a"), { wrapper });
    const socket = openSocket();
    push(socket, subscribed("executions:exec_b"));
    expect(result.current.isLive).toBe(false);
  });

  it("ignores events of another execution and merges its own", () => {
    const { result } = renderHook(() => useExecutionUpdates("exec_a"), { wrapper });
    const socket = openSocket();
    push(socket, executionEvent("execution.started", id(), "exec_a", { started_at: "2025-11-26T10:00:00Z" }));
    push(socket, executionEvent("execution.failed", id(), "exec_b", { status: "failed" }));
    expect(result.current.execution).toMatchObject({ execution_id: "exec_a", status: "running" });
    push(socket, executionEvent("execution.completed", id(), "exec_a", { status: "completed", duration_ms: 42 }));
    expect(result.current.execution).toEqual({
      execution_id: "exec_a",
      workflow_id: "wf_1",
      status: "completed",
      started_at: "2025-11-26T10:00:00Z",
      duration_ms: 42,
    });
  });

  it("ignores step and approval events of its own execution", () => {
    const { result } = renderHook(() => useExecutionUpdates("exec_a"), { wrapper });
    const socket = openSocket();
    push(socket, event("step.started", id(), { execution_id: "exec_a", step_id: "s1", step_type: "action", status: "running" }));
    expect(result.current.execution).toBeNull();
  });

  it("resets when the execution id changes, and moves its subscription", () => {
    const { result, rerender } = renderHook(({ execId }) => useExecutionUpdates(execId), {
      wrapper,
      initialProps: { execId: "exec_a" },
    });
    const socket = openSocket();
    push(socket, executionEvent("execution.started", id(), "exec_a"));
    expect(result.current.execution?.execution_id).toBe("exec_a");
    rerender({ execId: "exec_b" });
    expect(result.current.execution).toBeNull();
    expect(client.isSubscribed("executions:exec_a")).toBe(false);
    expect(client.isSubscribed("executions:exec_b")).toBe(true);
    push(socket, executionEvent("execution.started", id(), "exec_a"));
    expect(result.current.execution).toBeNull();
  });

  it("no id: no subscription, nothing live", () => {
    const { result } = renderHook(() => useExecutionUpdates(undefined), { wrapper });
    expect(client.channelNames).toEqual([]);
    expect(result.current).toEqual({ execution: null, isLive: false });
  });

  it("calls onResync when its channel cannot be resumed", () => {
    const onResync = vi.fn();
    renderHook(() => useExecutionUpdates("exec_a", { onResync }), { wrapper });
    const socket = openSocket();
    push(socket, subscribed("executions:approvals"));
    push(socket, subscribed("executions:exec_a", { recovered: false }));
    expect(onResync).toHaveBeenCalledTimes(1);
    expect(onResync.mock.calls[0]?.[0]).toMatchObject({ type: "resync", data: { channel: "executions:exec_a" } });
  });
});

describe("execution lists", () => {
  it("useAllExecutions keeps at most `limit`, newest first, one per execution_id", () => {
    const { result } = renderHook(() => useAllExecutions({ limit: 3 }), { wrapper });
    const socket = openSocket();
    expect(socket.messagesOfType("subscribe").map((m) => m.data)).toEqual([{ channel: "executions" }]);
    for (const exec of ["e1", "e2", "e3", "e4", "e5"]) {
      push(socket, executionEvent("execution.created", id(), exec, { status: "pending" }));
    }
    push(socket, executionEvent("execution.started", id(), "e4"));
    expect(result.current.map((e) => e.execution_id)).toEqual(["e4", "e5", "e3"]);
    expect(result.current[0]?.status).toBe("running");
  });

  it("useAllExecutions is bounded at 100 by default", () => {
    const { result } = renderHook(() => useAllExecutions(), { wrapper });
    const socket = openSocket();
    act(() => {
      for (let i = 0; i < 250; i += 1) socket.receive(executionEvent("execution.created", id(), `exec_${i}`));
    });
    expect(result.current).toHaveLength(100);
    expect(result.current[0]?.execution_id).toBe("exec_249");
  });

  it("useWorkflowExecutions only lists its workflow's executions", () => {
    const { result } = renderHook(() => useWorkflowExecutions("wf_1"), { wrapper });
    const socket = openSocket();
    expect(socket.messagesOfType("subscribe").map((m) => m.data)).toEqual([{ channel: "workflows:wf_1" }]);
    push(socket, executionEvent("execution.started", id(), "exec_a"));
    push(socket, executionEvent("execution.started", id(), "exec_b", { workflow_id: "wf_2" }));
    expect(result.current.map((e) => e.execution_id)).toEqual(["exec_a"]);
  });

  it("rejects a nonsense limit", () => {
    vi.spyOn(console, "error").mockImplementation(() => {});
    expect(() => renderHook(() => useAllExecutions({ limit: 0 }), { wrapper })).toThrow(RangeError);
  });
});

describe("steps and approvals", () => {
  it("useExecutionSteps keeps its execution's steps in first-seen order, updated in place", () => {
    const { result } = renderHook(() => useExecutionSteps("exec_a"), { wrapper });
    const socket = openSocket();
    const step = (type: string, stepId: string, status: string, exec = "exec_a") =>
      event(type, id(), { execution_id: exec, step_id: stepId, step_type: "action", status });
    push(socket, step("step.started", "s1", "running"));
    push(socket, step("step.started", "s2", "running"));
    push(socket, step("step.started", "s9", "running", "exec_b"));
    push(socket, step("step.completed", "s1", "completed"));
    expect(result.current.steps.map((s) => [s.step_id, s.status])).toEqual([
      ["s1", "completed"],
      ["s2", "running"],
    ]);
  });

  it("useExecutionApprovals lists its execution's approvals and the pending ones", () => {
    const { result } = renderHook(() => useExecutionApprovals("exec_a"), { wrapper });
    const socket = openSocket();
    const approval = (type: string, approvalId: string, status: string, exec = "exec_a") =>
      event(type, id(), { approval_id: approvalId, execution_id: exec, workflow_id: "wf_1", status });
    push(socket, approval("approval.required", "ap1", "pending"));
    push(socket, approval("approval.required", "ap2", "pending"));
    push(socket, approval("approval.required", "ap3", "pending", "exec_b"));
    push(socket, approval("approval.granted", "ap1", "approved"));
    expect(result.current.approvals.map((a) => [a.approval_id, a.status])).toEqual([
      ["ap1", "approved"],
      ["ap2", "pending"],
    ]);
    expect(result.current.pending.map((a) => a.approval_id)).toEqual(["ap2"]);
  });

  it("three hooks on one execution share one subscription; unmounting one keeps it", () => {
    function Page({ showSteps }: { showSteps: boolean }) {
      useExecutionUpdates("exec_a");
      useExecutionApprovals("exec_a");
      return showSteps ? <Steps /> : null;
    }
    function Steps() {
      useExecutionSteps("exec_a");
      return null;
    }
    const view = render(<Page showSteps />, { wrapper });
    const socket = openSocket();
    expect(client.subscriberCount("executions:exec_a")).toBe(3);
    expect(socket.messagesOfType("subscribe")).toHaveLength(1);
    view.rerender(<Page showSteps={false} />);
    expect(client.subscriberCount("executions:exec_a")).toBe(2);
    expect(socket.messagesOfType("unsubscribe")).toHaveLength(0);
    view.unmount();
    expect(socket.messagesOfType("unsubscribe").map((m) => m.data)).toEqual([{ channel: "executions:exec_a" }]);
  });
});

describe("handlers and subscriptions", () => {
  it("useWebSocketEvent registers once and always calls the latest handler", () => {
    const on = vi.spyOn(client, "on");
    const off = vi.spyOn(client, "off");
    const seen: string[] = [];
    const { rerender } = renderHook(
      ({ label }) => useWebSocketEvent("execution.started", (m) => seen.push(`${label}:${m.data.execution_id}`)),
      { wrapper, initialProps: { label: "first" } },
    );
    rerender({ label: "second" });
    rerender({ label: "third" });
    expect(on).toHaveBeenCalledTimes(1);
    expect(off).not.toHaveBeenCalled();
    client.connect();
    const socket = openSocket();
    push(socket, executionEvent("execution.started", id(), "exec_a"));
    expect(seen).toEqual(["third:exec_a"]);
  });

  it("the hooks' own registrations survive re-renders", () => {
    const on = vi.spyOn(client, "on");
    const { rerender } = renderHook(({ n }) => useExecutionUpdates("exec_a", { onResync: () => n }), {
      wrapper,
      initialProps: { n: 1 },
    });
    const calls = on.mock.calls.length;
    for (let n = 2; n < 6; n += 1) rerender({ n });
    expect(on.mock.calls.length).toBe(calls);
  });

  it("useWebSocket functions are stable across renders with the same state", () => {
    const { result, rerender } = renderHook(() => useWebSocket(), { wrapper });
    const first = result.current;
    rerender();
    expect(result.current.subscribe).toBe(first.subscribe);
    expect(result.current.on).toBe(first.on);
  });

  it("useWebSocket follows the connection state", () => {
    const { result } = renderHook(() => useWebSocket(), { wrapper });
    expect(result.current.connectionState).toBe("connecting");
    expect(result.current.isConnected()).toBe(false);
    const socket = openSocket();
    expect(result.current.isConnected()).toBe(true);
    act(() => socket.serverClose(1006));
    expect(result.current.connectionState).toBe("reconnecting");
    expect(result.current.isConnected()).toBe(false);
  });

  it("useWebSocketSubscription asks for conflation with options.conflate", () => {
    renderHook(() => useWebSocketSubscription("workflows:wf-1", undefined, { conflate: true }), { wrapper });
    const socket = openSocket();
    expect(socket.messagesOfType("subscribe").at(-1)?.data).toEqual({ channel: "workflows:wf-1", conflate: true });
  });

  it("useWebSocketSubscription does not resubscribe for equal filters in a new object", () => {
    const { rerender, result } = renderHook(
      ({ statuses }) => useWebSocketSubscription("executions", { statuses }),
      { wrapper, initialProps: { statuses: ["failed", "completed"] } },
    );
    const socket = openSocket();
    rerender({ statuses: ["completed", "failed"] });
    rerender({ statuses: ["completed", "failed"] });
    expect(socket.messagesOfType("subscribe")).toHaveLength(1);
    expect(socket.messagesOfType("unsubscribe")).toHaveLength(0);
    expect(result.current).toEqual({ isLive: false, isSubscribed: true });
    push(socket, subscribed("executions"));
    expect(result.current.isLive).toBe(true);
    rerender({ statuses: ["running"] });
    expect(socket.messagesOfType("subscribe").at(-1)?.data).toEqual({
      channel: "executions",
      filters: { statuses: ["running"] },
    });
  });
});
