/**
 * The socket the client drives: the browser's WebSocket, or any class with the same
 * surface (the `ws` package in Node, a fake in tests), and the close codes it meets.
 */

/** Method-style signature: accepted bivariantly, so DOM and `ws` handler types fit. */
type Handler<E> = { bivarianceHack(event: E): void }["bivarianceHack"];

export interface CloseEventLike {
  readonly code: number;
  readonly reason: string;
  readonly wasClean?: boolean;
}

export interface MessageEventLike {
  readonly data: unknown;
}

export interface WebSocketLike {
  readonly readyState: number;
  /** The subprotocol the server selected ("" or absent: none, version 1). */
  readonly protocol?: string;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: Handler<unknown> | null;
  onmessage: Handler<MessageEventLike> | null;
  onclose: Handler<CloseEventLike> | null;
  onerror: Handler<unknown> | null;
}

export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

/** WebSocket.OPEN. */
export const OPEN = 1;

/** Close codes the server uses (DESIGN.md §3). */
export const CloseCode = {
  NORMAL: 1000,
  POLICY: 1008,
  TOO_BIG: 1009,
  INTERNAL: 1011,
  SERVICE_RESTART: 1012,
  TRY_AGAIN_LATER: 1013,
  TOKEN_EXPIRED: 4001,
  SLOW_CONSUMER: 4008,
  RATE_LIMITED: 4029,
} as const;

/** Close code the client uses when it abandons a silent socket (no reply to a ping). */
export const CLIENT_ABANDON = 4000;

export const DEBUG_NAMESPACE = "websocket:client";
