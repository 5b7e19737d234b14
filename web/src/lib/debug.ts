/**
 * Debug logging in the style of the `debug` package: enabled when localStorage.debug
 * holds a pattern matching the namespace, e.g. "websocket:*", "*", or
 * "websocket:client,other:*" ("-websocket:*" excludes). Never logs unless enabled.
 */

export type DebugLogger = (...args: unknown[]) => void;

export function readDebugSetting(): string | null {
  try {
    const storage = (globalThis as { localStorage?: Storage }).localStorage;
    return storage?.getItem("debug") ?? null;
  } catch {
    return null; // storage access can throw (privacy mode, sandboxed iframes)
  }
}

function globToRegExp(glob: string): RegExp {
  const escaped = glob.replace(/[.+?^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*?");
  return new RegExp(`^${escaped}$`);
}

/** True when `setting` (a localStorage.debug value) enables `namespace`. */
export function debugEnabled(namespace: string, setting: string | null): boolean {
  if (setting === null || setting.trim() === "") return false;
  let enabled = false;
  for (const raw of setting.split(/[\s,]+/)) {
    if (raw === "") continue;
    if (raw.startsWith("-")) {
      if (globToRegExp(raw.slice(1)).test(namespace)) return false;
    } else if (globToRegExp(raw).test(namespace)) {
      enabled = true;
    }
  }
  return enabled;
}

export function createDebugLogger(
  namespace: string,
  enabled: () => boolean,
  sink: (...args: unknown[]) => void = (...args) => console.debug(...args),
): DebugLogger {
  return (...args: unknown[]) => {
    if (enabled()) sink(`[${namespace}]`, ...args);
  };
}
