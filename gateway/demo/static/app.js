// The flowwire demo dashboard: the project's own client (flowwire-client.js, built from
// web/) subscribed to every demo workflow; it reconnects by itself and resumes with
// `since`, so the feed has every event once, in order, across disconnections.
import { getWebSocketClient } from "/static/flowwire-client.js";

const token = new URLSearchParams(location.search).get("token") || "";
const scheme = location.protocol === "https:" ? "wss" : "ws";
const FEED_LIMIT = 300;
const EXEC_LIMIT = 50;

// Keep a handle on the sockets, so that a test (or you, from the console) can cut the
// connection: window.flowwireDemo.dropConnection().
const sockets = [];
class TrackedWebSocket extends WebSocket {
  constructor(url) { super(url); sockets.push(this); }
}

const client = getWebSocketClient({
  url: `${scheme}://${location.host}/ws`,
  getToken: () => token,
  WebSocketImpl: TrackedWebSocket,
  backoff: { initialDelayMs: 1000, maxDelayMs: 10000 },
});

const executions = new Map(); // execution_id -> {workflow, status, inferred, steps: Map, approval, updated}
const feedIds = [];
let workflows = [];

const $ = (id) => document.getElementById(id);
const esc = (s) => String(s ?? "").replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);

function record(message) {
  const d = message.data;
  let e = executions.get(d.execution_id);
  if (!e) {
    // First seen mid-execution (a step or approval event): its status is inferred until
    // an execution event says it.
    e = { workflow: d.workflow_id, status: "running", inferred: true, steps: new Map(), approval: null, updated: "" };
    executions.set(d.execution_id, e);
    if (executions.size > EXEC_LIMIT) executions.delete(executions.keys().next().value);
  }
  const kind = message.type.split(".")[0];
  if (kind === "execution") {
    e.status = d.status;
    e.inferred = false;
  } else if (e.inferred) {
    e.status = message.type === "approval.required" ? "waiting" : "running";
  }
  if (kind === "step") e.steps.set(d.step_id, d.status);
  else if (kind === "approval") e.approval = d.status;
  if (d.workflow_id) e.workflow = d.workflow_id;
  e.updated = message.timestamp;
  feedIds.push(message.id);
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
  $("feed-count").textContent = String(feedIds.length);
}

let pending = false;
function scheduleRender() {
  if (pending) return;
  pending = true;
  requestAnimationFrame(() => { pending = false; render(); });
}

function render() {
  const names = Object.fromEntries(workflows.map((w) => [w.id, w]));
  const rows = [...executions.entries()].reverse().map(([id, e]) => {
    const wf = names[e.workflow];
    const stepIds = wf ? wf.steps : [...e.steps.keys()];
    const steps = stepIds.map((s) => `<span class="step s-${esc(e.steps.get(s) || "pending")}" title="${esc(s)}: ${esc(e.steps.get(s) || "pending")}"></span>`).join("");
    const approval = e.approval ? `<span class="status s-${esc(e.approval)}">${esc(e.approval)}</span>` : `<span class="muted">—</span>`;
    return `<tr data-execution="${esc(id)}" data-status="${esc(e.status)}"><td><code>${esc(id)}</code></td>
      <td>${esc(wf ? wf.name : e.workflow)}</td><td><span class="status s-${esc(e.status)}">${esc(e.status)}</span></td>
      <td><div class="steps">${steps}</div></td><td>${approval}</td><td class="muted">${esc(e.updated.slice(11, 19))}</td></tr>`;
  });
  $("executions").innerHTML = rows.join("");
  $("exec-count").textContent = String(executions.size);
}

function showState() {
  const state = client.getState();
  const el = $("conn");
  el.className = `conn conn-${state}`;
  el.dataset.state = state;
  el.textContent = { connected: "● live", connecting: "connecting…", reconnecting: "reconnecting…", disconnected: "disconnected" }[state] || state;
}

client.onStatusChange(showState);
client.on("*", (message) => { if (message.id && message.data) record(message); });
client.on("resync", () => {
  // The stream no longer holds our cursor: what we show may be stale. Start over.
  executions.clear();
  const n = $("notice");
  n.hidden = false;
  n.textContent = "Missed events were trimmed from the stream: state reloaded from now on.";
  scheduleRender();
});

window.flowwireDemo = {
  feedIds,
  client,
  record,
  dropConnection() { const ws = sockets[sockets.length - 1]; if (ws) ws.close(4000, "dropped by test"); },
};

const config = await (await fetch("/demo/config")).json();
workflows = config.workflows;
for (const wf of workflows) client.subscribe(`workflows:${wf.id}`);
client.connect();
showState();
