// Type-level test (checked by `npm run typecheck`): the browser WebSocket and the `ws`
// package both fit the client's WebSocketImpl option without a cast.
import WS from "ws";
import type { WebSocketConstructor } from "../../src/lib/websocket.js";
const a: WebSocketConstructor = WebSocket;
const b: WebSocketConstructor = WS;
void a; void b;
