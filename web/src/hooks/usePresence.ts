/**
 * usePresence(channel): who is subscribed to a channel, or (channel null or omitted)
 * connected in the organization, kept current while mounted (docs/protocol.md,
 * "Presence"). The gateway answers a snapshot, then join/leave diffs coalesced over its
 * PRESENCE_INTERVAL; after a reconnect the client asks again, since presence is never
 * resumed.
 */
import { useEffect, useState } from "react";
import type { PresenceMember } from "../lib/presence.js";
import { useWebSocketClient, type UseWebSocketOptions } from "./useWebSocket.js";

export interface UsePresenceOptions extends UseWebSocketOptions {
  /** false: watch nothing (the result is empty). Default true. */
  enabled?: boolean;
}

export interface UsePresenceResult {
  /** By user id, with each user's connection count (at most the gateway's PRESENCE_MAX_MEMBERS). */
  members: PresenceMember[];
  /** How many members there are. */
  count: number;
  /** A snapshot arrived (false until the gateway answered). */
  ready: boolean;
}

const EMPTY: UsePresenceResult = { members: [], count: 0, ready: false };

export function usePresence(channel: string | null = null, options: UsePresenceOptions = {}): UsePresenceResult {
  const client = useWebSocketClient();
  const [result, setResult] = useState<UsePresenceResult>(EMPTY);
  const enabled = options.enabled ?? true;
  const autoConnect = options.autoConnect ?? true;
  const target = channel === "" ? null : channel;
  useEffect(() => {
    setResult(EMPTY);
    if (!enabled) return undefined;
    const undo = client.watchPresence(target, (snap) =>
      setResult({ members: snap.members, count: snap.count, ready: true }),
    );
    if (autoConnect) client.connect();
    return undo;
  }, [client, target, enabled, autoConnect]);
  return result;
}
