import { afterEach, describe, expect, it, vi } from "vitest";
import { ConfigurationError, redactToken, resolveSocketUrl, withToken } from "../../src/lib/url.js";

afterEach(() => {
  vi.unstubAllGlobals();
});

describe("socket URL", () => {
  it("uses an explicit URL first, then VITE_WS_URL", () => {
    expect(resolveSocketUrl("wss://a.example/ws", "ws://b.example/ws")).toBe("wss://a.example/ws");
    expect(resolveSocketUrl(undefined, "ws://b.example:8080/ws")).toBe("ws://b.example:8080/ws");
  });

  it("adds /ws to a URL without a path (the original's VITE_WS_URL=ws://host:8080)", () => {
    expect(resolveSocketUrl("ws://localhost:8080", undefined)).toBe("ws://localhost:8080/ws");
    expect(resolveSocketUrl("ws://localhost:8080/custom/path", undefined)).toBe("ws://localhost:8080/custom/path");
  });

  it("turns http(s) into ws(s)", () => {
    expect(resolveSocketUrl("https://a.example/ws", undefined)).toBe("wss://a.example/ws");
  });

  it("falls back to the page host: ws(s)://location.host/ws", () => {
    vi.stubGlobal("location", { protocol: "https:", host: "app.example:8443" });
    expect(resolveSocketUrl(undefined, undefined)).toBe("wss://app.example:8443/ws");
    vi.stubGlobal("location", { protocol: "http:", host: "localhost:3000" });
    expect(resolveSocketUrl(undefined, undefined)).toBe("ws://localhost:3000/ws");
    expect(resolveSocketUrl("/gateway/ws", undefined)).toBe("ws://localhost:3000/gateway/ws");
  });

  it("fails clearly with nothing to go on, or a bad scheme", () => {
    vi.stubGlobal("location", undefined);
    expect(() => resolveSocketUrl(undefined, undefined)).toThrow(ConfigurationError);
    expect(() => resolveSocketUrl("ftp://x/ws", undefined)).toThrow(/ws:\/\/ or wss:\/\//);
  });

  it("puts the token in ?token=, keeping other parameters, and redacts it for logs", () => {
    expect(withToken("ws://h/ws", "a.b.c")).toBe("ws://h/ws?token=a.b.c");
    expect(withToken("ws://h/ws?x=1&token=old", "new")).toBe("ws://h/ws?x=1&token=new");
    expect(withToken("ws://h/ws", null)).toBe("ws://h/ws");
    expect(withToken("ws://h/ws", "")).toBe("ws://h/ws");
    expect(redactToken("ws://h/ws?token=secret")).toBe("ws://h/ws?token=***");
  });
});

describe("VITE_WS_URL", () => {
  afterEach(() => {
    vi.unstubAllEnvs();
  });

  it("is read from import.meta.env", async () => {
    const { readEnvUrl } = await import("../../src/lib/url.js");
    vi.stubEnv("VITE_WS_URL", "wss://env.example:9000/ws");
    expect(readEnvUrl()).toBe("wss://env.example:9000/ws");
    expect(resolveSocketUrl(undefined)).toBe("wss://env.example:9000/ws");
    // An explicit option still wins.
    expect(resolveSocketUrl("ws://option.example/ws")).toBe("ws://option.example/ws");
    vi.stubEnv("VITE_WS_URL", "");
    expect(readEnvUrl()).toBeUndefined();
  });
});
