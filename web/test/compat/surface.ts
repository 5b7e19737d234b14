// Type-level test (checked by `npm run typecheck`): every export of the original
// client's two modules (test/compat/original.d.ts, written from the reference) exists in
// @flowwire/client under the same name, with a type code written against the original
// can use unchanged:
// - data types (messages, payloads, handler, subscription) are the same type: each is
//   assignable to the other;
// - options are an input: the original's are accepted (flowwire accepts more);
// - functions, hooks and methods fit the original's signatures with parameters checked
//   contravariantly (strict function types, even for methods): flowwire accepts every
//   argument the original accepted and returns what the original's callers read.
import type * as OW from "@original/lib/websocket";
import type * as OH from "@original/hooks/useWebSocket";
import * as F from "@flowwire/client";

type Mutual<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
type Assignable<From, To> = [From] extends [To] ? true : false;
/** The function type itself (not a method), so that its parameters are checked strictly. */
type Strict<Fn> = Fn extends (...args: infer A) => infer R ? (...args: A) => R : never;
const yes = <T extends true>(value: T): T => value;

// The helpers can fail (so the checks below are not vacuous).
// @ts-expect-error different types are not mutual
yes<Mutual<{ a: string }, { a: number }>>(true);
// @ts-expect-error an extra required field breaks one direction
yes<Mutual<{ a: string }, { a: string; b: string }>>(true);
// @ts-expect-error a method taking less than the original's argument does not fit
const narrow: Strict<(x: string | number) => void> = (x: string) => void x;

// Every value export of the original modules exists.
yes<Assignable<Exclude<keyof typeof import("@original/lib/websocket"), keyof typeof F>, never>>(true);
yes<Assignable<Exclude<keyof typeof import("@original/hooks/useWebSocket"), keyof typeof F>, never>>(true);

// Data types: the same type.
yes<Mutual<F.WebSocketMessageType, OW.WebSocketMessageType>>(true);
yes<Mutual<F.WebSocketMessage, OW.WebSocketMessage>>(true);
yes<Mutual<F.ExecutionEventData, OW.ExecutionEventData>>(true);
yes<Mutual<F.StepEventData, OW.StepEventData>>(true);
yes<Mutual<F.SubscriptionData, OW.SubscriptionData>>(true);
yes<Mutual<F.WebSocketEventHandler, OW.WebSocketEventHandler>>(true);
// What handlers receive fits the original's WebSocketMessage, for every type.
yes<Assignable<F.ClientEventMap[F.WebSocketMessageType], OW.WebSocketMessage>>(true);

// Options: every original option, accepted as the original typed it.
yes<Assignable<keyof OW.WebSocketClientOptions, keyof F.WebSocketClientOptions>>(true);
yes<Assignable<OW.WebSocketClientOptions, F.WebSocketClientOptions>>(true);
yes<Assignable<Required<OW.WebSocketClientOptions>, F.WebSocketClientOptions>>(true);

// The class: constructor, instance, and each method strictly.
const Client: new (options?: OW.WebSocketClientOptions) => OW.WebSocketClient = F.WebSocketClient;
declare const client: F.WebSocketClient;
const methods: { [K in keyof OW.WebSocketClient]: Strict<OW.WebSocketClient[K]> } = {
  connect: client.connect,
  disconnect: client.disconnect,
  subscribe: client.subscribe,
  unsubscribe: client.unsubscribe,
  on: client.on,
  off: client.off,
  send: client.send,
  isConnected: client.isConnected,
};

// Functions.
const getWebSocketClient: Strict<typeof OW.getWebSocketClient> = F.getWebSocketClient;
const disconnectWebSocket: Strict<typeof OW.disconnectWebSocket> = F.disconnectWebSocket;

// Hooks, and what they return.
const useWebSocket: Strict<typeof OH.useWebSocket> = F.useWebSocket;
type OriginalUseWebSocket = ReturnType<typeof OH.useWebSocket>;
declare const hook: ReturnType<typeof F.useWebSocket>;
const hookMembers: { [K in keyof OriginalUseWebSocket]: Strict<OriginalUseWebSocket[K]> } = {
  subscribe: hook.subscribe,
  unsubscribe: hook.unsubscribe,
  on: hook.on,
  off: hook.off,
  isConnected: hook.isConnected,
};
const useWebSocketSubscription: Strict<typeof OH.useWebSocketSubscription> = F.useWebSocketSubscription;
const useWebSocketEvent: Strict<typeof OH.useWebSocketEvent> = F.useWebSocketEvent;
const useExecutionUpdates: Strict<typeof OH.useExecutionUpdates> = F.useExecutionUpdates;
const useWorkflowExecutions: Strict<typeof OH.useWorkflowExecutions> = F.useWorkflowExecutions;
const useAllExecutions: Strict<typeof OH.useAllExecutions> = F.useAllExecutions;

export const checked = [
  narrow,
  Client,
  methods,
  getWebSocketClient,
  disconnectWebSocket,
  useWebSocket,
  hookMembers,
  useWebSocketSubscription,
  useWebSocketEvent,
  useExecutionUpdates,
  useWorkflowExecutions,
  useAllExecutions,
];
