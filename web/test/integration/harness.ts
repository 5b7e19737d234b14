/** Helpers of the integration tests: waiting on conditions (never on fixed sleeps
 * alone), dropping a connection. */
import type WebSocket from "ws";
import type { WebSocketClient } from "../../src/lib/websocket.js";

export async function waitFor(
  what: string,
  predicate: () => boolean,
  timeoutMs = 15_000,
  state: () => string = () => "",
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} ${state()}`.trim());
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Nothing more arrives for a while (to catch duplicates and strays). */
export async function settle(ms = 750): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms));
}

/** Drop the client's socket (no close handshake, as a network failure would) and wait
 * until the client noticed. */
export async function dropSocket(client: WebSocketClient): Promise<void> {
  const socket = client.socket as unknown as WebSocket;
  const dropped = new Promise<void>((resolve) => {
    const stop = client.onStatusChange(() => {
      if (client.state !== "connected") {
        stop();
        resolve();
      }
    });
  });
  socket.terminate();
  await dropped;
}
