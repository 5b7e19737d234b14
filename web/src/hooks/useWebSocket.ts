/**
 * React hooks over the flowwire client, with the original's names and shapes.
 *
 * Every hook uses the client from <WebSocketProvider client={...}> when there is one,
 * else the application singleton getWebSocketClient(). Handlers passed to the hooks may
 * change on every render: the hooks always call the latest one without re-registering.
 */
import {
  createContext,
  createElement,
  useCallback,
  useContext,
  useEffect,
  useLayoutEffect,
  useMemo,
  useRef,
  useState,
  useSyncExternalStore,
  type ReactNode,
} from "react";
import { upsertInPlace, upsertNewestFirst } from "../lib/boundedList.js";
import { filtersKey } from "../lib/filters.js";
import {
  APPROVAL_EVENT_TYPES,
  EXECUTION_EVENT_TYPES,
  STEP_EVENT_TYPES,
  type ApprovalEventData,
  type ApprovalEventMessage,
  type ClientEventHandler,
  type ClientEventMap,
  type ClientEventType,
  type ClientMessage,
  type ExecutionEventData,
  type ExecutionEventMessage,
  type ResyncMessage,
  type StepEventData,
  type StepEventMessage,
  type SubscribeOptions,
  type SubscriptionFilters,
} from "../lib/types.js";
import { getWebSocketClient, type ConnectionState, type WebSocketClient } from "../lib/websocket.js";

/** Default bound of the hooks' lists. */
export const DEFAULT_LIST_LIMIT = 100;

// useLayoutEffect warns during server rendering; there is nothing to lay out there.
const useIsomorphicLayoutEffect = typeof window !== "undefined" ? useLayoutEffect : useEffect;

const WebSocketContext = createContext<WebSocketClient | null>(null);

export interface WebSocketProviderProps {
  client: WebSocketClient;
  children?: ReactNode;
}

/** Give the hooks below a specific client (default: the getWebSocketClient() singleton). */
export function WebSocketProvider({ client, children }: WebSocketProviderProps) {
  return createElement(WebSocketContext.Provider, { value: client }, children);
}

/** The client the hooks use. */
export function useWebSocketClient(): WebSocketClient {
  return useContext(WebSocketContext) ?? getWebSocketClient();
}

/** A ref that always holds the latest value (set before effects run). */
function useLatest<T>(value: T) {
  const ref = useRef(value);
  useIsomorphicLayoutEffect(() => {
    ref.current = value;
  });
  return ref;
}

function useConnectionState(client: WebSocketClient): ConnectionState {
  return useSyncExternalStore(
    client.onStatusChange,
    () => client.state,
    () => "disconnected" as const,
  );
}

/** True only while connected AND the server's `subscribed` for the channel arrived. */
function useChannelLive(client: WebSocketClient, channel: string | null): boolean {
  const getSnapshot = useCallback(() => (channel === null ? false : client.isLive(channel)), [client, channel]);
  return useSyncExternalStore(client.onStatusChange, getSnapshot, () => false);
}

// ---------------------------------------------------------------------------------------

export interface UseWebSocketOptions {
  /** Call client.connect() on mount (idempotent). Default true. The hook never disconnects. */
  autoConnect?: boolean;
}

export interface UseWebSocketResult {
  client: WebSocketClient;
  connectionState: ConnectionState;
  /** As the original's: a function, true while connected (`connectionState` re-renders). */
  isConnected: () => boolean;
  connect: () => void;
  disconnect: () => void;
  subscribe: (channel: string, filters?: SubscriptionFilters, options?: SubscribeOptions) => () => void;
  unsubscribe: (channel: string, filters?: SubscriptionFilters) => void;
  on: <T extends ClientEventType>(type: T, handler: ClientEventHandler<T>) => () => void;
  off: <T extends ClientEventType>(type: T, handler: ClientEventHandler<T>) => void;
  send: (message: ClientMessage) => boolean;
}

/** Core hook: the connection state and the client's operations (stable functions). */
export function useWebSocket(options: UseWebSocketOptions = {}): UseWebSocketResult {
  const client = useWebSocketClient();
  const connectionState = useConnectionState(client);
  const autoConnect = options.autoConnect ?? true;
  useEffect(() => {
    if (autoConnect) client.connect();
  }, [client, autoConnect]);
  return useMemo(
    () => ({
      client,
      connectionState,
      // A new function when the state changes, so memoized consumers see the change.
      isConnected: () => client.isConnected(),
      connect: () => client.connect(),
      disconnect: () => client.disconnect(),
      subscribe: (channel: string, filters?: SubscriptionFilters, options?: SubscribeOptions) =>
        client.subscribe(channel, filters, options),
      unsubscribe: (channel: string, filters?: SubscriptionFilters) => client.unsubscribe(channel, filters),
      on: <T extends ClientEventType>(type: T, handler: ClientEventHandler<T>) => client.on(type, handler),
      off: <T extends ClientEventType>(type: T, handler: ClientEventHandler<T>) => client.off(type, handler),
      send: (message: ClientMessage) => client.send(message),
    }),
    [client, connectionState],
  );
}

export interface UseWebSocketSubscriptionResult {
  /** Connected and confirmed by the server: events for the channel are flowing. */
  isLive: boolean;
  /** The subscription is held (it is sent whenever the client is connected). */
  isSubscribed: boolean;
}

/**
 * Hold a subscription to `channel` while mounted (null/undefined: none). Filters are
 * compared by value, so a new object with the same content does not resubscribe.
 * `options.conflate` (protocol version 2): the latest event per execution when backlogged.
 */
export function useWebSocketSubscription(
  channel: string | null | undefined,
  filters?: SubscriptionFilters,
  options: UseWebSocketOptions & SubscribeOptions = {},
): UseWebSocketSubscriptionResult {
  const client = useWebSocketClient();
  const key = filtersKey(filters);
  const filtersRef = useLatest(filters);
  const target = channel === null || channel === undefined || channel === "" ? null : channel;
  const autoConnect = options.autoConnect ?? true;
  const conflate = options.conflate === true;
  useEffect(() => {
    if (target === null) return undefined;
    const release = client.subscribe(target, filtersRef.current, { conflate });
    if (autoConnect) client.connect();
    return release;
    // `key` stands for the filters' content; filtersRef holds the object itself.
  }, [client, target, key, autoConnect, filtersRef, conflate]);
  const isLive = useChannelLive(client, target);
  const isSubscribed = useSyncExternalStore(
    client.onStatusChange,
    () => (target === null ? false : client.isSubscribed(target)),
    () => false,
  );
  return { isLive, isSubscribed };
}

/**
 * Call `handler` for each message of `type` (or of any of `types`). The handler may be
 * a new function on every render; the registration stays the same.
 */
export function useWebSocketEvent<T extends ClientEventType>(
  type: T | readonly T[],
  handler: (message: ClientEventMap[T]) => void,
): void {
  const client = useWebSocketClient();
  const handlerRef = useLatest(handler);
  const types: readonly T[] = typeof type === "string" ? [type as T] : (type as readonly T[]);
  const typesKey = types.join("\u0000");
  useEffect(() => {
    const listener = (message: ClientEventMap[T]) => handlerRef.current(message);
    const offs = typesKey.split("\u0000").map((t) => client.on(t as T, listener as ClientEventHandler<T>));
    return () => {
      for (const off of offs) off();
    };
  }, [client, typesKey, handlerRef]);
}

// ---------------------------------------------------------------------------------------

export interface ExecutionHookOptions {
  /** Called when the channel's history could not be replayed (reload state then). */
  onResync?: (message: ResyncMessage) => void;
}

export interface ListHookOptions extends ExecutionHookOptions {
  /** Most entries kept (newest first for executions). Default 100. */
  limit?: number;
}

function useResync(channel: string | null, onResync: ((message: ResyncMessage) => void) | undefined): void {
  const onResyncRef = useLatest(onResync);
  useWebSocketEvent("resync", (message) => {
    if (channel !== null && message.data.channel === channel) onResyncRef.current?.(message);
  });
}

/** State that resets whenever `key` changes (e.g. the execution id). */
function useKeyedState<T>(key: string | null, initial: T): [T, (update: (previous: T) => T) => void] {
  const [state, setState] = useState<{ key: string | null; value: T }>({ key, value: initial });
  const initialRef = useLatest(initial);
  const value = state.key === key ? state.value : initial;
  const update = useCallback(
    (fn: (previous: T) => T) =>
      setState((previous) => ({
        key,
        value: fn(previous.key === key ? previous.value : initialRef.current),
      })),
    [key, initialRef],
  );
  return [value, update];
}

function resolveLimit(limit: number | undefined): number {
  if (limit === undefined) return DEFAULT_LIST_LIMIT;
  if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`limit must be a positive integer, got ${limit}`);
  return limit;
}

export interface UseExecutionUpdatesResult {
  /** The execution as the latest events describe it (fields merged), null before any. */
  execution: ExecutionEventData | null;
  /** Connected and subscribed (the server confirmed executions:{id}). */
  isLive: boolean;
}

/** Live state of one execution (its short id, exec_xxxxxxxx), from execution.* events. */
export function useExecutionUpdates(
  executionId?: string | null,
  options: ExecutionHookOptions = {},
): UseExecutionUpdatesResult {
  const id = executionId || null;
  const channel = id === null ? null : `executions:${id}`;
  const { isLive } = useWebSocketSubscription(channel);
  const [execution, setExecution] = useKeyedState<ExecutionEventData | null>(id, null);
  useWebSocketEvent(EXECUTION_EVENT_TYPES, (message: ExecutionEventMessage) => {
    if (id === null || message.data.execution_id !== id) return; // not ours
    setExecution((previous) => (previous === null ? { ...message.data } : { ...previous, ...message.data }));
  });
  useResync(channel, options.onResync);
  return { execution, isLive };
}

/**
 * Recent executions of one workflow (execution.* events), newest first, one entry per
 * execution_id, at most `limit` (default 100).
 */
export function useWorkflowExecutions(
  workflowId?: string | null,
  options: ListHookOptions = {},
): ExecutionEventData[] {
  const id = workflowId || null;
  const channel = id === null ? null : `workflows:${id}`;
  const limit = resolveLimit(options.limit);
  useWebSocketSubscription(channel);
  const [list, setList] = useKeyedState<ExecutionEventData[]>(id, EMPTY);
  useWebSocketEvent(EXECUTION_EVENT_TYPES, (message: ExecutionEventMessage) => {
    if (id === null || message.data.workflow_id !== id) return;
    setList((previous) => upsertNewestFirst(previous, message.data, byExecutionId, limit));
  });
  useResync(channel, options.onResync);
  return list;
}

/**
 * Recent executions of every workflow (the `executions` channel), newest first, one
 * entry per execution_id, at most `limit` (default 100).
 */
export function useAllExecutions(options: ListHookOptions = {}): ExecutionEventData[] {
  const limit = resolveLimit(options.limit);
  useWebSocketSubscription("executions");
  const [list, setList] = useState<ExecutionEventData[]>(EMPTY);
  useWebSocketEvent(EXECUTION_EVENT_TYPES, (message: ExecutionEventMessage) => {
    setList((previous) => upsertNewestFirst(previous, message.data, byExecutionId, limit));
  });
  useResync("executions", options.onResync);
  return list;
}

export interface UseExecutionStepsResult {
  /** Steps in the order they first appeared, one per step_id, at most `limit`. */
  steps: StepEventData[];
  isLive: boolean;
}

/** Live steps of one execution (step.* events). */
export function useExecutionSteps(
  executionId?: string | null,
  options: ListHookOptions = {},
): UseExecutionStepsResult {
  const id = executionId || null;
  const channel = id === null ? null : `executions:${id}`;
  const limit = resolveLimit(options.limit);
  const { isLive } = useWebSocketSubscription(channel);
  const [steps, setSteps] = useKeyedState<StepEventData[]>(id, EMPTY);
  useWebSocketEvent(STEP_EVENT_TYPES, (message: StepEventMessage) => {
    if (id === null || message.data.execution_id !== id) return;
    setSteps((previous) => upsertInPlace(previous, message.data, byStepId, limit));
  });
  useResync(channel, options.onResync);
  return { steps, isLive };
}

export interface UseExecutionApprovalsResult {
  /** Approvals of the execution, newest first, one per approval_id, at most `limit`. */
  approvals: ApprovalEventData[];
  /** Those still waiting for a decision (status "pending"). */
  pending: ApprovalEventData[];
  isLive: boolean;
}

/** Live approvals of one execution (approval.* events). */
export function useExecutionApprovals(
  executionId?: string | null,
  options: ListHookOptions = {},
): UseExecutionApprovalsResult {
  const id = executionId || null;
  const channel = id === null ? null : `executions:${id}`;
  const limit = resolveLimit(options.limit);
  const { isLive } = useWebSocketSubscription(channel);
  const [approvals, setApprovals] = useKeyedState<ApprovalEventData[]>(id, EMPTY);
  useWebSocketEvent(APPROVAL_EVENT_TYPES, (message: ApprovalEventMessage) => {
    if (id === null || message.data.execution_id !== id) return;
    setApprovals((previous) => upsertNewestFirst(previous, message.data, byApprovalId, limit));
  });
  useResync(channel, options.onResync);
  const pending = useMemo(() => approvals.filter((a) => a.status === "pending"), [approvals]);
  return { approvals, pending, isLive };
}

const EMPTY: never[] = [];
const byExecutionId = (value: { execution_id: string }) => value.execution_id;
const byStepId = (value: { step_id: string }) => value.step_id;
const byApprovalId = (value: { approval_id: string }) => value.approval_id;
