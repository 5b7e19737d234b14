// A page for tests/web/test_presence_hook.py: the React hook usePresence in Chromium,
// against a real gateway. esbuild bundles it (with React) into one module; the page's
// query gives the token (?token=) and the channel it subscribes to and watches (?channel=).
// It renders one list per scope (the organization and the channel) and exposes, on
// window.__hook, a way to drop the socket and which socket answered the last presence.state.
import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { usePresence } from "../../src/hooks/usePresence.js";
import { WebSocketProvider } from "../../src/hooks/useWebSocket.js";
import { WebSocketClient } from "../../src/lib/websocket.js";

const q = new URLSearchParams(location.search);
const channel = q.get("channel") ?? "executions:e1";

let serials = 0;
let stateSocket = 0; // the serial of the socket that sent the organization's last presence.state
class TrackedWebSocket extends WebSocket {
  readonly serial: number;
  constructor(url: string | URL, protocols?: string | string[]) {
    super(url, protocols);
    const serial = (serials += 1);
    this.serial = serial;
    this.addEventListener("message", (event: MessageEvent) => {
      if (typeof event.data !== "string") return;
      const doc = JSON.parse(event.data) as { type?: string; data?: { channel?: string } };
      if (doc.type === "presence.state" && doc.data?.channel === undefined) stateSocket = serial;
    });
  }
}

const client = new WebSocketClient({
  url: `ws://${location.host}/ws`,
  getToken: () => q.get("token") ?? "",
  WebSocketImpl: TrackedWebSocket,
  backoff: { initialDelayMs: 1000, maxDelayMs: 2000 },
  pingIntervalMs: 0,
});
client.subscribe(channel);

function Members({ scope }: { scope: string | null }) {
  const { members, count, ready } = usePresence(scope);
  return (
    <ul data-scope={scope ?? "org"} data-ready={String(ready)} data-count={count}>
      {members.map((m) => (
        <li key={m.user_id} data-user={m.user_id} data-connections={m.connections}>
          {m.user_id} × {m.connections}
        </li>
      ))}
    </ul>
  );
}

declare global {
  interface Window {
    __hook: { drop: () => void; stateSocket: () => number; current: () => number | null; state: () => string };
  }
}
window.__hook = {
  drop: () => client.socket?.close(4000, "dropped by the test"),
  stateSocket: () => stateSocket,
  current: () => (client.socket as TrackedWebSocket | null)?.serial ?? null,
  state: () => client.state,
};

const root = document.getElementById("root");
if (root === null) throw new Error("no #root");
createRoot(root).render(
  <StrictMode>
    <WebSocketProvider client={client}>
      <Members scope={null} />
      <Members scope={channel} />
    </WebSocketProvider>
  </StrictMode>,
);
