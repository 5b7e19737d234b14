/**
 * Handlers by message type, and status listeners. A handler that throws is logged and
 * the others still run.
 */
import { DEBUG_NAMESPACE } from "./socket.js";
import type { ClientEventHandler, ClientEventMap, ClientEventType } from "./types.js";

type AnyHandler = (message: never) => void;

export class Dispatcher {
  private readonly handlers = new Map<string, Set<AnyHandler>>();
  private readonly statusListeners = new Set<() => void>();

  on<T extends ClientEventType>(type: T, handler: ClientEventHandler<T>): () => void {
    let set = this.handlers.get(type);
    if (set === undefined) {
      set = new Set();
      this.handlers.set(type, set);
    }
    set.add(handler as AnyHandler);
    return () => this.off(type, handler);
  }

  off<T extends ClientEventType>(type: T, handler: ClientEventHandler<T>): void {
    const set = this.handlers.get(type);
    if (set === undefined) return;
    set.delete(handler as AnyHandler);
    if (set.size === 0) this.handlers.delete(type);
  }

  /** Call the handlers of `type`, and those of "*" when the message came from the server. */
  emit(type: string, message: ClientEventMap[ClientEventType], fromServer: boolean): void {
    const targets = [...(this.handlers.get(type) ?? []), ...(fromServer ? (this.handlers.get("*") ?? []) : [])];
    for (const handler of targets) {
      try {
        (handler as (message: unknown) => void)(message);
      } catch (err) {
        // One failing handler must not starve the others.
        console.error(`[${DEBUG_NAMESPACE}] handler for ${type} threw`, err);
      }
    }
  }

  onStatusChange(listener: () => void): () => void {
    this.statusListeners.add(listener);
    return () => {
      this.statusListeners.delete(listener);
    };
  }

  notifyStatus(): void {
    for (const listener of [...this.statusListeners]) {
      try {
        listener();
      } catch (err) {
        console.error(`[${DEBUG_NAMESPACE}] status listener threw`, err);
      }
    }
  }
}
