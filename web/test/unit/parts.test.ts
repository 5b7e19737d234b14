/**
 * The client's parts on their own (no socket): the resume cursor and the subscription
 * registry. The client as a whole is tested in websocket.test.ts.
 */
import { describe, expect, it } from "vitest";
import { ResumeCursor } from "../../src/lib/resume.js";
import { Subscriptions } from "../../src/lib/subscriptions.js";
import type { ClientMessage } from "../../src/lib/types.js";

describe("ResumeCursor", () => {
  it("accepts ids in increasing order only (numerically), and resumes from the last", () => {
    const cursor = new ResumeCursor();
    expect(cursor.cursor).toBeNull();
    expect(cursor.accept("9-0")).toBe(true);
    expect(cursor.accept("10-0")).toBe(true); // numerically after 9-0
    expect(cursor.accept("10-0")).toBe(false);
    expect(cursor.accept("9-5")).toBe(false);
    expect(cursor.lastEventId).toBe("10-0");
    expect(cursor.cursor).toBe("10-0");
  });

  it("adopts a subscription's position before any event, not after; skipTo moves past a lost range", () => {
    const cursor = new ResumeCursor();
    cursor.live("5-0");
    cursor.live("7-0");
    expect(cursor.cursor).toBe("7-0");
    cursor.accept("8-0");
    cursor.live("20-0");
    expect(cursor.cursor).toBe("8-0");
    cursor.skipTo("30-0");
    expect(cursor.cursor).toBe("30-0");
    expect(cursor.lastEventId).toBe("8-0");
    cursor.skipTo("not an id");
    expect(cursor.cursor).toBe("30-0");
  });
});

describe("Subscriptions", () => {
  function registry(open = true) {
    const sent: ClientMessage[] = [];
    const subs = new Subscriptions(
      (message) => {
        if (!open) return false;
        sent.push(message);
        return true;
      },
      () => open,
      () => {},
    );
    return { subs, sent, setOpen: (value: boolean) => (open = value) };
  }

  it("reference-counts a channel: unsubscribe goes out with the last holder", () => {
    const { subs, sent } = registry();
    const a = subs.add("executions", undefined);
    const b = subs.add("executions", undefined);
    expect(sent.map((m) => m.type)).toEqual(["subscribe"]); // same filters: sent once
    expect(subs.count("executions")).toBe(2);
    subs.remove("executions", a);
    expect(sent.map((m) => m.type)).toEqual(["subscribe"]);
    subs.remove("executions", b);
    expect(sent.map((m) => m.type)).toEqual(["subscribe", "unsubscribe"]);
    expect(subs.has("executions")).toBe(false);
    expect(subs.remove("executions", b)).toBe(false);
  });

  it("sends the union of the holders' filters, and the remaining ones after a removal", () => {
    const { subs, sent } = registry();
    const a = subs.add("executions", { statuses: ["failed"] });
    subs.add("executions", { statuses: ["completed"] });
    subs.remove("executions", a);
    expect(sent.map((m) => (m.type === "subscribe" ? m.data.filters : null))).toEqual([
      { statuses: ["failed"] },
      { statuses: ["completed", "failed"] },
      { statuses: ["completed"] },
    ]);
    expect(subs.find("executions", { statuses: ["failed"] })).toBeNull();
  });

  it("holds channels while closed; on open sends each with since; confirmations reset with the socket", () => {
    const { subs, sent, setOpen } = registry(false);
    subs.add("executions", undefined);
    subs.add("approvals", { workflow_ids: ["wf_1"] });
    expect(sent).toEqual([]);
    setOpen(true);
    subs.resubscribeAll("42-0");
    expect(sent.map((m) => (m.type === "subscribe" ? [m.data.channel, m.data.since] : null))).toEqual([
      ["executions", "42-0"],
      ["approvals", "42-0"],
    ]);
    expect(subs.confirm("executions")).toEqual({ newly: true, since: "42-0" });
    expect(subs.confirm("executions")).toEqual({ newly: false, since: "42-0" });
    expect(subs.acked("executions")).toBe(true);
    expect(subs.confirm("users:nobody")).toBeNull();
    expect(subs.reset()).toBe(true);
    expect(subs.acked("executions")).toBe(false);
    expect(subs.reset()).toBe(false);
  });
});
