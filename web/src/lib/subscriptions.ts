/**
 * The subscriptions the client holds: remembered with their filters, reference-counted
 * per channel (one entry per subscribe() call still active), sent with the union of
 * their filters, re-sent with `since` on every open, confirmed by `subscribed`.
 */
import { filtersKey, mergeFilters } from "./filters.js";
import type { ClientMessage, SubscribeData, SubscriptionFilters } from "./types.js";

/** One subscribe() call still active. */
interface Holder {
  readonly id: number;
  readonly filters: SubscriptionFilters | undefined;
  /** Protocol version 2: the latest event per execution when backlogged, not 4008. */
  readonly conflate: boolean;
}

interface ChannelEntry {
  holders: Holder[];
  /** filtersKey() of what was last sent on the current socket, null when not sent. */
  sentKey: string | null;
  /** The `since` sent with the current socket's subscribe, for the resync event. */
  sentSince: string | null;
  /** The server confirmed (`subscribed`) on the current socket. */
  acked: boolean;
}

export interface Confirmation {
  /** The channel was not confirmed on this socket before. */
  newly: boolean;
  /** The `since` the current socket's subscribe carried. */
  since: string | null;
}

export class Subscriptions {
  private readonly channels = new Map<string, ChannelEntry>();
  private nextHolderId = 1;

  /**
   * @param transmit sends a message now, false when the socket is not open
   * @param canSend the socket is open and connected (a subscribe goes out now)
   */
  constructor(
    private readonly transmit: (message: ClientMessage) => boolean,
    private readonly canSend: () => boolean,
    private readonly log: (...args: unknown[]) => void,
  ) {}

  get names(): string[] {
    return [...this.channels.keys()];
  }

  has(channel: string): boolean {
    return this.channels.has(channel);
  }

  count(channel: string): number {
    return this.channels.get(channel)?.holders.length ?? 0;
  }

  acked(channel: string): boolean {
    return this.channels.get(channel)?.acked === true;
  }

  /** Hold the channel; sent now if open (or with its new merged filters). Returns the holder's id. */
  add(channel: string, filters: SubscriptionFilters | undefined, conflate = false): number {
    const holder: Holder = { id: this.nextHolderId++, filters, conflate };
    let entry = this.channels.get(channel);
    if (entry === undefined) {
      entry = { holders: [], sentKey: null, sentSince: null, acked: false };
      this.channels.set(channel, entry);
    }
    entry.holders.push(holder);
    this.log("subscribe", channel, `(${entry.holders.length} subscriber(s))`);
    this.sync(channel, entry);
    return holder.id;
  }

  /** The id of the holder to undo for unsubscribe(channel, filters?): equal filters, else the latest. */
  find(channel: string, filters?: SubscriptionFilters): number | null {
    const entry = this.channels.get(channel);
    if (entry === undefined) return null;
    const key = filters === undefined ? null : filtersKey(filters);
    const matching = entry.holders.filter((h) => key === null || filtersKey(h.filters) === key);
    return matching[matching.length - 1]?.id ?? null;
  }

  /**
   * Undo one subscribe(). The `unsubscribe` goes out when the channel's last holder is
   * gone; otherwise the remaining holders' filters are sent if they changed. True when
   * something was removed.
   */
  remove(channel: string, holderId: number): boolean {
    const entry = this.channels.get(channel);
    if (entry === undefined) return false;
    const index = entry.holders.findIndex((h) => h.id === holderId);
    if (index < 0) return false;
    entry.holders.splice(index, 1);
    this.log("unsubscribe", channel, `(${entry.holders.length} subscriber(s) left)`);
    if (entry.holders.length === 0) {
      this.channels.delete(channel);
      if (entry.sentKey !== null) {
        this.transmit({ type: "unsubscribe", timestamp: new Date().toISOString(), data: { channel } });
      }
    } else {
      this.sync(channel, entry);
    }
    return true;
  }

  /** A socket opened: send every held channel, with its filters, resuming from `since`. */
  resubscribeAll(since: string | null): void {
    for (const [channel, entry] of this.channels) {
      entry.sentKey = null;
      entry.sentSince = null;
      entry.acked = false;
      this.send(channel, entry, since);
    }
  }

  /** The socket is gone: nothing is sent or confirmed any more. True when that changed something. */
  reset(): boolean {
    let changed = false;
    for (const entry of this.channels.values()) {
      if (entry.acked || entry.sentKey !== null) changed = true;
      entry.acked = false;
      entry.sentKey = null;
      entry.sentSince = null;
    }
    return changed;
  }

  /** The server confirmed the channel; null when it is no longer held. */
  confirm(channel: string): Confirmation | null {
    const entry = this.channels.get(channel);
    if (entry === undefined) return null; // unsubscribed meanwhile
    const newly = !entry.acked;
    entry.acked = true;
    return { newly, since: entry.sentSince };
  }

  /** Send the channel's merged filters if the socket is open and they changed. */
  private sync(channel: string, entry: ChannelEntry): void {
    if (!this.canSend()) return;
    const merged = mergeFilters(entry.holders.map((h) => h.filters));
    if (entry.sentKey === sentKey(merged, conflates(entry))) return;
    // Live on an open connection: no `since` (nothing was missed on this connection).
    this.send(channel, entry, null);
  }

  private send(channel: string, entry: ChannelEntry, since: string | null): void {
    const filters = mergeFilters(entry.holders.map((h) => h.filters));
    const conflate = conflates(entry);
    const data: SubscribeData = {
      channel,
      ...(filters !== undefined ? { filters } : {}),
      ...(since !== null ? { since } : {}),
      ...(conflate ? { conflate } : {}),
    };
    if (this.transmit({ type: "subscribe", timestamp: new Date().toISOString(), data })) {
      entry.sentKey = sentKey(filters, conflate);
      entry.sentSince = since;
    }
  }
}

/** A channel conflates only when every subscribe() holding it asked to (one that wants
 * every event keeps it exactly-once). */
function conflates(entry: ChannelEntry): boolean {
  return entry.holders.length > 0 && entry.holders.every((h) => h.conflate);
}

function sentKey(filters: SubscriptionFilters | undefined, conflate: boolean): string {
  return conflate ? `${filtersKey(filters)}|conflate` : filtersKey(filters);
}
