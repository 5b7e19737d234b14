import { act } from "@testing-library/react";
import { FakeWebSocket } from "./fakeWebSocket.js";

/** The socket the hooks opened, with the handshake done. */
export function openSocket(): FakeWebSocket {
  const socket = FakeWebSocket.latest;
  act(() => socket.open());
  return socket;
}

/** A frame from the server, inside act(). */
export function push(socket: FakeWebSocket, frame: unknown): void {
  act(() => socket.receive(frame));
}
