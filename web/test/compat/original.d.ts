// The public surface of the original Intelligent Workflows client modules,
// `@/lib/websocket` and `@/hooks/useWebSocket`, written from
// ../shared/reference/original-client-surface.md (not from the original code).
// test/compat/surface.ts checks @flowwire/client against it with `npm run typecheck`.

declare module "@original/lib/websocket" {
  export type WebSocketMessageType =
    | "execution.created"
    | "execution.started"
    | "execution.completed"
    | "execution.failed"
    | "execution.paused"
    | "execution.resumed"
    | "execution.cancelled"
    | "execution.blocked"
    | "step.started"
    | "step.completed"
    | "step.failed"
    | "step.skipped"
    | "approval.required"
    | "approval.granted"
    | "approval.denied"
    | "approval.expired"
    | "ping"
    | "pong"
    | "error"
    | "subscribe"
    | "unsubscribe"
    | "subscribed"
    | "unsubscribed";

  export interface WebSocketMessage {
    type: WebSocketMessageType;
    timestamp: string;
    data?: any;
  }

  export interface ExecutionEventData {
    execution_id: string;
    workflow_id: string;
    status: string;
    result?: string;
    trigger_event?: string;
    started_at?: string;
    completed_at?: string;
    duration_ms?: number;
    error_message?: string;
    context?: Record<string, any>;
    paused_reason?: string;
  }

  export interface StepEventData {
    execution_id: string;
    step_id: string;
    step_type: string;
    status: string;
    started_at?: string;
    completed_at?: string;
    duration_ms?: number;
    error_message?: string;
    output?: Record<string, any>;
  }

  export interface SubscriptionData {
    channel: string;
    filters?: {
      workflow_ids?: string[];
      execution_ids?: string[];
      statuses?: string[];
    };
  }

  export type WebSocketEventHandler = (message: WebSocketMessage) => void;

  export interface WebSocketClientOptions {
    url?: string;
    autoReconnect?: boolean;
    reconnectInterval?: number;
    maxReconnectAttempts?: number;
    getToken?: () => string | null;
  }

  export class WebSocketClient {
    constructor(options?: WebSocketClientOptions);
    connect(): void;
    disconnect(): void;
    subscribe(channel: string, filters?: SubscriptionData["filters"]): void;
    unsubscribe(channel: string): void;
    on(type: WebSocketMessageType, handler: WebSocketEventHandler): () => void;
    off(type: WebSocketMessageType, handler: WebSocketEventHandler): void;
    send(message: WebSocketMessage): void;
    isConnected(): boolean;
  }

  export function getWebSocketClient(options?: WebSocketClientOptions): WebSocketClient;
  export function disconnectWebSocket(): void;
}

declare module "@original/hooks/useWebSocket" {
  import type {
    ExecutionEventData,
    SubscriptionData,
    WebSocketEventHandler,
    WebSocketMessageType,
  } from "@original/lib/websocket";

  export function useWebSocket(): {
    subscribe: (channel: string, filters?: SubscriptionData["filters"]) => void;
    unsubscribe: (channel: string) => void;
    on: (type: WebSocketMessageType, handler: WebSocketEventHandler) => () => void;
    off: (type: WebSocketMessageType, handler: WebSocketEventHandler) => void;
    isConnected: () => boolean;
  };
  export function useWebSocketSubscription(channel: string, filters?: SubscriptionData["filters"]): void;
  export function useWebSocketEvent(type: WebSocketMessageType, handler: WebSocketEventHandler): void;
  export function useExecutionUpdates(executionId?: string): {
    execution: ExecutionEventData | null;
    isLive: boolean;
  };
  export function useWorkflowExecutions(workflowId?: string): ExecutionEventData[];
  export function useAllExecutions(): ExecutionEventData[];
}
