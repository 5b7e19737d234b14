// @vitest-environment happy-dom
/**
 * Integration: the original app's execution page and the design document's examples
 * (test/original-app, only their import lines changed) against a real flowwire gateway,
 * configured as the original app was: the token in localStorage 'auth_token',
 * VITE_WS_URL a bare host:port. Same variables as resume.test.ts.
 */
import { execSync } from "node:child_process";
import { act, cleanup, render, screen, waitFor } from "@testing-library/react";
import WebSocket from "ws";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { disconnectWebSocket, getWebSocketClient } from "@flowwire/client";
import { ExecutionDetailPage as OriginalPage } from "../original-app/ExecutionDetailPage";
import {
  ExecutionDetailPage,
  ExecutionsListPage,
  MyComponent,
  basicConnection,
} from "../original-app/designExamples";

const url = process.env["FLOWWIRE_URL"];
const token = process.env["FLOWWIRE_TOKEN"];
const publishCommand = process.env["FLOWWIRE_PUBLISH"];
if (!url || !token || !publishCommand) {
  throw new Error("needs FLOWWIRE_URL, FLOWWIRE_TOKEN and FLOWWIRE_PUBLISH (see resume.test.ts)");
}

const EXEC = "exec_oa000001";
const OTHER = "exec_oa000002";
const EXEC2 = "exec_oa000003";
const OTHER2 = "exec_oa000004";
const WORKFLOW = "wf_original_app";

function publish(type: string, data: Record<string, unknown>): string {
  const output = execSync(`${publishCommand} ${type} --data '${JSON.stringify(data)}'`, {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
    timeout: 30_000,
  });
  return output.trim().split(/\s+/).pop() ?? "";
}

const T = { timeout: 15_000 };

describe("the original app, imports swapped to @flowwire/client", () => {
  const logged: unknown[][] = [];

  beforeAll(() => {
    // The browser's WebSocket, played by the `ws` package; the app's configuration.
    vi.stubGlobal("WebSocket", WebSocket);
    vi.stubEnv("VITE_WS_URL", new URL(url).host); // bare host:port, as the original wanted
    localStorage.setItem("auth_token", token);
    vi.spyOn(console, "log").mockImplementation((...args: unknown[]) => {
      logged.push(args);
    });
  });

  afterAll(() => {
    cleanup();
    disconnectWebSocket();
    vi.unstubAllEnvs();
    vi.unstubAllGlobals();
    vi.restoreAllMocks();
  });

  it("the execution page: Live, then each status of its execution (token from localStorage by default)", async () => {
    render(<OriginalPage id={EXEC} />);
    const ws = getWebSocketClient(); // the singleton the hook made, with no options
    await waitFor(() => expect(screen.getByText("Live")).toBeTruthy(), T);
    expect(ws.socket && (ws.socket as unknown as WebSocket).url).toBe(
      `ws://${new URL(url).host}/ws?token=${encodeURIComponent(token)}`,
    );
    await act(async () => {
      publish("execution.created", { execution_id: EXEC, workflow_id: WORKFLOW, status: "pending" });
      publish("execution.started", { execution_id: OTHER, workflow_id: WORKFLOW, status: "running" });
      publish("execution.started", { execution_id: EXEC, workflow_id: WORKFLOW, status: "running" });
    });
    await waitFor(() => expect(document.body.textContent).toContain("Status: running"), T);
    await act(async () => {
      publish("execution.failed", {
        execution_id: EXEC,
        workflow_id: WORKFLOW,
        status: "failed",
        error_message: "step charge: card declined",
        duration_ms: 1234,
      });
    });
    await waitFor(() => expect(document.body.textContent).toContain("Status: failed"), T);
    expect(document.body.textContent).toContain("card declined");
    expect(document.body.textContent).toContain("Took 1234 ms");
    cleanup();
    disconnectWebSocket();
  });

  it("the design document's examples: one client, the detail page, the list, the custom handler", async () => {
    const ws = basicConnection();
    expect(ws).toBe(getWebSocketClient()); // the app's one client
    render(
      <>
        <section data-testid="example">
          <ExecutionDetailPage executionId={EXEC2} />
        </section>
        <ExecutionsListPage />
        <MyComponent />
      </>,
    );
    await waitFor(() => expect(screen.getByText("Live")).toBeTruthy(), T);
    await waitFor(() => expect(ws.isLive("executions")).toBe(true), T);

    await act(async () => {
      publish("execution.created", { execution_id: EXEC2, workflow_id: WORKFLOW, status: "pending" });
      publish("execution.started", { execution_id: EXEC2, workflow_id: WORKFLOW, status: "running" });
      publish("execution.started", { execution_id: OTHER2, workflow_id: WORKFLOW, status: "running" });
    });
    await waitFor(() => expect(screen.getByTestId("example").textContent).toContain("Status: running"), T);
    await act(async () => {
      publish("execution.failed", { execution_id: EXEC2, workflow_id: WORKFLOW, status: "failed" });
    });
    await waitFor(() => expect(screen.getByTestId("example").textContent).toContain("Status: failed"), T);

    // The list: one card per execution, newest first, latest status.
    await waitFor(() => expect(document.querySelectorAll(".execution-card")).toHaveLength(2), T);
    const cards = [...document.querySelectorAll(".execution-card")].map((c) => c.textContent);
    expect(cards).toEqual([`${EXEC2}: failed`, `${OTHER2}: running`]);

    // The custom handler ran once, for the failure.
    await waitFor(() => expect(logged).toEqual([["Execution failed:", EXEC2]]), T);
  });
});
