/**
 * Where the client connects: options.url, else VITE_WS_URL (import.meta.env), else the
 * page's own host: ws(s)://location.host/ws. VITE_WS_URL may be a bare host (the
 * original's `127.0.0.1:8080`), a URL with a scheme, or with a path; a URL without a
 * path gets "/ws"; http(s):// is turned into ws(s)://.
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

/** `scheme://` at the start: an absolute URL. */
const ABSOLUTE = /^[a-z][a-z0-9+.-]*:\/\//i;

/**
 * Resolve the socket URL (without token). Throws when there is nothing to go on.
 *
 * `explicit` (options.url) or `envUrl` (VITE_WS_URL) may be:
 * - an absolute URL: `ws://h:8080/ws`, `wss://h/path`, `http(s)://…` (becomes ws(s)://);
 * - a bare host, as the original client expected VITE_WS_URL: `127.0.0.1:8080`,
 *   `gateway.example.com`, `gateway.example.com/realtime/ws` — the scheme is the page's
 *   (`wss:` on an https page, else `ws:`);
 * - a path on the page's host: `/gateway/ws`; or protocol-relative: `//h:8080/ws`.
 * A URL without a path gets `/ws`.
 */
export function resolveSocketUrl(explicit: string | undefined, envUrl: string | undefined = readEnvUrl()): string {
  const location = pageLocation();
  const pageScheme = location?.protocol === "https:" ? "wss:" : "ws:";
  const configured = (explicit ?? envUrl)?.trim();
  if (configured === undefined || configured === "") {
    if (location === undefined) {
      throw new ConfigurationError(
        "flowwire: no WebSocket URL: pass options.url, set VITE_WS_URL, or run in a page",
      );
    }
    return `${pageScheme}//${location.host}/ws`;
  }
  let text = configured;
  if (!ABSOLUTE.test(text) && !text.startsWith("/")) {
    // A bare host[:port][/path], as the original's `VITE_WS_URL=127.0.0.1:8080`.
    text = `${pageScheme}//${text}`;
  } else if (text.startsWith("//")) {
    text = `${pageScheme}${text}`;
  }
  let url: URL;
  try {
    const base = location !== undefined ? `${pageScheme}//${location.host}/` : undefined;
    url = new URL(text, base);
  } catch {
    throw new ConfigurationError(`flowwire: invalid WebSocket URL ${JSON.stringify(configured)}`);
  }
  if (url.protocol === "http:") url.protocol = "ws:";
  else if (url.protocol === "https:") url.protocol = "wss:";
  if (url.protocol !== "ws:" && url.protocol !== "wss:") {
    throw new ConfigurationError(`flowwire: WebSocket URL must be ws:// or wss://, got ${JSON.stringify(configured)}`);
  }
  if (url.hostname === "") {
    throw new ConfigurationError(`flowwire: WebSocket URL has no host: ${JSON.stringify(configured)}`);
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
