/**
 * The client's protocol types cannot drift from the server: src/generated/protocol.ts
 * must be exactly what scripts/gen-types.mjs makes of docs/schema/*.json today, the
 * client's type lists must name exactly the schemas' message types, and the frames the
 * client sends must validate against the schemas.
 */
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { generate } from "../../scripts/gen-types.mjs";
import { PROTOCOL_MESSAGE_TYPES } from "../../src/generated/protocol.js";
import { CONTROL_TYPES, V2_TYPES, EVENT_TYPES } from "../../src/lib/types.js";
import { FakeWebSocket, executionEvent, event, makeClient, subscribed } from "../helpers/fakeWebSocket.js";
import { schemaDirOrFail, validate, validateFrame } from "../helpers/schema.js";

const gen = generate;
const GENERATED = resolve(import.meta.dirname, "..", "..", "src", "generated", "protocol.ts");

describe("generated protocol types", () => {
  it("src/generated/protocol.ts is up to date with docs/schema (run `npm run gen:types`)", () => {
    const { text } = gen(schemaDirOrFail());
    expect(readFileSync(GENERATED, "utf8")).toBe(text);
  });

  it("the client knows exactly the schemas' message types", () => {
    const files = readdirSync(schemaDirOrFail())
      .filter((f) => f.endsWith(".json"))
      .map((f) => f.slice(0, -5))
      .sort();
    expect(files).toHaveLength(31);
    expect([...PROTOCOL_MESSAGE_TYPES]).toEqual(files);
    expect([...EVENT_TYPES, ...CONTROL_TYPES, ...V2_TYPES].sort()).toEqual(files);
  });
});

describe("gen-types.mjs", () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "flowwire-schema-"));
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  function write(name: string, schema: unknown): void {
    writeFileSync(join(dir, `${name}.json`), JSON.stringify(schema));
  }

  it("maps required, optional, nullable, enums, arrays, maps and refs", () => {
    write("thing.made", {
      $ref: "#/$defs/Thing",
      $defs: {
        Thing: {
          type: "object",
          description: "A thing.",
          properties: {
            type: { enum: ["thing.made"] },
            n: { type: "integer" },
            tags: { type: "array", items: { type: "string" } },
            maybe: { anyOf: [{ $ref: "#/$defs/Inner" }, { type: "null" }], default: null },
            extra: { type: "object", additionalProperties: { type: "number" } },
            "odd-key": { type: "boolean" },
            anything: {},
          },
          required: ["type", "n"],
        },
        Inner: { type: "object", properties: { s: { type: ["string", "null"] } }, required: ["s"] },
      },
    });
    const { text, types } = gen(dir);
    expect(types).toEqual(["thing.made"]);
    expect(text).toContain("/** A thing. */\nexport interface Thing {");
    expect(text).toContain('  type: "thing.made";');
    expect(text).toContain("  n: number;");
    expect(text).toContain("  tags?: string[];");
    expect(text).toContain("  maybe?: Inner | null;");
    expect(text).toContain("  extra?: Record<string, number>;");
    expect(text).toContain('  "odd-key"?: boolean;');
    expect(text).toContain("  anything?: unknown;");
    expect(text).toContain("export interface Inner {\n  s: string | null;\n}");
    expect(text).toContain('  "thing.made": Thing;');
    expect(gen(dir).text).toBe(text); // deterministic
  });

  it("keeps same-named but different definitions apart", () => {
    write("a", { $ref: "#/$defs/A", $defs: { A: { type: "object", properties: { d: { $ref: "#/$defs/Data" } } }, Data: { type: "object", properties: { x: { type: "string" } } } } });
    write("b", { $ref: "#/$defs/B", $defs: { B: { type: "object", properties: { d: { $ref: "#/$defs/Data" } } }, Data: { type: "object", properties: { y: { type: "string" } } } } });
    const { text } = gen(dir);
    expect(text).toContain("export interface Data {\n  x?: string;\n}");
    expect(text).toContain("export interface Data2 {\n  y?: string;\n}");
    expect(text).toContain("export interface B {\n  d?: Data2;\n}");
  });

  it("a change in a schema changes the output (so the freshness test can fail)", () => {
    const source = schemaDirOrFail();
    for (const file of readdirSync(source)) writeFileSync(join(dir, file), readFileSync(join(source, file)));
    const schema = JSON.parse(readFileSync(join(dir, "execution.started.json"), "utf8")) as {
      $defs: Record<string, { properties: Record<string, unknown>; required: string[] }>;
    };
    const payload = Object.values(schema.$defs).find((d) => "execution_id" in d.properties);
    expect(payload).toBeDefined();
    payload!.properties["new_field"] = { type: "string" };
    payload!.required.push("new_field");
    writeFileSync(join(dir, "execution.started.json"), JSON.stringify(schema));
    expect(gen(dir).text).not.toBe(readFileSync(GENERATED, "utf8"));
  });

  it("fails clearly when the schema directory is missing", () => {
    expect(() => gen(join(dir, "nope"))).toThrow(/does not exist/);
  });
});

describe("frames against the server's schemas", () => {
  beforeEach(() => {
    FakeWebSocket.reset();
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("every frame the client sends validates", () => {
    const client = makeClient({ pingIntervalMs: 1000, pongTimeoutMs: 60_000 });
    client.subscribe("executions", { workflow_ids: ["wf_1"], statuses: ["failed", "running"] });
    const offApprovals = client.subscribe("approvals");
    client.connect();
    const first = FakeWebSocket.latest;
    first.open();
    first.receive(executionEvent("execution.started", "1764152400123-0", "exec_a"));
    first.serverClose(1006);
    vi.advanceTimersByTime(3000);
    const second = FakeWebSocket.latest;
    second.open(); // resubscribes with since
    offApprovals(); // unsubscribe
    vi.advanceTimersByTime(1000); // ping
    const frames = [...first.messages, ...second.messages];
    expect(new Set(frames.map((f) => f.type))).toEqual(new Set(["subscribe", "unsubscribe", "ping"]));
    expect(frames.some((f) => f.type === "subscribe" && f.data?.["since"] === "1764152400123-0")).toBe(true);
    for (const frame of frames) expect(validateFrame(frame), JSON.stringify(frame)).toEqual([]);
  });

  it("the server frames the tests use are valid server frames", () => {
    const frames = [
      executionEvent("execution.started", "1-0", "exec_a"),
      event("step.completed", "2-0", { execution_id: "exec_a", step_id: "s1", step_type: "action", status: "completed" }),
      event("approval.required", "3-0", { approval_id: "ap_1", execution_id: "exec_a", workflow_id: "wf_1", status: "pending" }),
      subscribed("executions", { recovered: false, position: "5-0" }),
    ];
    for (const frame of frames) expect(validateFrame(frame), JSON.stringify(frame)).toEqual([]);
  });

  it("the validator rejects what the server would reject", () => {
    expect(validateFrame({ type: "subscribe", data: {} })).not.toEqual([]);
    expect(validateFrame({ type: "subscribe", data: { channel: "x", since: "not-an-id" } })).not.toEqual([]);
    expect(validateFrame({ type: "subscribe", data: { channel: "x", filters: { bogus: [] } } })).not.toEqual([]);
    expect(validate({ type: "object", properties: { a: { type: "integer" } } }, { a: 1.5 })).not.toEqual([]);
    expect(validateFrame(executionEvent("execution.started", "1-0", "exec_a", { status: "exploded" }))).not.toEqual([]);
  });
});
