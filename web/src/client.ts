/** The client without React: what the browser bundle (flowwire-client.js) exposes. */
export {
  WebSocketClient,
  getWebSocketClient,
  resetWebSocketClient,
  disconnectWebSocket,
  createWebSocketClient,
  resolvePolicy,
  CloseCode,
  DEBUG_NAMESPACE,
  V2_JSON,
} from "./lib/websocket.js";
export type {
  ConnectionState,
  ProtocolChoice,
  TokenReason,
  TokenValue,
  WebSocketClientOptions,
  WebSocketConstructor,
  WebSocketLike,
  CloseEventLike,
  MessageEventLike,
} from "./lib/websocket.js";
export {
  DEFAULT_BACKOFF,
  backoffCeiling,
  backoffDelay,
  parseRestartDelayMs,
  type BackoffOptions,
} from "./lib/backoff.js";
export { compareEventIds, isEventId, maxEventId, parseEventId } from "./lib/ids.js";
export { ConfigurationError } from "./lib/url.js";
export {
  EVENT_TYPES,
  EXECUTION_EVENT_TYPES,
  STEP_EVENT_TYPES,
  APPROVAL_EVENT_TYPES,
  CONTROL_TYPES,
  V2_TYPES,
} from "./lib/types.js";
export type * from "./lib/types.js";
// Presence (docs/protocol.md, "Presence"): client.presence(), client.watchPresence()
export { PresenceError } from "./lib/presence.js";
export type { PresenceListener, PresenceMember, PresenceSnapshot } from "./lib/presence.js";
