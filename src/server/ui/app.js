// tally console: the page's script (docs/console.md). It reads this node's
// /ui/api/* endpoints only, polls the view on screen, and never writes.
// With auth = required on the node, an API call answered 401 shows the
// page's own login form; the credentials are kept for this tab only
// (sessionStorage) and sent as HTTP Basic with every call.
"use strict";

const POLL_MS = { cluster: 1000, topics: 2000, groups: 2000 };
const KEY_SCAN_PAGES = 50;      // a key search reads at most this many pages
const PAGE_RECORDS = 50;        // records per page when browsing

let view = null;
let timer = null;
let lastLeader = null;
let selectedTopic = null;
let browse = { from: 0, first: null, last: null };

function $(id) { return document.getElementById(id); }

function showError(msg) {
  const e = $("error");
  if (msg) { e.textContent = msg; e.hidden = false; } else { e.hidden = true; }
}

// ---- login ----------------------------------------------------------------------

const AUTH_KEY = "tally-console-auth";   // sessionStorage: "Basic ..." or absent
let needLogin = false;                   // the last call was answered 401

class LoginNeeded extends Error {}

function authHeader() { return sessionStorage.getItem(AUTH_KEY); }

function showLogin(msg) {
  needLogin = true;
  clearInterval(timer);                  // no polling into 401s until logged in
  $("login-msg").textContent = msg;
  $("login").hidden = false;
  $("logout").hidden = true;
  for (const k of Object.keys(loaders)) $("view-" + k).hidden = true;
  showError(null);
  $("login-user").focus();
}

function login(ev) {
  ev.preventDefault();
  const pair = $("login-user").value + ":" + $("login-password").value;
  // btoa takes Latin-1: encode the UTF-8 bytes of the pair first.
  const bytes = new TextEncoder().encode(pair);
  sessionStorage.setItem(AUTH_KEY, "Basic " + btoa(String.fromCharCode(...bytes)));
  $("login-password").value = "";
  $("login").hidden = true;
  needLogin = false;
  loadNode();
  route();
}

function logout() {
  sessionStorage.removeItem(AUTH_KEY);
  showLogin("Logged out.");
}

async function api(path) {
  // X-Requested-With: the node then answers 401 with a challenge the
  // browser does not act on (no dialog of its own over the page);
  // credentials "omit": nor does it send or ask for any it remembers.
  const headers = { "X-Requested-With": "tally-console" };
  const auth = authHeader();
  if (auth) headers.Authorization = auth;
  const r = await fetch("/ui/api/" + path, { cache: "no-store", credentials: "omit", headers });
  const body = await r.json();
  if (r.status === 401) {
    if (auth) sessionStorage.removeItem(AUTH_KEY);
    throw new LoginNeeded(auth ? "Wrong user name or password." : "This node asks for a login.");
  }
  if (!r.ok) throw new Error(body.error || (r.status + " " + r.statusText));
  if (auth) $("logout").hidden = false;
  return body;
}

function cell(tr, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  tr.appendChild(td);
  return td;
}

function fmtBytes(n) {
  const u = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n : n.toFixed(1)) + " " + u[i];
}

// ---- Cluster ----------------------------------------------------------------

async function loadCluster() {
  const c = await api("cluster");
  $("leader-id").textContent = c.leader_id ? "node " + c.leader_id : "none";
  $("term").textContent = c.term;
  $("commit-index").textContent = c.commit_index;
  $("reachable-count").textContent =
    c.members.filter(m => m.reachable).length + " / " + c.members.length;
  const tb = $("members").tBodies[0];
  tb.replaceChildren();
  for (const m of c.members) {
    const tr = document.createElement("tr");
    tr.dataset.id = m.id;
    cell(tr, m.id + (m.self ? " (this node)" : ""));
    cell(tr, m.client);
    cell(tr, m.raft);
    const role = m.spare ? "spare" : !m.voter ? "standby (" + m.role + ")" : m.role;
    cell(tr, role, "role role-" + m.role);
    cell(tr, m.asked ? m.term : "-");
    cell(tr, m.asked ? m.applied_index : "-", "num applied");
    cell(tr, m.asked ? m.commit_index : "-", "num");
    cell(tr, m.asked ? m.lag : "-", "num lag");
    cell(tr, !m.asked ? "asking" : m.reachable ? "yes" : "no", m.reachable ? "reachable" : "unreachable");
    cell(tr, m.asked ? (m.answered_ms_ago / 1000).toFixed(1) + " s ago" : "-", "num");
    tb.appendChild(tr);
  }
  if (c.leader_id && c.leader_id !== lastLeader) {
    const li = document.createElement("li");
    li.textContent = new Date().toLocaleTimeString() + ": leader is node " + c.leader_id +
      " (term " + c.term + ")" + (lastLeader ? ", was node " + lastLeader : "");
    $("leader-changes").prepend(li);
    lastLeader = c.leader_id;
  }
}

// ---- Topics -------------------------------------------------------------------

// Rates from cumulative samples: (v[i] - v[i-1]) / dt, null where unknown.
function rates(ago, values) {
  const out = [];
  for (let i = 1; i < values.length; i++) {
    const a = values[i - 1], b = values[i];
    const dt = (ago[i - 1] - ago[i]) / 1000;
    out.push(a === null || b === null || dt <= 0 || b < a ? null : (b - a) / dt);
  }
  return out;
}

function drawChart(svg, maxLabel, values) {
  const w = 600, h = 160, n = 300;
  const known = values.filter(v => v !== null);
  const max = Math.max(1, ...known);
  maxLabel.textContent = " (peak " + max.toFixed(1) + "/s, latest " +
    (known.length ? known[known.length - 1].toFixed(1) : "-") + "/s)";
  svg.replaceChildren();
  let pts = [];
  const flush = () => {
    if (pts.length > 1) {
      const pl = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
      pl.setAttribute("points", pts.join(" "));
      svg.appendChild(pl);
    }
    pts = [];
  };
  values.forEach((v, i) => {
    if (v === null) { flush(); return; }
    const x = w - (values.length - 1 - i) * (w / (n - 1));
    pts.push(x.toFixed(1) + "," + (h - 4 - (v / max) * (h - 8)).toFixed(1));
  });
  flush();
}

async function loadTopics() {
  const t = await api("topics");
  const names = t.topics.map(x => x.name);
  if (selectedTopic === null || !names.includes(selectedTopic)) selectedTopic = names[0] || null;
  const rt = await api("rates" + (selectedTopic ? "?topic=" + encodeURIComponent(selectedTopic) : ""));
  const tb = $("topics").tBodies[0];
  tb.replaceChildren();
  for (const x of t.topics) {
    const tr = document.createElement("tr");
    tr.dataset.topic = x.name;
    tr.className = "clickable" + (x.name === selectedTopic ? " selected" : "");
    tr.onclick = () => { selectedTopic = x.name; refresh(); };
    cell(tr, x.name);
    cell(tr, x.policy, "policy");
    cell(tr, fmtBytes(x.size_bytes), "num size").title = x.size_bytes + " bytes";
    cell(tr, x.segments, "num segments");
    cell(tr, x.start_offset, "num start");
    cell(tr, x.next_offset, "num next");
    cell(tr, x.keys, "num");
    cell(tr, x.produce_per_sec === null ? "-" : x.produce_per_sec.toFixed(1), "num rate");
    cell(tr, x.fetch_per_sec === null ? "-" : x.fetch_per_sec.toFixed(1), "num fetch-rate");
    tb.appendChild(tr);
  }
  $("chart-topic").textContent = $("chart-topic2").textContent = selectedTopic || "-";
  drawChart($("chart-produce"), $("chart-produce-max"),
    selectedTopic && rt.next_offset ? rates(rt.ago_ms, rt.next_offset) : []);
  drawChart($("chart-consume"), $("chart-consume-max"),
    selectedTopic && rt.fetched_records ? rates(rt.ago_ms, rt.fetched_records) : []);
}

// ---- Records ------------------------------------------------------------------

function b64bytes(s) {
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

function showBytes(b64, len, format) {
  if (b64 === null) return "(tombstone)";
  const bytes = b64bytes(b64);
  const more = len > bytes.length ? " ... (" + len + " bytes)" : "";
  if (format === "hex") {
    return Array.from(bytes, x => x.toString(16).padStart(2, "0")).join(" ") + more;
  }
  const text = new TextDecoder("utf-8").decode(bytes);
  if (format === "json") {
    try { return JSON.stringify(JSON.parse(text), null, 2) + more; }
    catch (e) { return "(not JSON) " + text + more; }
  }
  return text + more;
}

async function fillTopicSelect() {
  const sel = $("rec-topic");
  const t = await api("topics");
  const keep = sel.value;
  sel.replaceChildren();
  for (const x of t.topics) {
    const o = document.createElement("option");
    o.value = o.textContent = x.name;
    sel.appendChild(o);
  }
  if (keep && t.topics.some(x => x.name === keep)) sel.value = keep;
  else if (selectedTopic && t.topics.some(x => x.name === selectedTopic)) sel.value = selectedTopic;
}

function renderRecords(recs, withVersion) {
  const fmt = $("rec-format").value;
  const tb = $("records").tBodies[0];
  tb.replaceChildren();
  $("rec-version-h").hidden = !withVersion;
  for (const r of recs) {
    const tr = document.createElement("tr");
    tr.dataset.offset = r.offset;
    cell(tr, r.offset, "num offset");
    cell(tr, new Date(r.timestamp).toISOString());
    cell(tr, r.key === null ? "(none)" : showBytes(r.key, r.key_len, "text"), "key");
    if (withVersion) cell(tr, r.version, "num version");
    cell(tr, showBytes(r.value, r.value_len, fmt), "value");
    tb.appendChild(tr);
  }
}

let lastRecords = [];
let lastWithVersion = false;

// Browse: one page from an offset or a time.
async function browseFrom(params) {
  const topic = $("rec-topic").value;
  if (!topic) { $("rec-status").textContent = "no topics yet"; return; }
  const r = await api("records?topic=" + encodeURIComponent(topic) + "&limit=" + PAGE_RECORDS + params);
  browse.first = r.records.length ? r.records[0].offset : r.from;
  browse.last = r.resume;
  let recs = r.records;
  if ($("rec-dir").value === "backward") recs = recs.slice().reverse();
  lastRecords = recs; lastWithVersion = false;
  renderRecords(recs, false);
  $("rec-status").textContent = topic + " on this node: start offset " + r.start_offset +
    ", next offset " + r.next_offset + "; showing " + r.records.length + " record(s) from offset " + r.from +
    (r.missing ? "; offsets " + r.missing[0] + ".." + (r.missing[1] - 1) + " are not on this node yet" : "");
}

// Key search: the records of one key, read from the topic's start in pages
// (a scan filtered by key on the node: the per-key stream index will
// replace it), shown with their version (1 = the key's first record here).
async function searchKey() {
  const topic = $("rec-topic").value;
  const key = $("rec-key").value;
  let from = null, found = [], pages = 0, r = null;
  do {
    r = await api("records?topic=" + encodeURIComponent(topic) + "&key=" + encodeURIComponent(key) +
      "&limit=500" + (from === null ? "" : "&from=" + from));
    found = found.concat(r.records);
    from = r.resume;
    pages++;
  } while (!r.end && pages < KEY_SCAN_PAGES);
  found.forEach((x, i) => { x.version = i + 1; });
  let recs = found;
  if ($("rec-dir").value === "backward") recs = found.slice().reverse();
  lastRecords = recs; lastWithVersion = true;
  renderRecords(recs, true);
  $("rec-status").textContent = "key " + JSON.stringify(key) + " in " + topic + ": " + found.length +
    " event(s), " + $("rec-dir").value + (r.end ? "" : " (stopped after " + pages +
    " pages at offset " + from + ")");
}

async function loadRecords(trigger) {
  await fillTopicSelect();
  if (trigger === "poll") return;      // records are read on request only
  if ($("rec-key").value !== "") return searchKey();
  if (trigger === "older") {
    return browseFrom("&from=" + Math.max(0, (browse.first || 0) - PAGE_RECORDS));
  }
  if (trigger === "newer") return browseFrom("&from=" + (browse.last || 0));
  const t = $("rec-time").value;
  if (t !== "") return browseFrom("&time=" + Math.max(0, new Date(t).getTime()));
  const f = $("rec-from").value;
  return browseFrom(f === "" ? "" : "&from=" + Math.max(0, Math.floor(Number(f))));
}

// ---- Groups -------------------------------------------------------------------

async function loadGroups() {
  const g = await api("groups");
  const tb = $("groups").tBodies[0];
  tb.replaceChildren();
  for (const x of g.groups) {
    const tr = document.createElement("tr");
    tr.dataset.group = x.group;
    tr.dataset.topic = x.topic;
    cell(tr, x.group);
    cell(tr, x.kind);
    cell(tr, x.topic);
    cell(tr, x.offset, "num offset");
    cell(tr, x.topic_next_offset === null ? "(topic deleted)" : x.topic_next_offset, "num");
    cell(tr, x.lag === null ? "-" : x.lag, "num lag");
    tb.appendChild(tr);
  }
}

// ---- routing and polling -------------------------------------------------------

const loaders = { cluster: loadCluster, topics: loadTopics, records: loadRecords, groups: loadGroups };

async function refresh(trigger) {
  try {
    await loaders[view](trigger);
    showError(null);
    document.body.dataset.loaded = view;    // tests wait for this
  } catch (e) {
    if (e instanceof LoginNeeded) showLogin(e.message);
    else showError("Could not read " + view + ": " + e.message);
  }
}

async function loadNode() {
  if (needLogin) return;
  try {
    const n = await api("node");
    $("node-info").textContent = "node " + n.id + " (" + n.role + ", " + n.client + "), tallyd " +
      n.version + (n.healthy ? "" : ": " + n.health);
  } catch (e) {
    $("node-info").textContent = e instanceof LoginNeeded ? "" : "node: " + e.message;
  }
}

function route() {
  if (needLogin) return;                 // the form is up; logging in routes
  const want = (location.hash || "#cluster").slice(1);
  view = loaders[want] ? want : "cluster";
  for (const k of Object.keys(loaders)) {
    $("view-" + k).hidden = k !== view;
    $("nav-" + k).classList.toggle("active", k === view);
  }
  delete document.body.dataset.loaded;
  clearInterval(timer);
  refresh(view === "records" ? "open" : undefined);
  if (POLL_MS[view]) timer = setInterval(() => refresh("poll"), POLL_MS[view]);
}

$("rec-form").addEventListener("submit", ev => { ev.preventDefault(); refresh("read"); });
$("rec-older").addEventListener("click", () => refresh("older"));
$("rec-newer").addEventListener("click", () => refresh("newer"));
$("rec-format").addEventListener("change", () => renderRecords(lastRecords, lastWithVersion));
$("login").addEventListener("submit", login);
$("logout").addEventListener("click", logout);
window.addEventListener("hashchange", route);
loadNode();
setInterval(loadNode, 5000);
route();
