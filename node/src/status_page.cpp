// The status page (GET / and /status): one HTML document with its CSS and JS inline, so
// it works on a management network with no internet and needs no files next to the
// binary. It draws what GET /api/status answers (status_json.cpp) and polls it. Text
// from the node goes in with textContent only, never as markup.

#include "possync/node/status_page.hpp"

namespace possync::node {

const std::string& status_page_html() {
  static const std::string page = R"html(<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>possync status</title>
<style>
  :root { --online: #1e8e3e; --offline: #d93025; --stale: #fff4ce; --stale-edge: #e3a008;
          --ink: #1f2328; --muted: #656d76; --line: #d0d7de; --head: #f6f8fa; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
         color: var(--ink); background: #fff; }
  header { display: flex; flex-wrap: wrap; gap: 12px 28px; align-items: center;
           padding: 14px 24px; background: #24292f; color: #fff; }
  header h1 { margin: 0; font-size: 20px; font-weight: 600; }
  header .facts { display: flex; flex-wrap: wrap; gap: 6px 20px; color: #d0d7de; }
  header .facts b { color: #fff; font-weight: 600; }
  .conflicts { margin-left: auto; padding: 6px 12px; border-radius: 6px; background: #3d444d; }
  .conflicts.some { background: #9a6700; }
  .conflicts b { font-size: 18px; }
  #error { display: none; padding: 10px 24px; background: var(--offline); color: #fff; font-weight: 600; }
  #error.shown { display: block; }
  main { padding: 8px 24px 24px; }
  main.old { opacity: 0.55; }
  .summary { color: var(--muted); margin: 10px 0 4px; }
  section { margin-top: 18px; border: 1px solid var(--line); border-radius: 8px; overflow-x: auto; }
  section h2 { display: flex; gap: 12px; align-items: center; margin: 0; padding: 10px 14px;
               font-size: 16px; background: var(--head); border-bottom: 1px solid var(--line); }
  section h2 .count { margin-left: auto; font-size: 13px; font-weight: normal; color: var(--muted); }
  table { width: 100%; border-collapse: collapse; }
  th, td { padding: 7px 12px; text-align: left; border-bottom: 1px solid var(--line); white-space: nowrap; }
  th { font-size: 12px; font-weight: 600; color: var(--muted); text-transform: uppercase; }
  th.group { text-align: center; border-bottom: none; padding-bottom: 0; }
  tr:last-child td { border-bottom: none; }
  td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
  tr.branch-node td { font-weight: 600; }
  tr.stale td { background: var(--stale); }
  tr.stale td:first-child { box-shadow: inset 4px 0 0 var(--stale-edge); }
  .id, .via, .sub { color: var(--muted); font-size: 12px; font-weight: normal; }
  .badge { display: inline-block; min-width: 64px; padding: 2px 10px; border-radius: 11px;
           color: #fff; font-size: 12px; font-weight: 600; text-align: center; }
  .badge.online { background: var(--online); }
  .badge.offline { background: var(--offline); }
  .badge.revoked { background: #57606a; }
  .tag { margin-left: 6px; padding: 1px 6px; border-radius: 4px; font-size: 11px; font-weight: 600;
         background: var(--stale-edge); color: #fff; }
  .zero { color: var(--muted); }
  .empty { padding: 14px; color: var(--muted); }
  footer { padding: 0 24px 16px; color: var(--muted); font-size: 12px; }
</style>
</head>
<body>
<header>
  <h1 id="title">possync</h1>
  <div class="facts" id="facts"></div>
  <div class="conflicts" id="conflicts">Unresolved conflicts: <b id="conflict-count">–</b></div>
</header>
<div id="error" role="alert"></div>
<main id="main"><p class="summary" id="summary">Loading…</p><div id="branches"></div></main>
<footer id="footer"></footer>
<script>
"use strict";
const refreshMs = 2000;
let last = null;        // last good answer
let fetchedAt = 0;      // Date.now() when it arrived

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}
function td(cls, ...kids) {
  const c = el("td", cls);
  for (const k of kids) c.append(k);
  return c;
}
// Milliseconds as people say them: "just now", "45 s", "2 min", "3 h", "2 days".
function span(ms) {
  const s = Math.floor(ms / 1000);
  if (s < 60) return s + " s";
  const m = Math.floor(s / 60);
  if (m < 60) return m + " min";
  const h = Math.floor(m / 60);
  if (h < 48) return h + " h";
  const d = Math.floor(h / 24);
  return d + " days";
}
function ago(whenMs, nowMs) {
  if (!whenMs) return "never";
  const ms = nowMs - whenMs;
  return ms < 5000 ? "just now" : span(ms) + " ago";
}
function badge(n) {
  if (n.revoked) return el("span", "badge revoked", "revoked");
  return el("span", "badge " + (n.online ? "online" : "offline"), n.online ? "online" : "offline");
}
function lagText(n) {
  if (!n.online && !n.last_seen_ms) return el("span", "zero", "–");
  if (!n.lag_records && !n.lag_ms) return el("span", "zero", n.caught_up ? "in sync" : "–");
  const parts = [];
  if (n.lag_records) parts.push(n.lag_records + " records");
  if (n.lag_ms) parts.push(span(n.lag_ms));
  return document.createTextNode(parts.join(" · "));
}
function pendingCell(v) {
  return td("num", el("span", v ? "" : "zero", v));
}
function nodeRow(n, nowMs, lanes, isBranchNode, names) {
  const tr = el("tr", (isBranchNode ? "branch-node" : "") + (n.stale ? " stale" : ""));
  tr.dataset.node = n.node;
  const name = el("div", "", n.name || (n.role === "branch" ? "Branch server" : "Terminal"));
  if (n.self) name.append(el("span", "sub", " (this node)"));
  if (n.stale) name.append(el("span", "tag", "stale"));
  tr.append(td("", name, el("div", "id", n.node)));
  tr.append(td("", badge(n)));
  const seen = n.online ? "now" : ago(n.last_seen_ms, nowMs);
  const since = n.online && n.connected_ms ? el("div", "sub", "connected " + ago(n.connected_ms, nowMs)) : "";
  tr.append(td("", el("div", "", seen), since));
  tr.append(td("", lagText(n)));
  for (let l = 0; l < lanes.length; ++l) tr.append(pendingCell((n.pending || [])[l] || 0));
  tr.append(td("", el("span", "", n.software || "–")));
  tr.append(td("via", n.via ? "via " + (names.get(n.via) || n.via) : (n.self ? "" : "direct")));
  return tr;
}
function table(lanes) {
  const t = el("table");
  const g = el("tr");
  const pending = el("th", "group", "Pending");
  pending.colSpan = lanes.length;
  g.append(el("th", "group"), el("th", "group"), el("th", "group"), el("th", "group"), pending,
           el("th", "group"), el("th", "group"));
  const h = el("tr");
  h.append(el("th", "", "Node"), el("th", "", "Status"), el("th", "", "Last seen"), el("th", "", "Lag"));
  for (const l of lanes) h.append(el("th", "num", l));
  h.append(el("th", "", "Software"), el("th", "", "Reported"));
  t.append(g, h);
  return t;
}
function render(d) {
  const nowMs = d.now_ms + (Date.now() - fetchedAt);
  const self = d.self;
  const roleName = { hq: "HQ", branch: "Branch", terminal: "Terminal" }[self.role] || self.role;
  document.title = "possync " + roleName + (self.branch ? " " + self.branch : "") + " — status";
  document.getElementById("title").textContent = "possync " + roleName + (self.branch ? " · " + self.branch : "");
  const facts = document.getElementById("facts");
  facts.replaceChildren();
  const fact = (label, value) => { const f = el("span", "", label + " "); f.append(el("b", "", value)); facts.append(f); };
  fact("node", self.node);
  fact("tenant", self.tenant);
  if (self.role !== "hq") {
    const up = el("span", "", "upstream ");
    up.append(badge({ online: self.online }));
    facts.append(up);
    fact("last sync", ago(self.last_sync_ms, nowMs));
  }
  fact("sessions", self.sessions);
  const pend = self.pending.reduce((a, b) => a + b, 0);
  if (self.role !== "hq") fact("pending", pend);
  if (self.software) fact("version", self.software);
  const c = document.getElementById("conflicts");
  c.className = "conflicts" + (d.conflicts_unresolved > 0 ? " some" : "");
  document.getElementById("conflict-count").textContent = d.conflicts_unresolved;

  // One group per branch; nodes without a branch (other HQ nodes) last.
  const groups = new Map();
  const group = (b) => { if (!groups.has(b)) groups.set(b, { branchNode: null, members: [] }); return groups.get(b); };
  for (const n of d.nodes) {
    const g = group(n.branch);
    if (n.role === "branch" && !g.branchNode) g.branchNode = n;
    else g.members.push(n);
  }
  if (self.role === "branch") {
    const g = group(self.branch);
    if (!g.branchNode) g.branchNode = Object.assign({}, self, { self: true, name: "", last_seen_ms: d.now_ms,
      lag_ms: 0, caught_up: self.caught_up, revoked: false, stale: false, via: "" });
  }
  const nameOf = new Map(d.nodes.map((n) => [n.node, n.name || n.node]));
  const names = [...groups.keys()].sort((a, b) => (a === "") - (b === "") || a.localeCompare(b));
  const box = document.getElementById("branches");
  box.replaceChildren();
  let online = 0, offline = 0, stale = 0;
  for (const b of names) {
    const g = groups.get(b);
    const sec = el("section");
    sec.dataset.branch = b;
    const h = el("h2", "", b ? "Branch " + b : "Other nodes");
    const terms = g.members.filter((n) => n.role === "terminal");
    const up = terms.filter((n) => n.online).length;
    h.append(el("span", "count", terms.length ? up + " of " + terms.length + " terminals online" : "no terminals"));
    sec.append(h);
    const t = table(d.lanes);
    const rows = g.branchNode ? [g.branchNode, ...g.members] : g.members;
    for (const n of rows) {
      t.append(nodeRow(n, nowMs, d.lanes, n === g.branchNode, nameOf));
      if (n.self) continue;
      if (n.online) ++online; else ++offline;
      if (n.stale) ++stale;
    }
    sec.append(t);
    box.append(sec);
  }
  if (!names.length) box.append(el("p", "empty", "No other nodes known yet."));
  const count = (k, one, many) => k + " " + (k === 1 ? one : many);
  document.getElementById("summary").textContent = count(names.filter((b) => b).length, "branch", "branches") +
    " · " + count(online, "node", "nodes") + " online · " + offline + " offline" + (stale ? " · " + stale + " stale (over " + span(d.stale_after_ms) +
    ")" : "");
  document.getElementById("footer").textContent = "Updated " + new Date(d.now_ms).toLocaleTimeString() +
    " · refreshes every " + refreshMs / 1000 + " s · JSON at /api/status";
}
async function load() {
  const err = document.getElementById("error");
  const main = document.getElementById("main");
  try {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), 5000);
    const r = await fetch("/api/status", { cache: "no-store", signal: ctl.signal });
    clearTimeout(timer);
    if (!r.ok) throw new Error("HTTP " + r.status);
    last = await r.json();
    fetchedAt = Date.now();
    render(last);
    err.className = "";
    err.textContent = "";
    main.className = "";
  } catch (e) {
    err.className = "shown";
    err.textContent = "Cannot reach the node (" + (e && e.message ? e.message : e) + ")" +
      (last ? ": showing data from " + new Date(last.now_ms).toLocaleTimeString() : "") +
      " — retrying every " + refreshMs / 1000 + " s";
    main.className = last ? "old" : "";
  } finally {
    setTimeout(load, refreshMs);
  }
}
load();
</script>
</body>
</html>
)html";
  return page;
}

} // namespace possync::node
