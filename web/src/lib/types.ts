/**
 * Protocol types, derived from the generated src/generated/protocol.ts (itself generated
 * from the server's docs/schema/*.json), so a change on the server that the client does
 * not follow fails `npm run typecheck` and `npm test`.
 */
import type { ProtocolMessages } from "../generated/protocol.js";

export type { ProtocolMessages } from "../generated/protocol.js";

/** Every message type the schemas define. */
export type MessageType = keyof ProtocolMessages;

export type ExecutionEventType = Extract<MessageType, `execution.${string}`>;
export type StepEventType = Extract<MessageType, `step.${string}`>;
export type ApprovalEventType = Extract<MessageType, `approval.${string}`>;
/** Server events: the messages that carry a stream id. */
export type EventType = ExecutionEventType | StepEventType | ApprovalEventType;

export type ClientControlType = "ping" | "subscribe" | "unsubscribe" | PresenceClientType;
export type ServerControlType = "pong" | "subscribed" | "unsubscribed" | "error" | PresenceServerType;
/** Presence (docs/protocol.md, "Presence"): sent only to a client that asks. */
export type PresenceClientType = "presence";
export type PresenceServerType = "presence.state" | "presence.diff";
/** Protocol version 2 (`flowwire.v2.json`): the client handles these by itself. */
export type ClientV2Type = "hello" | "refresh";
export type ServerV2Type = "welcome" | "token_expiring" | "refreshed";
export type ServerMessageType = EventType | ServerControlType;

export type Message<T extends MessageType> = ProtocolMessages[T];

/**
 * A payload as the client hands it out: an optional field is absent or has a value,
 * never `null` (the wire contract omits empty fields; a `null` some publisher wrote is
 * removed on receipt), and an enumerated string (`status`, `result`) is typed as a
 * string whose known values the editor still proposes, as in the original's interfaces.
 */
export type Payload<T> = { [K in keyof T]: Loose<Exclude<T[K], null | undefined>> };
type Loose<V> = [V] extends [string] ? (string extends V ? V : V | (string & {})) : V;
/** A message with its payload as in Payload<T>. */
type Delivered<M> = M extends { data: infer D } ? Omit<M, "data"> & { data: Payload<D> } : M;

/** An event message of the given type(s): `{ type, id, timestamp, data }`. */
export type EventMessage<T extends EventType = EventType> = Delivered<ProtocolMessages[T]>;
export type ExecutionEventMessage = EventMessage<ExecutionEventType>;
export type StepEventMessage = EventMessage<StepEventType>;
export type ApprovalEventMessage = EventMessage<ApprovalEventType>;

/** A `pong` as the server sends it (always with a timestamp). */
export type PongMessage = ProtocolMessages["pong"] & { timestamp: string };
export type SubscribedMessage = ProtocolMessages["subscribed"];
export type UnsubscribedMessage = ProtocolMessages["unsubscribed"];
export type ErrorMessage = ProtocolMessages["error"];
export type WelcomeMessage = ProtocolMessages["welcome"];
export type TokenExpiringMessage = ProtocolMessages["token_expiring"];
export type RefreshedMessage = ProtocolMessages["refreshed"];
export type PresenceStateMessage = ProtocolMessages["presence.state"];
export type PresenceDiffMessage = ProtocolMessages["presence.diff"];
/** Every frame the server sends. */
export type ServerMessage =
  | EventMessage
  | PongMessage
  | SubscribedMessage
  | UnsubscribedMessage
  | ErrorMessage
  | PresenceStateMessage
  | PresenceDiffMessage;
export type ClientMessage = ProtocolMessages[ClientControlType];

/** `data` of execution.* events: execution_id, workflow_id, status, … */
export type ExecutionEventData = Payload<ProtocolMessages["execution.started"]["data"]>;
/** `data` of step.* events: execution_id, step_id, step_type, status, … */
export type StepEventData = Payload<ProtocolMessages["step.started"]["data"]>;
/** `data` of approval.* events: approval_id, execution_id, workflow_id, status, … */
export type ApprovalEventData = Payload<ProtocolMessages["approval.required"]["data"]>;
/** The known values of the payloads' `status` and `result`. */
export type ExecutionStatus = ProtocolMessages["execution.started"]["data"]["status"];
export type ExecutionResult = NonNullable<ProtocolMessages["execution.started"]["data"]["result"]>;
export type StepStatus = ProtocolMessages["step.started"]["data"]["status"];
export type ApprovalStatus = ProtocolMessages["approval.required"]["data"]["status"];

export type SubscribeData = ProtocolMessages["subscribe"]["data"];
export type SubscribedData = ProtocolMessages["subscribed"]["data"];
export type UnsubscribedData = ProtocolMessages["unsubscribed"]["data"];
export type ErrorData = ProtocolMessages["error"]["data"];
/** Per-subscription filters: workflow_ids, execution_ids, statuses (empty = no constraint). */
export type SubscriptionFilters = NonNullable<SubscribeData["filters"]>;

/** Options of subscribe() beyond its filters. */
export interface SubscribeOptions {
  /**
   * Protocol version 2: when this connection is backlogged, get the latest event per
   * execution instead of being closed 4008 (a weaker guarantee: events replaced by a later
   * one of their execution are never delivered). Sent when every subscribe() holding the
   * channel asks for it; a version 1 gateway ignores it.
   */
  conflate?: boolean;
}

export const EXECUTION_EVENT_TYPES = [
  "execution.created",
  "execution.started",
  "execution.completed",
  "execution.failed",
  "execution.paused",
  "execution.resumed",
  "execution.cancelled",
  "execution.blocked",
] as const satisfies readonly ExecutionEventType[];

export const STEP_EVENT_TYPES = [
  "step.started",
  "step.completed",
  "step.failed",
  "step.skipped",
] as const satisfies readonly StepEventType[];

export const APPROVAL_EVENT_TYPES = [
  "approval.required",
  "approval.granted",
  "approval.denied",
  "approval.expired",
] as const satisfies readonly ApprovalEventType[];

export const EVENT_TYPES = [
  ...EXECUTION_EVENT_TYPES,
  ...STEP_EVENT_TYPES,
  ...APPROVAL_EVENT_TYPES,
] as const;

export const CONTROL_TYPES = [
  "ping",
  "pong",
  "subscribe",
  "subscribed",
  "unsubscribe",
  "unsubscribed",
  "error",
  "presence",
  "presence.state",
  "presence.diff",
] as const satisfies readonly (ClientControlType | ServerControlType)[];

export const V2_TYPES = [
  "hello",
  "welcome",
  "refresh",
  "refreshed",
  "token_expiring",
] as const satisfies readonly (ClientV2Type | ServerV2Type)[];

// Compile-time exhaustiveness: every type the schemas define is listed above, and the
// lists name nothing else. A schema adding or renaming a type breaks the build here.
type Missing = Exclude<
  MessageType,
  (typeof EVENT_TYPES)[number] | (typeof CONTROL_TYPES)[number] | (typeof V2_TYPES)[number]
>;
const _everyTypeListed: [Missing] extends [never] ? true : { missing: Missing } = true;
void _everyTypeListed;

/**
 * Emitted by the client (not sent by the server) when a resumed subscription comes back
 * with `recovered: false`: the stream no longer holds the client's cursor, events were
 * missed, and the application must reload its state (e.g. refetch over HTTP).
 */
export interface ResyncMessage {
  type: "resync";
  timestamp: string;
  data: {
    /** The channel whose history could not be replayed. */
    channel: string;
    /** The cursor the client asked to resume from. */
    since: string | null;
    /** Where the subscription is live from now. */
    position: string | null;
  };
}

/**
 * The client's own `subscribed` signal, as the original client's: emitted to the
 * handlers of `subscribed` each time a socket opens, before the subscriptions are sent.
 * It has no `data` (the server's confirmations of a channel have `data.channel`).
 */
export interface ConnectedSignal {
  type: "subscribed";
  timestamp: string;
  data?: undefined;
}

// ------------------------------------------------------------------ the original's names

/**
 * The original client's message types: the 16 event types and the 7 control types
 * (`ping`, `pong`, `error`, `subscribe`, `unsubscribe`, `subscribed`, `unsubscribed`);
 * not protocol version 2's, which the client handles by itself.
 */
export type WebSocketMessageType = Exclude<
  MessageType,
  ClientV2Type | ServerV2Type | PresenceClientType | PresenceServerType
>;

/** The original's message shape (every frame fits it; events also carry `id`). */
export interface WebSocketMessage {
  type: WebSocketMessageType;
  timestamp: string;
  // `any`, as the original's: code written against it reads `message.data.execution_id`.
  data?: any;
}

/** The original's handler type: `on(type, handler)` accepts it for every type. */
export type WebSocketEventHandler = (message: WebSocketMessage) => void;

/** The original's subscription shape (`subscribe` message data without `since`). */
export interface SubscriptionData {
  channel: string;
  filters?: {
    workflow_ids?: string[];
    execution_ids?: string[];
    statuses?: string[];
  };
}

/**
 * What `on(type, handler)` accepts: every message type (the client-to-server ones,
 * `ping`, `subscribe`, `unsubscribe`, never arrive), "resync", and "*" (every server
 * message; not the client's own `subscribed` signal nor `resync`).
 */
export type ClientEventMap = { [K in EventType]: EventMessage<K> } & {
  pong: PongMessage;
  subscribed: SubscribedMessage | ConnectedSignal;
  unsubscribed: UnsubscribedMessage;
  error: ErrorMessage;
  welcome: WelcomeMessage;
  token_expiring: TokenExpiringMessage;
  refreshed: RefreshedMessage;
  ping: never;
  subscribe: never;
  unsubscribe: never;
  hello: never;
  refresh: never;
  presence: never;
  "presence.state": PresenceStateMessage;
  "presence.diff": PresenceDiffMessage;
  resync: ResyncMessage;
  "*": ServerMessage;
};
export type ClientEventType = keyof ClientEventMap;
export type ClientEventHandler<T extends ClientEventType> = (message: ClientEventMap[T]) => void;
