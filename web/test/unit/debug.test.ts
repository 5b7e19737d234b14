import { afterEach, describe, expect, it, vi } from "vitest";
import { debugEnabled } from "../../src/lib/debug.js";
import { FakeWebSocket, makeClient } from "../helpers/fakeWebSocket.js";

afterEach(() => {
  localStorage.removeItem("debug");
});

describe("debug logging", () => {
  it("matches localStorage.debug patterns like the `debug` package", () => {
    expect(debugEnabled("websocket:client", "websocket:*")).toBe(true);
    expect(debugEnabled("websocket:client", "*")).toBe(true);
    expect(debugEnabled("websocket:client", "app:*, websocket:client")).toBe(true);
    expect(debugEnabled("websocket:client", "websocket:*,-websocket:client")).toBe(false);
    expect(debugEnabled("websocket:client", "app:*")).toBe(false);
    expect(debugEnabled("websocket:client", "websocket")).toBe(false);
    expect(debugEnabled("websocket:client", null)).toBe(false);
    expect(debugEnabled("websocket:client", "")).toBe(false);
  });

  it("the client logs only when localStorage.debug matches websocket:*", () => {
    const debug = vi.spyOn(console, "debug").mockImplementation(() => {});
    FakeWebSocket.reset();
    const quiet = makeClient({ debug: undefined, getToken: () => "secret-token" });
    quiet.connect();
    expect(debug).not.toHaveBeenCalled();
    quiet.disconnect();

    localStorage.setItem("debug", "websocket:*");
    const loud = makeClient({ debug: undefined, getToken: () => "secret-token" });
    loud.connect();
    expect(debug).toHaveBeenCalled();
    // The token never reaches the log.
    const logged = JSON.stringify(debug.mock.calls);
    expect(logged).toContain("connecting to");
    expect(logged).not.toContain("secret-token");
    loud.disconnect();
  });
});
