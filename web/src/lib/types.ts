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

export type ClientControlType = "ping" | "subscribe" | "unsubscribe";
export type ServerControlType = "pong" | "subscribed" | "unsubscribed" | "error";
export type ServerMessageType = EventType | ServerControlType;

export type Message<T extends MessageType> = ProtocolMessages[T];
export type EventMessage<T extends EventType = EventType> = ProtocolMessages[T];
export type ServerMessage = ProtocolMessages[ServerMessageType];
export type ClientMessage = ProtocolMessages[ClientControlType];

export type ExecutionEventMessage = ProtocolMessages[ExecutionEventType];
export type StepEventMessage = ProtocolMessages[StepEventType];
export type ApprovalEventMessage = ProtocolMessages[ApprovalEventType];

/** `data` of execution.* events: execution_id, workflow_id, status, … */
export type ExecutionEventData = ExecutionEventMessage["data"];
/** `data` of step.* events: execution_id, step_id, step_type, status, … */
export type StepEventData = StepEventMessage["data"];
/** `data` of approval.* events: approval_id, execution_id, workflow_id, status, … */
export type ApprovalEventData = ApprovalEventMessage["data"];

export type SubscribeData = ProtocolMessages["subscribe"]["data"];
export type SubscribedData = ProtocolMessages["subscribed"]["data"];
export type UnsubscribedData = ProtocolMessages["unsubscribed"]["data"];
export type ErrorData = ProtocolMessages["error"]["data"];
/** Per-subscription filters: workflow_ids, execution_ids, statuses (empty = no constraint). */
export type SubscriptionFilters = NonNullable<SubscribeData["filters"]>;

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
] as const satisfies readonly (ClientControlType | ServerControlType)[];

// Compile-time exhaustiveness: every type the schemas define is listed above, and the
// lists name nothing else. A schema adding or renaming a type breaks the build here.
type Missing = Exclude<MessageType, (typeof EVENT_TYPES)[number] | (typeof CONTROL_TYPES)[number]>;
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

/** What `on(type, handler)` accepts: server message types, "resync", and "*" (every server message). */
export type ClientEventMap = { [K in ServerMessageType]: ProtocolMessages[K] } & {
  resync: ResyncMessage;
  "*": ServerMessage;
};
export type ClientEventType = keyof ClientEventMap;
export type ClientEventHandler<T extends ClientEventType> = (message: ClientEventMap[T]) => void;
