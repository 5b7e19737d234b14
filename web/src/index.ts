/**
 * flowwire browser package: the WebSocket client and its React hooks.
 * Without React, import "@flowwire/client/client" (or the bundle flowwire-client.js).
 */
export * from "./client.js";
export {
  DEFAULT_LIST_LIMIT,
  WebSocketProvider,
  useAllExecutions,
  useExecutionApprovals,
  useExecutionSteps,
  useExecutionUpdates,
  useWebSocket,
  useWebSocketClient,
  useWebSocketEvent,
  useWebSocketSubscription,
  useWorkflowExecutions,
} from "./hooks/useWebSocket.js";
export type {
  ExecutionHookOptions,
  ListHookOptions,
  UseExecutionApprovalsResult,
  UseExecutionStepsResult,
  UseExecutionUpdatesResult,
  UseWebSocketOptions,
  UseWebSocketResult,
  UseWebSocketSubscriptionResult,
  WebSocketProviderProps,
} from "./hooks/useWebSocket.js";
export { usePresence } from "./hooks/usePresence.js";
export type { UsePresenceOptions, UsePresenceResult } from "./hooks/usePresence.js";
