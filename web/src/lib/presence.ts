/**
 * Presence (docs/protocol.md, "Presence"): who is connected in the organization, and who
 * is subscribed to a channel.
 *
 * - query(channel?): one `presence` message, resolved by its `presence.state` (matched
 *   by channel), rejected by an `error` about it, on a disconnect, or after a timeout.
 * - watch(channel, listener): reference-counted like subscriptions; the first watcher
 *   sends `presence` with `watch: true`, whose `presence.state` is the snapshot, and each
 *   `presence.diff` after it updates the member list (set operations: `joined` replaces
 *   or adds, `left` removes). Presence is ephemeral (never resumed): after every
 *   reconnect each watched scope is asked again, and a `resync` diff asks again too.
 */
import type { ProtocolMessages } from "../generated/protocol.js";

export type PresenceMember = ProtocolMessages["presence.state"]["data"]["members"][number];
export type PresenceStateMessage = ProtocolMessages["presence.state"];
export type PresenceDiffMessage = ProtocolMessages["presence.diff"];

/** A scope's members: a channel's (`channel` set) or the organization's (`null`). */
export interface PresenceSnapshot {
  channel: string | null;
  /** By user id; at most the gateway's PRESENCE_MAX_MEMBERS. */
  members: PresenceMember[];
  /** How many members there are (more than `members.length` past the limit). */
  count: number;
}

export type PresenceListener = (snapshot: PresenceSnapshot) => void;

/** A presence query that could not be answered: `code` is the server's error code, or NOT_CONNECTED / TIMEOUT. */
export class PresenceError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = "PresenceError";
    this.code = code;
  }
}

interface Pending {
  resolve: (data: PresenceStateMessage["data"]) => void;
  reject: (err: PresenceError) => void;
  timer: ReturnType<typeof setTimeout>;
}

interface Watch {
  listeners: Set<PresenceListener>;
  members: Map<string, number>;
  count: number;
  ready: boolean;
}

const keyOf = (channel: string | null | undefined): string => channel ?? "";

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

export class PresenceTracker {
  private readonly pending = new Map<string, Pending[]>();
  private readonly watches = new Map<string, Watch>();

  constructor(
    private readonly send: (message: ProtocolMessages["presence"]) => boolean,
    private readonly isOpen: () => boolean,
    private readonly timeoutMs: () => number = () => 10_000,
  ) {}

  /** Ask for a scope's members now (channel omitted: the organization). */
  query(channel?: string | null): Promise<PresenceSnapshot> {
    const key = keyOf(channel);
    return new Promise((resolve, reject) => {
      this.ask(key, undefined, (data) => resolve(snapshotOf(key, data)), reject);
    });
  }

  /** Keep `listener` told of a scope's members while watched; returns the undo function. */
  watch(channel: string | null | undefined, listener: PresenceListener): () => void {
    const key = keyOf(channel);
    let w = this.watches.get(key);
    if (w === undefined) {
      w = { listeners: new Set(), members: new Map(), count: 0, ready: false };
      this.watches.set(key, w);
      if (this.isOpen()) this.start(key);
    }
    w.listeners.add(listener);
    if (w.ready) listener(this.snapshot(key, w));
    let undone = false;
    return () => {
      if (undone) return;
      undone = true;
      const current = this.watches.get(key);
      if (current === undefined || !current.listeners.delete(listener) || current.listeners.size > 0) return;
      this.watches.delete(key);
      if (this.isOpen()) this.ask(key, false, () => undefined, () => undefined);
    };
  }

  /** The socket opened: every watched scope is asked again (with watch: true). */
  reopened(): void {
    for (const key of this.watches.keys()) this.start(key);
  }

  /** The socket is gone: pending queries fail (watches wait for the next socket). */
  detached(): void {
    const all = [...this.pending.values()].flat();
    this.pending.clear();
    for (const p of all) {
      clearTimeout(p.timer);
      p.reject(new PresenceError("NOT_CONNECTED", "the connection closed before the presence reply"));
    }
  }

  /** A frame from the server; true when it was presence's. */
  handle(type: string, message: Record<string, unknown>): boolean {
    const data = isRecord(message["data"]) ? message["data"] : {};
    const key = keyOf(typeof data["channel"] === "string" ? data["channel"] : null);
    if (type === "presence.state") {
      this.take(key)?.resolve(data as unknown as PresenceStateMessage["data"]);
      return true;
    }
    if (type === "presence.diff") {
      this.applyDiff(key, data as unknown as PresenceDiffMessage["data"]);
      return true;
    }
    if (type === "error" && data["type"] === "presence") {
      const p = this.take(key) ?? this.take(null);
      p?.reject(new PresenceError(String(data["code"] ?? "ERROR"), String(data["message"] ?? "presence refused")));
      return true;
    }
    return false;
  }

  private start(key: string): void {
    const applied = (data: PresenceStateMessage["data"]) => {
      const w = this.watches.get(key);
      if (w === undefined) return;
      w.members = new Map(data.members.map((m) => [m.user_id, m.connections]));
      w.count = data.count;
      w.ready = true;
      this.notify(key, w);
    };
    this.ask(key, true, applied, () => undefined); // refused or disconnected: asked again on the next open
  }

  /** Send `presence`; its reply (matched by scope, in order) goes to `resolve` or `reject`, synchronously. */
  private ask(
    key: string,
    watch: boolean | undefined,
    resolve: Pending["resolve"],
    reject: Pending["reject"],
  ): void {
    const data: NonNullable<ProtocolMessages["presence"]["data"]> = {};
    if (key !== "") data.channel = key;
    if (watch !== undefined) data.watch = watch;
    if (!this.isOpen() || !this.send({ type: "presence", data })) {
      reject(new PresenceError("NOT_CONNECTED", "not connected"));
      return;
    }
    const entry: Pending = {
      resolve,
      reject,
      timer: setTimeout(() => {
        const queue = this.pending.get(key);
        const i = queue?.indexOf(entry) ?? -1;
        if (queue !== undefined && i >= 0) queue.splice(i, 1);
        if (queue !== undefined && queue.length === 0) this.pending.delete(key);
        reject(new PresenceError("TIMEOUT", "no presence reply"));
      }, this.timeoutMs()),
    };
    const queue = this.pending.get(key);
    if (queue === undefined) this.pending.set(key, [entry]);
    else queue.push(entry);
  }

  /** The oldest pending query of `key` (null: of any scope). */
  private take(key: string | null): Pending | undefined {
    const k = key ?? this.pending.keys().next().value;
    if (k === undefined) return undefined;
    const queue = this.pending.get(k);
    const p = queue?.shift();
    if (queue !== undefined && queue.length === 0) this.pending.delete(k);
    if (p !== undefined) clearTimeout(p.timer);
    return p;
  }

  private applyDiff(key: string, data: PresenceDiffMessage["data"]): void {
    const w = this.watches.get(key);
    if (w === undefined || !w.ready) return; // the snapshot that answers the watch comes first
    if (data.resync === true) {
      this.start(key);
      return;
    }
    for (const m of data.joined) w.members.set(m.user_id, m.connections);
    for (const user of data.left) w.members.delete(user);
    w.count = data.count;
    this.notify(key, w);
  }

  private snapshot(key: string, w: Watch): PresenceSnapshot {
    const members = [...w.members.entries()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([user_id, connections]) => ({ user_id, connections }));
    return { channel: key === "" ? null : key, members, count: w.count };
  }

  private notify(key: string, w: Watch): void {
    const snap = this.snapshot(key, w);
    for (const listener of [...w.listeners]) listener(snap);
  }
}

function snapshotOf(key: string, data: PresenceStateMessage["data"]): PresenceSnapshot {
  return { channel: key === "" ? null : key, members: data.members, count: data.count };
}
