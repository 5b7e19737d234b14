/** The client without React: what the browser bundle (flowwire-client.js) exposes. */
export {
  WebSocketClient,
  getWebSocketClient,
  resetWebSocketClient,
  createWebSocketClient,
  CloseCode,
  DEBUG_NAMESPACE,
} from "./lib/websocket.js";
export type {
  ConnectionState,
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
} from "./lib/types.js";
export type * from "./lib/types.js";
