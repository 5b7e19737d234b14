/**
 * The browser bundle (gateway/demo/static/flowwire-client.js) is committed: it must be
 * exactly what `npm run build:bundle` makes of the current sources, and hold the client
 * without React.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";

const WEB = resolve(import.meta.dirname, "..", "..");
const COMMITTED = resolve(WEB, "..", "gateway", "demo", "static", "flowwire-client.js");

describe("browser bundle", () => {
  it("the committed bundle is up to date (run `npm run build:bundle`)", () => {
    expect(existsSync(COMMITTED), `${COMMITTED} is missing: run \`npm run build:bundle\``).toBe(true);
    const dir = mkdtempSync(join(tmpdir(), "flowwire-bundle-"));
    try {
      const out = join(dir, "flowwire-client.js");
      execFileSync(process.execPath, [join(WEB, "scripts", "build-bundle.mjs")], {
        cwd: WEB,
        env: { ...process.env, FLOWWIRE_BUNDLE_OUT: out },
        stdio: "pipe",
      });
      expect(readFileSync(COMMITTED, "utf8") === readFileSync(out, "utf8"), "stale bundle: run `npm run build:bundle`").toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 30_000);

  it("is one ES module exporting the client, with no React and no other import", () => {
    const text = readFileSync(COMMITTED, "utf8");
    expect(text).not.toMatch(/^\s*import\s/m);
    expect(text).not.toMatch(/\brequire\(/);
    expect(text).not.toMatch(/from\s+["']react/);
    expect(text).toMatch(/export\s*\{[^}]*\bgetWebSocketClient\b[^}]*\}/s);
    expect(text).toMatch(/export\s*\{[^}]*\bWebSocketClient\b[^}]*\}/s);
  });
});
