// The flowwire demo dashboard: the project's own client (flowwire-client.js, built from
// web/) subscribed to every demo workflow. It shows what flowwire promises:
// - delivery: the cursor, the events received, gaps (checked against a replay of the
//   stream) and duplicates (checked on the raw frames, before the client's own
//   de-duplication); "Drop the connection" cuts the socket: the client reconnects and
//   resumes with `since`, and the counters show nothing was lost or repeated;
// - latency: append time (the id's milliseconds) to reception, per event, and the
//   gateway's deliveries per second from /metrics;
// - history: an execution first seen mid-way (the page opened while it ran) gets its
//   earlier events from a `since` replay of its own channel;
// - presence: the "Watching" panel lists the organization's connected users (kept
//   current by client.watchPresence, asked again after every reconnect) and how many
//   users watch each workflow channel. A second user's URL is printed by `flowwire demo`.
import { getWebSocketClient } from "/static/flowwire-client.js";

const token = new URLSearchParams(location.search).get("token") || "";
const scheme = location.protocol === "https:" ? "wss" : "ws";
const WS_URL = `${scheme}://${location.host}/ws`;
const FEED_LIMIT = 300;
const EXEC_LIMIT = 50;
const IDS_LIMIT = 100_000;
const LATENCY_POINTS = 120;
const AUDIT_EVERY_MS = 8000;

// ------------------------------------------------------------------ ids

const idParts = (id) => id.split("-").map(Number);
function cmpId(a, b) {
  const [am, as] = idParts(a);
  const [bm, bs] = idParts(b);
  return am - bm || as - bs;
}
const isId = (v) => typeof v === "string" && /^\d+-\d+$/.test(v);

// ------------------------------------------------------------------ the connection

// The page keeps a handle on its sockets (to drop one) and reads every raw frame before
// the client does: a repeated or out-of-order event id counts as a duplicate here, even
// though the client would drop it before the handlers.
const sockets = [];
let rawLast = null;
let duplicates = 0;
let socketSerial = 0;
let presenceSocket = 0; // the serial of the socket that sent the organization's last presence.state
class TrackedWebSocket extends WebSocket {
  constructor(url) {
    super(url);
    const serial = (socketSerial += 1);
    this.serial = serial;
    sockets.push(this);
    if (sockets.length > 10) sockets.shift();
    this.addEventListener("message", (event) => {
      let doc;
      try { doc = JSON.parse(event.data); } catch { return; }
      if (doc.type === "presence.state" && !doc.data?.channel) presenceSocket = serial;
      if (!isId(doc.id)) return;
      if (rawLast !== null && cmpId(doc.id, rawLast) <= 0) duplicates += 1;
      else rawLast = doc.id;
      scheduleRender();
    });
  }
}

const client = getWebSocketClient({
  url: WS_URL,
  getToken: () => token,
  WebSocketImpl: TrackedWebSocket,
  backoff: { initialDelayMs: 1000, maxDelayMs: 10000 },
});

// ------------------------------------------------------------------ state

const executions = new Map(); // execution_id -> see newExecution()
const feedIds = []; // every event id received, in order (for tests and the gap check)
let received = 0;
let reconnects = 0;
let wasConnected = false;
let lastResume = null; // { since, recovered, channels }
let workflows = [];
const latencies = []; // ms, the last LATENCY_POINTS events
let deliveriesPerSecond = null;
let gaps = 0;
let audited = null; // the gap check covers the stream up to this id
let auditNote = "";
let auditRunning = null;

const $ = (id) => document.getElementById(id);
const esc = (s) => String(s ?? "").replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);

function newExecution(d, message) {
  return {
    workflow: d.workflow_id,
    status: "running",
    inferred: true,
    steps: new Map(),
    approval: null,
    updated: "",
    firstId: message.id,
    firstType: message.type,
    events: [], // what this page received live
    history: [], // what came before it, from a replay
    historyState: message.type === "execution.created" ? "none" : "loading",
  };
}

/** Fold one event into an execution's state. */
function apply(e, message) {
  const d = message.data;
  const kind = message.type.split(".")[0];
  if (kind === "execution") {
    e.status = d.status;
    e.inferred = false;
  } else if (e.inferred) {
    // Only step or approval events so far: the status is inferred until an execution event says it.
    e.status = message.type === "approval.required" ? "waiting" : "running";
  }
  if (kind === "step") e.steps.set(d.step_id, d.status);
  else if (kind === "approval") e.approval = d.status;
  if (d.workflow_id) e.workflow = d.workflow_id;
  e.updated = message.timestamp;
}

function rebuild(e) {
  Object.assign(e, { status: "running", inferred: true, steps: new Map(), approval: null });
  for (const message of [...e.history, ...e.events]) apply(e, message);
}

function record(message) {
  const d = message.data;
  let e = executions.get(d.execution_id);
  if (!e) {
    e = newExecution(d, message);
    executions.set(d.execution_id, e);
    if (executions.size > EXEC_LIMIT) executions.delete(executions.keys().next().value);
    if (e.historyState === "loading") queueHistory(d.execution_id);
  }
  e.events.push(message);
  apply(e, message);
  received += 1;
  feedIds.push(message.id);
  if (feedIds.length > IDS_LIMIT) feedIds.splice(0, feedIds.length - IDS_LIMIT);
  if (audited === null) audited = message.id; // the gap check starts at the first event
  const [ms] = idParts(message.id);
  latencies.push(Math.max(0, Date.now() - ms));
  if (latencies.length > LATENCY_POINTS) latencies.shift();
  addFeed(message);
  scheduleRender();
}

function addFeed(message) {
  const li = document.createElement("li");
  li.dataset.id = message.id;
  const d = message.data;
  const detail = d.step_id ? ` ${esc(d.step_id)}` : d.approval_id ? ` ${esc(d.approval_id)}` : "";
  li.innerHTML = `<span class="type">${esc(message.type)}</span> <code>${esc(d.execution_id)}</code>${detail}
    <span class="status s-${esc(d.status)}">${esc(d.status)}</span><br><span class="id">${esc(message.id)}</span>
    ${d.error_message ? `<span class="muted"> · ${esc(d.error_message)}</span>` : ""}`;
  const feed = $("feed");
  feed.prepend(li);
  while (feed.children.length > FEED_LIMIT) feed.lastElementChild.remove();
}

// ------------------------------------------------------------------ one-off replays

/**
 * Open a separate socket, subscribe to `channel` with `since`, and collect its events
 * until one past `until` arrives (or `stopAt(message)` says so). Resolves
 * { events, complete }: complete is false when the stream no longer held `since`, on
 * an error, or after `timeoutMs`.
 */
function replay(channel, since, { until = null, stopAt = null, timeoutMs = 15000 } = {}) {
  return new Promise((resolve) => {
    const events = [];
    let done = false;
    const ws = new WebSocket(`${WS_URL}?token=${encodeURIComponent(token)}`);
    const finish = (complete) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      try { ws.close(1000, "replay done"); } catch { /* closed */ }
      resolve({ events, complete });
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    ws.onopen = () => {
      ws.send(JSON.stringify({ type: "subscribe", timestamp: new Date().toISOString(), data: { channel, since } }));
    };
    ws.onmessage = (event) => {
      const doc = JSON.parse(event.data);
      if (doc.type === "subscribed" && doc.data?.recovered === false) return finish(false);
      if (doc.type === "error") return finish(false);
      if (!isId(doc.id)) return;
      if (stopAt && stopAt(doc)) return finish(true);
      if (until !== null && cmpId(doc.id, until) > 0) return finish(true);
      events.push(doc);
    };
    ws.onclose = () => finish(false);
  });
}

// History of executions first seen mid-way: their own channel replayed from the start of
// the stream, up to the first event this page received live. Two at a time.
const historyQueue = [];
let historyActive = 0;
function queueHistory(executionId) {
  historyQueue.push(executionId);
  pumpHistory();
}
function pumpHistory() {
  while (historyActive < 2 && historyQueue.length > 0) {
    const id = historyQueue.shift();
    const e = executions.get(id);
    if (!e) continue;
    historyActive += 1;
    replay(`executions:${id}`, "0-0", { stopAt: (doc) => cmpId(doc.id, e.firstId) >= 0, timeoutMs: 5000 }).then(({ events, complete }) => {
      historyActive -= 1;
      e.history = events.filter((doc) => doc.data?.execution_id === id && cmpId(doc.id, e.firstId) < 0);
      e.historyState = complete ? "loaded" : "unavailable";
      rebuild(e);
      scheduleRender();
      pumpHistory();
    });
  }
}

// The gap check: the events of the page's channels in (audited, cursor], replayed from
// the stream on a separate socket, must all be among the ids this page received.
async function audit() {
  if (auditRunning) return auditRunning;
  const upTo = client.lastEventId;
  const from = audited;
  if (from === null || upTo === null || cmpId(upTo, from) <= 0) return null;
  // One socket per channel, each replaying (from, …] until an event past upTo.
  const channels = workflows.map((wf) => `workflows:${wf.id}`);
  auditRunning = Promise.all(channels.map((channel) => replay(channel, from, { until: upTo }))).then((results) => {
    auditRunning = null;
    const complete = results.every((r) => r.complete);
    const events = results.flatMap((r) => r.events);
    if (!complete) {
      auditNote = "Gap check incomplete (the stream was trimmed, or no event came past the cursor yet): retried.";
      scheduleRender();
      return null;
    }
    const got = new Set(feedIds);
    const missing = events.map((doc) => doc.id).filter((id) => !got.has(id));
    gaps += missing.length;
    audited = upTo;
    auditNote = `Gaps checked against a replay of the stream up to ${upTo}` +
      (missing.length ? `: missing ${missing.slice(0, 5).join(", ")}` : ": none missing.");
    $("audit").dataset.checked = upTo;
    scheduleRender();
    return { checked: upTo, missing };
  });
  return auditRunning;
}
setInterval(audit, AUDIT_EVERY_MS);

// ------------------------------------------------------------------ the gateway's rate

let lastScrape = null;
async function scrapeMetrics() {
  try {
    const text = await (await fetch("/metrics", { cache: "no-store" })).text();
    const match = /^flowwire_deliveries_total\s+(\S+)/m.exec(text);
    if (!match) return;
    const sample = { at: performance.now(), value: Number(match[1]) };
    if (lastScrape) deliveriesPerSecond = ((sample.value - lastScrape.value) * 1000) / (sample.at - lastScrape.at);
    lastScrape = sample;
    scheduleRender();
  } catch {
    // the gateway is away: try again at the next tick
  }
}
scrapeMetrics();
setInterval(scrapeMetrics, 2000);

// ------------------------------------------------------------------ presence

/** The user id in the page's token (its payload is not verified here: only to say "you"). */
function tokenUser(jwt) {
  try {
    const payload = JSON.parse(atob(jwt.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
    return String(payload.user_id ?? payload.sub ?? "");
  } catch {
    return "";
  }
}
const me = tokenUser(token);
let orgPresence = null; // the organization's members: { members, count }, or null before the first answer
const channelPresence = new Map(); // workflow channel -> its members' count

function watchPresence() {
  // Presence is ephemeral: the client asks again (watch: true) after every reconnect.
  client.watchPresence(null, (snapshot) => { orgPresence = snapshot; scheduleRender(); });
  for (const wf of workflows) {
    const channel = `workflows:${wf.id}`;
    client.watchPresence(channel, (snapshot) => { channelPresence.set(channel, snapshot.count); scheduleRender(); });
  }
}

function renderPresence() {
  if (!orgPresence) return;
  const { members, count } = orgPresence;
  $("watchers").innerHTML = members.map((m) => {
    const you = m.user_id === me;
    const n = m.connections;
    return `<li data-user="${esc(m.user_id)}" data-connections="${n}"${you ? ' class="you"' : ""}><code>${esc(m.user_id)}</code>` +
      `${you ? " (you)" : ""} <span class="muted">${n} connection${n === 1 ? "" : "s"}</span></li>`;
  }).join("") + (count > members.length ? `<li class="muted">+${count - members.length} more</li>` : "");
  $("watch-count").textContent = `${count} user${count === 1 ? "" : "s"} connected`;
  $("watching").dataset.socket = String(presenceSocket);
  $("channel-watchers").innerHTML = "<li>users per workflow:</li>" + workflows.map((wf) => {
    const n = channelPresence.get(`workflows:${wf.id}`);
    return `<li data-channel="workflows:${esc(wf.id)}" data-count="${n ?? ""}">${esc(wf.name)} <b>${n ?? "—"}</b></li>`;
  }).join("");
}

// ------------------------------------------------------------------ rendering

let pending = false;
function scheduleRender() {
  if (pending) return;
  pending = true;
  requestAnimationFrame(() => { pending = false; render(); });
}

function quantile(sorted, q) {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] : null;
}
const ms = (v) => (v === null ? "—" : v < 10 ? `${v.toFixed(1)} ms` : `${Math.round(v)} ms`);

function render() {
  // Delivery
  $("cursor").textContent = client.lastEventId || "—";
  $("received").textContent = String(received);
  $("gaps").textContent = String(gaps);
  $("gaps").dataset.value = String(gaps);
  $("dups").textContent = String(duplicates);
  $("dups").dataset.value = String(duplicates);
  $("reconnects").textContent = String(reconnects);
  if (lastResume) {
    $("resume").textContent = `Resumed ${lastResume.channels} channel(s) with since ${lastResume.since}: ` +
      (lastResume.recovered ? "recovered, every missed event replayed." : "NOT recovered (the stream was trimmed).");
    $("resume").dataset.since = lastResume.since;
  }
  if (auditNote) $("audit").textContent = auditNote;
  // Latency
  const sorted = [...latencies].sort((a, b) => a - b);
  $("lat-last").textContent = ms(latencies.length ? latencies[latencies.length - 1] : null);
  $("lat-p50").textContent = ms(quantile(sorted, 0.5));
  $("lat-p99").textContent = ms(quantile(sorted, 0.99));
  $("rate").textContent = deliveriesPerSecond === null ? "—" : deliveriesPerSecond.toFixed(1);
  const top = Math.max(10, quantile(sorted, 0.99) ?? 0) * 1.1;
  $("lat-max").textContent = `↑ ${ms(top)}`;
  const start = LATENCY_POINTS - latencies.length;
  $("lat-line").setAttribute("points", latencies.map((v, i) => `${start + i},${(40 - (Math.min(v, top) / top) * 38).toFixed(2)}`).join(" "));
  $("lat-chart").dataset.points = String(latencies.length);
  // Executions
  const names = Object.fromEntries(workflows.map((w) => [w.id, w]));
  const rows = [...executions.entries()].reverse().map(([id, e]) => {
    const wf = names[e.workflow];
    const stepIds = wf ? wf.steps : [...e.steps.keys()];
    const steps = stepIds.map((s) => `<span class="step s-${esc(e.steps.get(s) || "pending")}" title="${esc(s)}: ${esc(e.steps.get(s) || "pending")}"></span>`).join("");
    const approval = e.approval ? `<span class="status s-${esc(e.approval)}">${esc(e.approval)}</span>` : `<span class="muted">—</span>`;
    const history = e.historyState === "loading" ? `<span class="history">loading history…</span>`
      : e.historyState === "loaded" ? `<span class="history">+${e.history.length} earlier events</span>`
      : e.historyState === "unavailable" ? `<span class="history">history unavailable</span>` : "";
    return `<tr data-execution="${esc(id)}" data-status="${esc(e.status)}" data-inferred="${e.inferred}"
      data-first-seen="${e.firstType === "execution.created" ? "start" : "mid"}" data-history="${e.historyState}"
      data-known-first="${esc((e.history[0] || e.events[0]).type)}" data-steps-done="${[...e.steps.values()].filter((s) => s !== "pending" && s !== "running").length}">
      <td data-label="Execution"><code>${esc(id)}</code>${history}</td>
      <td data-label="Workflow">${esc(wf ? wf.name : e.workflow)}</td>
      <td data-label="Status"><span class="status s-${esc(e.status)}">${esc(e.status)}</span></td>
      <td data-label="Steps"><div class="steps">${steps}</div></td>
      <td data-label="Approval">${approval}</td>
      <td data-label="Updated" class="muted">${esc(e.updated.slice(11, 19))}</td></tr>`;
  });
  $("executions").innerHTML = rows.join("");
  $("exec-count").textContent = String(executions.size);
  $("feed-count").textContent = String(received);
  renderPresence();
}

function showState() {
  const state = client.getState();
  const el = $("conn");
  el.className = `conn conn-${state}`;
  el.dataset.state = state;
  el.textContent = { connected: "● live", connecting: "connecting…", reconnecting: "reconnecting…", disconnected: "disconnected" }[state] || state;
  $("drop").disabled = state !== "connected";
  if (state === "connected" && !wasConnected && received > 0) reconnects += 1;
  wasConnected = state === "connected";
  scheduleRender();
}

client.onStatusChange(showState);
client.on("*", (message) => { if (message.id && message.data) record(message); });
client.on("subscribed", (message) => {
  // The server's confirmation of a resumed channel (the client's own signal has no data).
  const data = message.data;
  if (!data || data.recovered === undefined) return;
  const since = client.socket ? lastSince : null;
  if (lastResume && lastResume.socket === client.socket) {
    lastResume.channels += 1;
    lastResume.recovered = lastResume.recovered && data.recovered;
  } else {
    lastResume = { socket: client.socket, since: since ?? "?", recovered: data.recovered, channels: 1 };
  }
  if (lastResume.channels === workflows.length) setTimeout(audit, 1000); // check right after a resume
  scheduleRender();
});
// The `since` the client sends on reconnect is its cursor at that moment.
let lastSince = null;
client.onStatusChange(() => { if (client.getState() === "connected") lastSince = client.resumeCursor; });
client.on("resync", () => {
  // The stream no longer holds our cursor: what we show may be stale. Start over.
  executions.clear();
  const n = $("notice");
  n.hidden = false;
  n.textContent = "Missed events were trimmed from the stream: state reloaded from now on.";
  scheduleRender();
});

function dropConnection() {
  const ws = sockets[sockets.length - 1];
  if (ws && client.socket === ws) ws.close(4000, "dropped from the page");
}
$("drop").addEventListener("click", dropConnection);

window.flowwireDemo = {
  feedIds,
  client,
  record,
  audit,
  dropConnection,
  /** The ids this page knows for an execution: its history, then what it received live. */
  executionIds: (id) => { const e = executions.get(id); return e ? [...e.history, ...e.events].map((m) => m.id) : null; },
  /** The Watching panel's data: the organization's members and each workflow channel's count. */
  presence: () => ({ me, socket: presenceSocket, current: client.socket?.serial ?? null, org: orgPresence, channels: Object.fromEntries(channelPresence) }),
  counters: () => ({ cursor: client.lastEventId, received, gaps, duplicates, reconnects, audited, lastResume: lastResume && { since: lastResume.since, recovered: lastResume.recovered, channels: lastResume.channels } }),
};

const config = await (await fetch("/demo/config")).json();
workflows = config.workflows;
for (const wf of workflows) client.subscribe(`workflows:${wf.id}`);
watchPresence();
client.connect();
showState();
