// raftkv console: plain DOM, the native /v1 API of the member that served the page.
// Data never goes through innerHTML (keys and values are user data): text nodes only.
"use strict";

const $ = (sel, el = document) => el.querySelector(sel);

function h(tag, attrs = {}, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") el.className = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v);
  }
  for (const kid of kids) el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  return el;
}

// Lease ids are 64-bit: JSON.parse would round them. Keep them as strings.
function parseJSON(text) {
  return JSON.parse(text.replace(/("(?:id|lease|leader|member_id)"\s*:\s*)(\d{16,})/g, '$1"$2"'));
}

async function api(method, path, body, signal) {
  const init = { method, signal };
  if (body !== undefined) {
    init.body = body;
    init.headers = { "Content-Type": "application/octet-stream" };
  }
  const r = await fetch(path, init);
  const text = await r.text();
  let data;
  try { data = parseJSON(text); } catch { data = { raw: text }; }
  if (!r.ok) {
    const err = new Error((data.error && data.error.message) || `${r.status} ${r.statusText}`);
    err.status = r.status;
    throw err;
  }
  return data;
}

const encodeKey = (key) => key.split("/").map(encodeURIComponent).join("/");
const keyPath = (key) => "/v1/kv/" + encodeKey(key);
const fmtBytes = (n) => n >= 1 << 30 ? (n / (1 << 30)).toFixed(1) + " GiB"
  : n >= 1 << 20 ? (n / (1 << 20)).toFixed(1) + " MiB" : (n / 1024).toFixed(0) + " KiB";

function banner(msg) {
  const b = $("#banner");
  b.hidden = !msg;
  b.textContent = msg || "";
}

// --- tabs ------------------------------------------------------------------------------
const onShow = {};
for (const btn of document.querySelectorAll("nav button")) {
  btn.addEventListener("click", () => {
    for (const b of document.querySelectorAll("nav button")) b.classList.toggle("active", b === btn);
    for (const s of document.querySelectorAll("main section")) s.hidden = s.id !== "tab-" + btn.dataset.tab;
    if (onShow[btn.dataset.tab]) onShow[btn.dataset.tab]();
  });
}

// --- cluster ---------------------------------------------------------------------------
async function refreshCluster() {
  let d;
  try {
    d = await api("GET", "/v1/cluster/status");
  } catch (e) {
    banner("This member does not answer: " + e.message);
    return;
  }
  banner("");
  const members = d.members;
  const leader = members.find((m) => m.reachable && m.role === "leader");
  $("#leader-name").textContent = leader ? leader.name : "none";
  $("#term").textContent = leader ? leader.term : Math.max(0, ...members.map((m) => m.term || 0));
  $("#revision").textContent = d.revision;
  const me = members.find((m) => m.client_url && location.origin === m.client_url);
  $("#served-by").textContent = me ? me.name : location.host;
  const leaderCommit = leader ? leader.commit : 0;
  const body = $("#members tbody");
  body.replaceChildren(...members.map((m) => {
    if (!m.reachable) {
      return h("tr", { class: "down", "data-member": m.name },
        h("td", {}, m.name), h("td", {}, m.id.toString(16)), h("td", { class: "bad" }, "unreachable"),
        h("td", {}, "–"), h("td", {}, "–"), h("td", {}, "–"), h("td", {}, "–"),
        h("td", { class: "bad" }, m.error || "down"), h("td", {}, "–"), h("td", {}, m.client_url || ""));
    }
    const role = m.is_learner ? "learner" : m.role;
    return h("tr", { class: m.role === "leader" ? "leader" : "", "data-member": m.name },
      h("td", {}, m.name), h("td", {}, m.id.toString(16)),
      h("td", { class: "role-" + m.role }, role), h("td", {}, m.term), h("td", {}, m.commit),
      h("td", {}, m.applied), h("td", {}, leaderCommit ? Math.max(0, leaderCommit - m.applied) : "–"),
      h("td", { class: m.healthy ? "ok" : "bad" }, m.healthy ? "healthy" : m.health_reason),
      h("td", {}, `${fmtBytes(m.db_size)} / ${fmtBytes(m.quota_bytes)}`),
      h("td", {}, m.client_url || ""));
  }));
}

// --- keys ------------------------------------------------------------------------------
let currentPrefix = "";

async function listKeys(prefix) {
  currentPrefix = prefix;
  $("#prefix").value = prefix;
  const crumbs = $("#crumbs");
  const parts = prefix.split("/").filter(Boolean);
  crumbs.replaceChildren(h("a", { href: "#", onclick: (e) => { e.preventDefault(); listKeys(""); } }, "(root)"),
    ...parts.map((p, i) => {
      const to = parts.slice(0, i + 1).join("/") + "/";
      return h("span", {}, " / ", h("a", { href: "#", onclick: (e) => { e.preventDefault(); listKeys(to); } }, p));
    }));
  const list = $("#keylist");
  let d;
  try {
    d = await api("GET", keyPath(prefix) + "?prefix&keys_only&serializable&limit=5000");
  } catch (e) {
    list.replaceChildren(h("li", { class: "bad" }, e.message));
    return;
  }
  const dirs = new Set();
  const keys = [];
  for (const kv of d.kvs) {
    const rest = kv.key.slice(prefix.length);
    const slash = rest.indexOf("/");
    if (slash >= 0 && slash < rest.length - 1) dirs.add(prefix + rest.slice(0, slash + 1));
    else keys.push(kv.key);
  }
  const items = [...[...dirs].sort().map((dir) => h("li", { class: "dir", onclick: () => listKeys(dir) }, dir.slice(prefix.length))),
    ...keys.map((k) => h("li", { class: "key", "data-key": k, onclick: () => showKey(k) }, k.slice(prefix.length) || k))];
  list.replaceChildren(...(items.length ? items : [h("li", { class: "muted" }, "no keys")]));
  if (d.more) list.append(h("li", { class: "muted" }, "(more keys not shown)"));
}

function render(value, mode) {
  if (mode === "hex") {
    return Array.from(new TextEncoder().encode(value), (b) => b.toString(16).padStart(2, "0")).join(" ");
  }
  if (mode === "json") {
    try { return JSON.stringify(JSON.parse(value), null, 2); } catch { return "(not JSON)\n" + value; }
  }
  return value;
}

async function showKey(key) {
  const view = $("#keyview");
  let kv;
  try {
    kv = await api("GET", keyPath(key));
  } catch (e) {
    view.replaceChildren(h("p", { class: "bad" }, `${key}: ${e.message}`));
    return;
  }
  const pre = h("pre", { id: "value" }, kv.value);
  const mode = h("select", { id: "value-mode", onchange: () => { pre.textContent = render(kv.value, mode.value); } },
    h("option", { value: "text" }, "text"), h("option", { value: "json" }, "JSON"), h("option", { value: "hex" }, "hex"));
  const history = h("ol", { id: "history", class: "muted" });
  view.replaceChildren(
    h("div", { class: "row" }, h("strong", { id: "value-key" }, key), mode,
      h("button", { onclick: () => loadHistory(key, kv, history) }, "History"),
      h("button", { id: "delete-key", onclick: () => deleteKey(key) }, "Delete…")),
    h("div", { class: "muted" },
      `version ${kv.version} · created at ${kv.create_revision} · modified at ${kv.mod_revision}` +
      (kv.lease && kv.lease !== "0" && kv.lease !== 0 ? ` · lease ${kv.lease}` : "")),
    pre, history);
}

async function loadHistory(key, kv, list) {
  list.replaceChildren();
  let rev = kv.mod_revision;
  let version = kv.version;
  list.append(h("li", {}, `rev ${rev}: ${kv.value.slice(0, 200)}`));
  for (let i = 0; i < 20 && version > 1; i++) {
    try {
      const old = await api("GET", keyPath(key) + `?revision=${rev - 1}`);
      rev = old.mod_revision;
      version = old.version;
      list.append(h("li", {}, `rev ${rev}: ${old.value.slice(0, 200)}`));
    } catch (e) {
      list.append(h("li", {}, `(older versions: ${e.message})`));
      return;
    }
  }
}

async function deleteKey(key) {
  if (!confirm(`Delete ${key}?`)) return;
  try {
    await api("DELETE", keyPath(key));
    $("#keyview").replaceChildren(h("p", { class: "muted" }, `${key} deleted.`));
    listKeys(currentPrefix);
  } catch (e) {
    banner(`Delete failed: ${e.message}`);
  }
}

$("#browse").addEventListener("submit", (e) => { e.preventDefault(); listKeys($("#prefix").value); });
$("#putform").addEventListener("submit", async (e) => {
  e.preventDefault();
  const key = $("#put-key").value;
  if (!key || !confirm(`Put ${key}?`)) return;
  try {
    await api("PUT", keyPath(key), $("#put-value").value);
    banner("");
    await listKeys(currentPrefix);
    await showKey(key);
  } catch (err) {
    banner(`Put failed: ${err.message}`);
  }
});
onShow.keys = () => listKeys(currentPrefix);

// --- watch -----------------------------------------------------------------------------
let watching = null;

async function startWatch(prefix) {
  stopWatch();
  const ctl = new AbortController();
  watching = ctl;
  $("#watch-start").disabled = true;
  $("#watch-stop").disabled = false;
  const state = $("#watch-state");
  const events = $("#events");
  try {
    // An empty prefix with ?prefix watches every key.
    const r = await fetch("/v1/watch/" + encodeKey(prefix) + "?prefix", { signal: ctl.signal });
    if (!r.ok) throw new Error(`${r.status} ${(await r.text()).slice(0, 200)}`);
    state.textContent = "watching " + (prefix || "(all keys)");
    const reader = r.body.getReader();
    const dec = new TextDecoder();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += dec.decode(value, { stream: true });
      let nl;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (!line) continue;
        const msg = parseJSON(line);
        for (const ev of msg.events || []) {
          const text = ev.type === "PUT" ? `${msg.revision} PUT ${ev.kv.key} = ${ev.kv.value.slice(0, 200)}`
            : `${msg.revision} DELETE ${ev.kv.key}`;
          events.prepend(h("li", { class: ev.type }, text));
          while (events.children.length > 500) events.lastChild.remove();
        }
      }
    }
    state.textContent = "stream ended";
  } catch (e) {
    state.textContent = e.name === "AbortError" ? "stopped" : "error: " + e.message;
  } finally {
    if (watching === ctl) {
      watching = null;
      $("#watch-start").disabled = false;
      $("#watch-stop").disabled = true;
    }
  }
}

function stopWatch() {
  if (watching) watching.abort();
}

$("#watchform").addEventListener("submit", (e) => {
  e.preventDefault();
  startWatch($("#watch-prefix").value);
});
$("#watch-stop").addEventListener("click", stopWatch);

// --- leases ----------------------------------------------------------------------------
const leaseDeadlines = new Map();

async function refreshLeases() {
  let d;
  try { d = await api("GET", "/v1/leases"); } catch { return; }
  const ids = d.leases.map((l) => l.id).slice(0, 200);
  const infos = await Promise.all(ids.map((id) => api("GET", `/v1/lease/${id}?keys`).catch(() => null)));
  const body = $("#leases tbody");
  const now = Date.now();
  body.replaceChildren(...infos.filter(Boolean).map((l) => {
    leaseDeadlines.set(String(l.id), now + l.ttl * 1000);
    return h("tr", { "data-lease": l.id }, h("td", {}, l.id), h("td", {}, l.granted_ttl + " s"),
      h("td", { class: "ttl", "data-lease": l.id }, l.ttl + " s"), h("td", {}, l.keys.join(", ")));
  }));
  if (!body.children.length) body.append(h("tr", {}, h("td", { colspan: "4", class: "muted" }, "no leases")));
}

function tickLeases() {
  const now = Date.now();
  for (const td of document.querySelectorAll("#leases td.ttl")) {
    const end = leaseDeadlines.get(td.dataset.lease);
    if (end !== undefined) td.textContent = Math.max(0, Math.round((end - now) / 1000)) + " s";
  }
}
onShow.leases = refreshLeases;

// --- metrics ---------------------------------------------------------------------------
const SERIES = [
  ["raftkv_proposals_total", "proposals / s", true],
  ["raftkv_applied_entries_total", "applied entries / s", true],
  ["raftkv_reads_linearizable_total", "linearizable reads / s", true],
  ["raftkv_mvcc_watchers", "watchers", false],
  ["raftkv_mvcc_db_total_size_in_bytes", "db size (MiB)", false, 1 / (1 << 20)],
  ["raftkv_server_term", "term", false],
];
const samples = Object.fromEntries(SERIES.map(([name]) => [name, []]));
let lastScrape = null;

function drawChart(canvas, points) {
  const ctx = canvas.getContext("2d");
  const w = canvas.width, hgt = canvas.height;
  ctx.clearRect(0, 0, w, hgt);
  if (points.length < 2) return;
  const max = Math.max(...points, 1e-9), min = Math.min(...points, 0);
  ctx.strokeStyle = "#2f6fdf";
  ctx.lineWidth = 1.5;
  ctx.beginPath();
  points.forEach((v, i) => {
    const x = (i / (points.length - 1)) * (w - 2) + 1;
    const y = hgt - 2 - ((v - min) / (max - min || 1)) * (hgt - 4);
    if (i) ctx.lineTo(x, y); else ctx.moveTo(x, y);
  });
  ctx.stroke();
}

async function scrapeMetrics() {
  let text;
  try { text = await (await fetch("/metrics")).text(); } catch { return; }
  const now = Date.now() / 1000;
  const values = {};
  for (const line of text.split("\n")) {
    const m = /^([a-z_]+)(?:\{[^}]*\})?\s+([-0-9.e+]+)$/.exec(line);
    if (m) values[m[1]] = Number(m[2]);
  }
  for (const [name, , isRate, scale] of SERIES) {
    if (!(name in values)) continue;
    let v = values[name] * (scale || 1);
    if (isRate) {
      if (!lastScrape || !(name in lastScrape.values)) continue;
      v = Math.max(0, (values[name] - lastScrape.values[name]) / (now - lastScrape.t));
    }
    samples[name].push(v);
    if (samples[name].length > 90) samples[name].shift();
  }
  lastScrape = { t: now, values };
  const charts = $("#charts");
  if (!charts.children.length) {
    for (const [name, label] of SERIES) {
      charts.append(h("div", { class: "chart", "data-series": name },
        h("span", { class: "label" }, label), h("span", { class: "value" }, "–"),
        h("canvas", { width: "280", height: "60" })));
    }
  }
  for (const [name] of SERIES) {
    const box = charts.querySelector(`[data-series="${name}"]`);
    const pts = samples[name];
    if (pts.length) box.querySelector(".value").textContent = Number(pts[pts.length - 1].toFixed(1)).toLocaleString();
    drawChart(box.querySelector("canvas"), pts);
  }
}

// --- timers ----------------------------------------------------------------------------
refreshCluster();
setInterval(refreshCluster, 1000);
setInterval(tickLeases, 1000);
setInterval(() => { if (!$("#tab-leases").hidden) refreshLeases(); }, 5000);
scrapeMetrics();
setInterval(scrapeMetrics, 2000);
