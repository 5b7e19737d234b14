/**
 * Where the client connects: options.url, else VITE_WS_URL (import.meta.env), else the
 * page's own host: ws(s)://location.host/ws. A URL without a path (the original's
 * `VITE_WS_URL=ws://localhost:8080`) gets "/ws"; http(s):// is turned into ws(s)://.
 */

/** A setting that retrying cannot fix (no URL, bad URL, no WebSocket class). */
export class ConfigurationError extends Error {
  override name = "ConfigurationError";
}

/**
 * VITE_WS_URL from import.meta.env when the bundler provides it (Vite replaces this
 * expression at build time; keep it literally `import.meta.env`). Elsewhere, e.g. the
 * plain browser bundle, import.meta.env is undefined.
 */
export function readEnvUrl(): string | undefined {
  let value: unknown;
  try {
    value = import.meta.env?.VITE_WS_URL;
  } catch {
    return undefined;
  }
  return typeof value === "string" && value.trim() !== "" ? value.trim() : undefined;
}

interface LocationLike {
  protocol: string;
  host: string;
}

function pageLocation(): LocationLike | undefined {
  const location = (globalThis as { location?: LocationLike }).location;
  return location !== undefined && typeof location.host === "string" && location.host !== ""
    ? location
    : undefined;
}

/** Resolve the socket URL (without token). Throws when there is nothing to go on. */
export function resolveSocketUrl(explicit: string | undefined, envUrl: string | undefined = readEnvUrl()): string {
  const location = pageLocation();
  const configured = explicit ?? envUrl;
  if (configured === undefined || configured === "") {
    if (location === undefined) {
      throw new ConfigurationError(
        "flowwire: no WebSocket URL: pass options.url, set VITE_WS_URL, or run in a page",
      );
    }
    return `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/ws`;
  }
  let url: URL;
  try {
    const base = location !== undefined ? `${location.protocol}//${location.host}/` : undefined;
    url = new URL(configured, base);
  } catch {
    throw new ConfigurationError(`flowwire: invalid WebSocket URL ${JSON.stringify(configured)}`);
  }
  if (url.protocol === "http:") url.protocol = "ws:";
  else if (url.protocol === "https:") url.protocol = "wss:";
  if (url.protocol !== "ws:" && url.protocol !== "wss:") {
    throw new ConfigurationError(`flowwire: WebSocket URL must be ws:// or wss://, got ${JSON.stringify(configured)}`);
  }
  if (url.pathname === "" || url.pathname === "/") url.pathname = "/ws";
  return url.toString();
}

/** Add ?token= (replacing any token already there). Empty/absent token: URL unchanged. */
export function withToken(url: string, token: string | null | undefined): string {
  if (token === null || token === undefined || token === "") return url;
  const parsed = new URL(url);
  parsed.searchParams.set("token", token);
  return parsed.toString();
}

/** The URL with its token hidden, for logs. */
export function redactToken(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.searchParams.has("token")) parsed.searchParams.set("token", "***");
    return parsed.toString();
  } catch {
    return "<invalid url>";
  }
}
