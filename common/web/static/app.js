// gsmon web page: the live tree from the bridge's WebSocket, problems first. No build step, no CDN.
//
// The stream (see gsmon.common.web.core): a snapshot, then deltas and status messages, each with epoch and
// seq; a seq that does not follow (or another epoch) means something was missed: subscribe again, which
// brings a fresh snapshot. Rendering is batched: many deltas between two frames cost one render.
"use strict";

(function () {
  const ORANGE = 20, RED = 30, STALE = 50, CRITICAL = 100, GREEN = 10;
  const params = new URLSearchParams(location.search);
  const KIOSK = params.get("kiosk") === "1";
  const START_PREFIX = params.get("prefix") || "";
  const $ = (id) => document.getElementById(id);

  const state = {
    nodes: new Map(), // path -> node JSON
    children: new Map(), // parent path ("" = root) -> Set of child paths
    epoch: null, seq: 0,
    status: null, hubOffsetMs: 0, link: "waiting",
    session: { user: null, role: null, csrf: null, users_file: false, private_reads: false },
    selected: null,
    expanded: new Map(), // path -> true/false: the user's own choice, over the default
    expandAll: false,
    filter: "",
    visible: [], // paths of the rendered rows, in order (keyboard moves)
    dirty: false, renderedAt: 0, renders: 0, applied: 0, snapshots: 0,
    chart: null, chartPath: null,
    detailFor: null, // the path whose history and journal the detail panel asked for
    // The hub's alarm listing (GET /api/v1/alarms): {alarms, unreached}, or null while it does not answer
    // (an old hub, the hub lost): the table is then built from the tree, and says so (bookProblem).
    book: null, bookProblem: "", bookLoads: 0,
  };
  window.gsmonState = state; // for the tests and the bench (read-only use)

  // ------------------------------------------------------------------ helpers

  function tier(level) {
    if (level >= CRITICAL) return "critical";
    if (level >= STALE) return "stale";
    if (level >= RED) return "red";
    if (level >= ORANGE) return "orange";
    if (level >= GREEN) return "green";
    return "none";
  }
  function esc(text) {
    return String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  }
  function rank(node) {
    const att = node.attention == null ? node.level : node.attention;
    return Math.max(node.level, att);
  }
  function attention(node) { return node.attention == null ? node.level : node.attention; }
  function parentOf(path) { const i = path.lastIndexOf("/"); return i < 0 ? "" : path.slice(0, i); }
  function nameOf(path) { return path.slice(path.lastIndexOf("/") + 1); }
  function hubNow() { return Date.now() + state.hubOffsetMs; }
  function human(seconds) {
    if (seconds == null || !isFinite(seconds)) return "";
    seconds = Math.max(0, seconds);
    if (seconds < 60) return `${Math.floor(seconds)} s`;
    if (seconds < 3600) return `${Math.floor(seconds / 60)} min`;
    if (seconds < 86400) { const h = Math.floor(seconds / 3600); const m = Math.floor((seconds % 3600) / 60); return m ? `${h} h ${m} min` : `${h} h`; }
    const d = Math.floor(seconds / 86400); const h = Math.floor((seconds % 86400) / 3600); return h ? `${d} d ${h} h` : `${d} d`;
  }
  function clockOf(iso) { // "14:02:11" UTC, with the date when not today
    if (!iso) return "";
    const t = new Date(iso);
    const day = t.toISOString().slice(0, 10), today = new Date(hubNow()).toISOString().slice(0, 10);
    const hms = t.toISOString().slice(11, 19);
    return day === today ? hms : `${day} ${hms}`;
  }
  function sinceText(iso) {
    if (!iso) return "";
    return `since ${clockOf(iso)} (${human((hubNow() - Date.parse(iso)) / 1000)})`;
  }
  function toast(text, error) {
    const el = $("toast");
    el.textContent = text; el.className = error ? "error" : ""; el.hidden = false;
    clearTimeout(toast.timer); toast.timer = setTimeout(() => { el.hidden = true; }, error ? 8000 : 3000);
  }
  function mayAct() { return state.session.role === "operator" || state.session.role === "admin"; }

  // ------------------------------------------------------------------ the tree's index

  function link(path) {
    let child = path;
    while (child !== "") {
      const parent = parentOf(child);
      let set = state.children.get(parent);
      if (!set) { set = new Set(); state.children.set(parent, set); }
      if (set.has(child)) return;
      set.add(child);
      child = parent;
    }
  }
  function unlink(path) {
    if (state.children.has(path) && state.children.get(path).size) return; // still has children
    let child = path;
    while (child !== "") {
      const parent = parentOf(child);
      const set = state.children.get(parent);
      if (set) { set.delete(child); if (set.size) return; state.children.delete(parent); }
      if (state.nodes.has(parent)) return;
      child = parent;
    }
  }
  function putNode(node) { if (!state.nodes.has(node.path)) link(node.path); state.nodes.set(node.path, node); }
  function dropNode(path) { if (state.nodes.delete(path)) unlink(path); }

  // ------------------------------------------------------------------ the stream

  let socket = null, retryMs = 500;
  const SESSION_ENDED = 4401; // the close code of a stream whose session ended (app.py SESSION_ENDED_CLOSE_CODE)
  // Reads private and nobody logged in: the bridge refuses the stream; the page says why and waits for a login.
  function mustLogIn() { return state.session.private_reads && !state.session.user; }
  function showLogIn() {
    state.nodes.clear(); state.children.clear(); state.epoch = null; state.book = null;
    setLink("log in", "log in to see the station: this bridge shows it to logged-in users only");
    markDirty();
  }
  function connect() {
    if (mustLogIn()) { showLogIn(); return; }
    if (socket && socket.readyState <= WebSocket.OPEN) { subscribe(); return; }
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    socket = new WebSocket(`${scheme}//${location.host}/api/v1/ws`);
    socket.onopen = () => { retryMs = 500; subscribe(); };
    socket.onmessage = (event) => onMessage(JSON.parse(event.data));
    socket.onclose = async (event) => {
      socket = null;
      // 4401: the bridge ended the stream with the session (a logout in another tab, or its expiry).
      if (event.code === SESSION_ENDED) await loadSession();
      if (mustLogIn()) { showLogIn(); return; } // (logged out, or the session ended)
      setLink("bridge lost", "the bridge does not answer: reconnecting");
      setTimeout(connect, retryMs); retryMs = Math.min(retryMs * 2, 10000);
    };
  }
  function subscribe() {
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ subscribe: "", min_level: null }));
  }
  function onMessage(msg) {
    if (msg.type === "error") { toast(msg.message, true); return; }
    if (msg.type === "snapshot") {
      state.epoch = msg.epoch; state.seq = msg.seq; state.snapshots += 1;
      state.nodes.clear(); state.children.clear();
      for (const node of msg.nodes) putNode(node);
      state.applied += msg.nodes.length;
      onStatus(msg.status);
      markDirty();
      wantBook();
      return;
    }
    if (msg.epoch !== state.epoch) return; // an old subscription's message still on the way
    if (msg.seq !== state.seq + 1) { state.epoch = null; subscribe(); return; } // a gap: start again
    state.seq = msg.seq;
    if (msg.type === "delta") {
      let alarmsMoved = false;
      for (const path of msg.removed) {
        const old = state.nodes.get(path);
        if (old && old.alarm) alarmsMoved = true; // its alarm is cleared, or latched and kept: ask the book
        dropNode(path);
      }
      for (const node of msg.nodes) {
        if (!alarmsMoved) alarmsMoved = alarmMoved(state.nodes.get(node.path), node);
        putNode(node);
      }
      state.applied += msg.nodes.length + msg.removed.length;
      if (alarmsMoved) wantBook();
      markDirty();
    } else if (msg.type === "status") {
      onStatus(msg.status);
    }
  }
  // Whether a node's update may have changed the hub's alarm book: its alarm map reads differently, or its
  // level or staleness moved where alarms are raised (ORANGE and up). Value-only updates never do.
  function alarmKey(alarm) {
    return alarm ? `${alarm.id}|${alarm.state}|${alarm.level}|${alarm.acked_by || ""}|${alarm.shelf_id == null ? "" : alarm.shelf_id}` : "";
  }
  function alarmMoved(old, node) {
    if (!old) return !!node.alarm || node.level >= ORANGE;
    if (alarmKey(old.alarm) !== alarmKey(node.alarm)) return true;
    if (old.stale !== node.stale) return true;
    return old.level !== node.level && Math.max(old.level, node.level) >= ORANGE;
  }

  // ------------------------------------------------------------------ the hub's alarm book

  // One listing at a time; a change seen while one is on its way asks again once it is back (the one on
  // its way may have been read before the change). At most every BOOK_MIN_MS, and every BOOK_EVERY_MS
  // anyway (an ack from another client that changes nothing in this page's tree, a site's fields).
  const BOOK_MIN_MS = 500, BOOK_EVERY_MS = 5000;
  const bookLoad = { busy: false, again: false, timer: null, startedAt: 0 };
  function wantBook() {
    if (bookLoad.busy) { bookLoad.again = true; return; }
    if (bookLoad.timer) return;
    const waitMs = Math.max(0, bookLoad.startedAt + BOOK_MIN_MS - Date.now());
    bookLoad.timer = setTimeout(() => { bookLoad.timer = null; loadBook(); }, waitMs);
  }
  async function loadBook() {
    if (bookLoad.busy) { bookLoad.again = true; return; }
    bookLoad.busy = true; bookLoad.startedAt = Date.now();
    try {
      const body = await getJson("/api/v1/alarms");
      const result = body.result || {};
      if (!Array.isArray(result.alarms)) throw new Error("the hub's answer has no alarm list");
      const byId = new Map(result.alarms.map((alarm) => [alarm.id, alarm]));
      state.book = { alarms: result.alarms, byId, unreached: Array.isArray(result.unreached) ? result.unreached : [] };
      state.bookProblem = "";
    } catch (error) {
      state.book = null;
      state.bookProblem = error.message;
    } finally {
      bookLoad.busy = false;
      state.bookLoads += 1;
      markDirty();
      if (bookLoad.again) { bookLoad.again = false; wantBook(); }
    }
  }

  // A node's alarm with every field: the listing's (a relayed summary lacks acked_by, ack_comment...), the
  // tree's newer state and level over it.
  function fullAlarm(node) {
    const summary = node.alarm;
    const listed = summary && state.book ? state.book.byId.get(summary.id) : null;
    if (!listed) return summary;
    const alarm = { ...listed };
    for (const [key, value] of Object.entries(summary)) if (value != null) alarm[key] = value;
    return alarm;
  }

  function onStatus(status) {
    state.status = status;
    if (status.now) state.hubOffsetMs = Date.parse(status.now) - Date.now();
    const reason = status.state === "hub lost" ? "hub lost: no heartbeat from the hub; every row shows its last known state and is unknown now"
      : status.state === "waiting" ? `waiting for the hub at ${status.hub}${status.reason ? ": " + status.reason : ""}` : "";
    setLink(status.state, reason);
    renderStatus();
    markDirty(); // ages and "since" move on
  }
  function setLink(link, reason) {
    state.link = link;
    document.body.dataset.hub = link;
    const hubstate = $("hubstate");
    hubstate.dataset.state = link;
    hubstate.textContent = link === "connected" ? "hub connected" : link;
    const banner = $("banner");
    banner.hidden = link === "connected";
    banner.textContent = reason || link;
  }

  // ------------------------------------------------------------------ rendering

  function markDirty() {
    if (state.dirty) return;
    state.dirty = true;
    requestAnimationFrame(render);
  }
  function render() {
    state.dirty = false;
    renderTree();
    renderAlarms();
    if (KIOSK) renderArea();
    renderDetail(false);
    state.renders += 1;
    state.renderedAt = performance.now();
  }
  function renderStatus() {
    const status = state.status;
    if (!status) return;
    const order = ["critical", "stale", "red", "orange", "green", "none"];
    $("counts").innerHTML = order.filter((t) => status.by_tier[t]).map((t) =>
      `<span class="chip" data-tier="${t}" title="${t} points">${esc(status.by_tier[t])} ${t === "none" ? "no level" : t.toUpperCase()}</span>`).join(" ");
    const parts = [];
    if (status.unacked != null) parts.push(`${status.unacked} unacked`);
    if (status.shelved != null) parts.push(`${status.shelved} shelved`);
    parts.push(`${status.points} points`);
    $("alarmcounts").textContent = parts.join(" · ");
    $("clock").textContent = status.now ? `${status.now.slice(11, 19)} UTC` : "";
  }

  // A subtree's summary, computed once per render: worst rank, point count, problem count.
  function summarize(path, memo) {
    let s = memo.get(path);
    if (s) return s;
    const node = state.nodes.get(path);
    s = { rank: node ? rank(node) : 0, points: node && node.kind === "point" ? 1 : 0, problems: 0, match: false };
    if (node && node.kind === "point" && rank(node) >= ORANGE) s.problems = 1;
    s.match = state.filter ? matches(path) : false;
    const kids = state.children.get(path);
    if (kids) for (const child of kids) {
      const c = summarize(child, memo);
      s.rank = Math.max(s.rank, c.rank); s.points += c.points; s.problems += c.problems; s.match = s.match || c.match;
    }
    memo.set(path, s);
    return s;
  }
  // The filter is segment-aware: "GS1/Ant" matches a path with a segment containing GS1 followed by one
  // containing Ant (case-insensitive), so "Ant" never matches across a "/".
  function matches(path) {
    const want = state.filterSegments, have = path.toLowerCase().split("/");
    for (let start = 0; start + want.length <= have.length; start++) {
      let ok = true;
      for (let i = 0; i < want.length; i++) if (!have[start + i].includes(want[i])) { ok = false; break; }
      if (ok) return true;
    }
    return false;
  }
  function isExpanded(path, summary) {
    if (state.filter) return summary.match;
    const own = state.expanded.get(path);
    if (own !== undefined) return own;
    if (state.expandAll) return true;
    if (START_PREFIX && (START_PREFIX === path || START_PREFIX.startsWith(path + "/") || START_PREFIX.replace(/\/$/, "") === path)) return true;
    return summary.rank >= ORANGE; // problems open, healthy subtrees collapsed with counts
  }
  function sortedChildren(path, memo) {
    const kids = state.children.get(path);
    if (!kids) return [];
    const list = Array.from(kids);
    list.sort((a, b) => (summarize(b, memo).rank - summarize(a, memo).rank) || (a < b ? -1 : a > b ? 1 : 0));
    return list;
  }
  function rowHtml(path, depth, summary, open, hasKids) {
    const node = state.nodes.get(path);
    const level = node ? node.level : summary.rank;
    const att = node ? attention(node) : summary.rank;
    // The row (its border) is coloured by attention -- an acknowledged RED no longer calls for anyone --,
    // its word by its own level: "RED" stays red, and says so in words.
    const t = tier(node && node.attention != null ? node.attention : Math.max(level, att));
    const word = node ? node.word : "";
    const markers = [];
    if (node) {
      if (node.stale) markers.push('<span class="marker stale">STALE</span>');
      if (node.pending) markers.push(`<span class="marker pending" title="since ${esc(node.pending.since || "")}">pending ${esc(node.pending.level_str || node.pending.level)}</span>`);
      if (node.flapping) markers.push(`<span class="marker flapping">flapping (${esc(node.flapping.changes)})</span>`);
      if (node.shelf_id != null) markers.push(`<span class="marker shelved">shelved #${esc(node.shelf_id)}</span>`);
      if (node.alarm && (node.alarm.state === "active_unacked" || node.alarm.state === "rtn_unacked")) markers.push('<span class="marker unacked">unacked</span>');
      else if (node.alarm && node.alarm.state === "active_acked") {
        const full = fullAlarm(node);
        markers.push(`<span class="marker">acked by ${esc(full.acked_user || full.acked_by || "?")}</span>`);
      }
      if (node.unacked_below) markers.push(`<span class="marker unacked">${esc(node.unacked_below)} unacked below</span>`);
      if (node.shelved_below) markers.push(`<span class="marker shelved">${esc(node.shelved_below)} shelved below</span>`);
      if (state.link !== "connected") markers.push('<span class="marker unknown">unknown</span>');
    }
    let count = "";
    if (hasKids && !open) count = `<span class="count">${summary.points} point${summary.points === 1 ? "" : "s"}${summary.problems ? `, ${summary.problems} with problems` : ", all OK"}</span>`;
    const since = node && node.since ? sinceText(node.since) : "";
    const cls = `row${path === state.selected ? " selected" : ""}${node && node.shelf_id != null ? " shelvedrow" : ""}`;
    return `<div class="${cls}" role="treeitem" aria-level="${depth + 1}"${hasKids ? ` aria-expanded="${open}"` : ""} data-path="${esc(path)}" data-level="${level}" data-attention="${att}" data-tier="${t}" style="padding-left:${0.3 + depth * 1.1}rem">` +
      `<span class="twisty">${hasKids ? (open ? "▾" : "▸") : ""}</span><span class="word" data-tier="${tier(level)}">${esc(word || (hasKids ? "" : "—"))}</span>` +
      `<span class="name">${esc(nameOf(path))}</span>${node && node.kind === "point" ? `<span class="text">${esc(node.text)}</span>` : ""}` +
      `${markers.join("")}${count}<span class="since">${esc(since)}</span></div>`;
  }
  function renderTree() {
    const memo = new Map(), out = [], visible = [];
    const walk = (path, depth) => {
      for (const child of sortedChildren(path, memo)) {
        const summary = summarize(child, memo);
        if (state.filter && !summary.match) continue;
        const hasKids = state.children.has(child);
        const open = hasKids && isExpanded(child, summary);
        out.push(rowHtml(child, depth, summary, open, hasKids));
        visible.push(child);
        if (open) walk(child, depth + 1);
      }
    };
    walk("", 0);
    state.visible = visible;
    $("tree").innerHTML = out.length ? out.join("") : `<p>${state.nodes.size ? "nothing matches the filter" : "no nodes (yet)"}</p>`;
  }
  const isOpen = (alarm) => alarm.state === "active_unacked" || alarm.state === "rtn_unacked";
  function sortRows(rows) {
    const unacked = (row) => (row.alarm && isOpen(row.alarm) ? 1 : 0);
    const levelOf = (row) => (row.alarm ? row.alarm.level || 0 : row.node.level);
    // A silent site's last-known alarms (a central hub lists them marked) after every current one.
    const known = (row) => (row.alarm && row.alarm.last_known ? 1 : 0);
    rows.sort((a, b) => (known(a) - known(b)) || (unacked(b) - unacked(a)) || (levelOf(b) - levelOf(a)) || (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
    return rows;
  }
  // Rows: {path, alarm (null: a problem of a hub without alarms), node (null: the point is not in the tree)}.
  function alarmRows() {
    return state.book ? bookRows(state.book) : treeRows();
  }
  // From the hub's book: every alarm it keeps, a latched one whose point is gone included, with every field
  // (at a central hub the tree's relayed alarm maps are summaries without acked_by, ack_comment...).
  function bookRows(book) {
    const rows = [], listed = new Set();
    for (const listedAlarm of book.alarms) {
      listed.add(listedAlarm.id);
      const node = state.nodes.get(listedAlarm.path) || null;
      // The tree is newer than the last listing: its state and level win until the next one comes.
      // (A last-known row is the hub's own account of a silent site: the relayed point says no more.)
      const alarm = !listedAlarm.last_known && node && node.alarm && node.alarm.id === listedAlarm.id ? fullAlarm(node) : listedAlarm;
      if (alarm.state === "cleared") continue;
      rows.push({ path: listedAlarm.path, alarm, node });
    }
    // Raised since the last listing (a newer one is on its way): from the tree meanwhile. Not those of a site
    // the listing could not reach: as at the hub, the site's silence alarm stands for them (and a note says so).
    const unreached = book.unreached.map((site) => String(site.path || ""));
    const below = (path) => unreached.some((mount) => path === mount || path.startsWith(mount + "/"));
    for (const node of state.nodes.values()) {
      if (node.alarm && node.alarm.state !== "cleared" && !listed.has(node.alarm.id) && !below(node.path)) rows.push({ path: node.path, alarm: node.alarm, node });
    }
    return sortRows(rows);
  }
  function treeRows() {
    const rows = [];
    let alarmFields = false;
    for (const node of state.nodes.values()) {
      if (node.alarm) { alarmFields = true; if (node.alarm.state !== "cleared") rows.push({ path: node.path, alarm: node.alarm, node }); }
    }
    if (!alarmFields && !(state.status && state.status.alarm_fields)) {
      // A hub without the alarm core: the problems themselves (points at ORANGE or worse), worst first.
      for (const node of state.nodes.values()) if (node.kind === "point" && node.level >= ORANGE) rows.push({ path: node.path, alarm: null, node });
    }
    return sortRows(rows);
  }
  // What the table cannot show: said in words, one line each, never a silently incomplete list.
  function alarmNotes() {
    const notes = [];
    if (state.book) {
      for (const site of state.book.unreached) {
        const known = state.book.alarms.filter((alarm) => alarm.last_known && (alarm.path === site.path || String(alarm.path).startsWith(`${site.path}/`))).length;
        notes.push(known
          ? `site ${site.site || "?"} at ${site.path || "?"} not reached (${site.reason || "no reason given"}): its ${known} alarm(s) are shown as last known, and cannot be acknowledged until it is reached`
          : `not listed: the alarms of site ${site.site || "?"} at ${site.path || "?"}: ${site.reason || "no reason given"}`);
      }
    } else if (state.bookProblem) {
      notes.push(`the hub does not answer the alarm listing (${state.bookProblem}): rows from the tree, ` +
        "without alarms whose point is gone and without a site's ack details");
    }
    return notes;
  }
  function valueText(row) {
    if (row.node) return row.node.text;
    const value = row.alarm ? row.alarm.value : null;
    if (value == null) return "";
    return typeof value === "string" ? value : JSON.stringify(value);
  }
  function ackedText(alarm) {
    if (!alarm || !(alarm.acked_user || alarm.acked_by)) return "";
    return `${alarm.acked_user || alarm.acked_by}${alarm.acked_at ? ` ${clockOf(alarm.acked_at)}` : ""}${alarm.ack_comment ? `: ${alarm.ack_comment}` : ""}`;
  }
  let alarmHtml = "";  // what the alarm table shows now
  let notesHtml = "";
  function renderAlarms() {
    const rows = alarmRows();
    const act = mayAct() && !KIOSK;
    $("attentioncount").textContent = rows.length ? `(${rows.length})` : "";
    $("noproblems").hidden = rows.length > 0;
    $("noproblems").textContent = state.link === "connected" && state.snapshots ? "Nothing needs attention."
      : `Nothing is known: no live tree (${state.link}).`;
    const html = rows.slice(0, 500).map((row) => {
      const { alarm, node, path } = row;
      const open = alarm && isOpen(alarm);
      const level = alarm ? Math.max(alarm.level || 0, node ? node.level : 0) : node.level;
      const word = node ? node.word : alarm.level_str || tier(level).toUpperCase();
      // An alarm that returned to normal (or fell back) shows its point's level now, and what it rose to.
      const peak = alarm && alarm.max_level > level ? alarm.max_level_str || tier(alarm.max_level).toUpperCase() : "";
      const shelf = node ? node.shelf_id : alarm.shelf_id;
      const lastKnown = Boolean(alarm && alarm.last_known);  // a silent site's: the ack would be refused
      const buttons = [];
      if (act && alarm && open && !lastKnown) buttons.push(`<button type="button" class="actbutton ack" data-id="${alarm.id}" data-path="${esc(path)}">Ack</button>`);
      if (act && alarm && alarm.state === "active_acked" && !lastKnown) buttons.push(`<button type="button" class="actbutton unack" data-id="${alarm.id}" data-path="${esc(path)}">Unack</button>`);
      if (act && node) buttons.push(`<button type="button" class="actbutton shelve" data-path="${esc(path)}">Shelve</button>`);
      const since = alarm ? alarm.raised_at : node.since;
      const marks = [];
      if (lastKnown) marks.push(`<span class="marker lastknown">last known ${esc(clockOf(alarm.as_of))}</span>`);
      if (alarm) marks.push(esc(alarm.state.replace("_", " ")));
      if (node && node.stale) marks.push("STALE");
      if (shelf != null) marks.push(`shelved #${esc(shelf)}`);
      if (!node) marks.push('<span class="marker gone">point removed</span>');
      return `<tr class="${alarm ? (open ? "unacked" : "acked") : "problem"}${node ? "" : " gone"}${lastKnown ? " lastknown" : ""}" data-path="${esc(path)}" data-level="${level}"${alarm ? ` data-alarm-id="${alarm.id}" data-state="${esc(alarm.state)}"` : ""}>` +
        `<td data-tier="${tier(level)}">${esc(word)}${peak ? ` <span class="was">(was ${esc(peak)})</span>` : ""}</td>` +
        `<td class="path">${esc(path)}</td>` +
        `<td>${marks.join(" ")}</td>` +
        `<td>${esc(since ? sinceText(since) : "")}</td><td>${esc(valueText(row))}</td>` +
        `<td class="ackedby"${alarm && alarm.acked_by ? ` title="key ${esc(alarm.acked_by)}"` : ""}>${esc(ackedText(alarm))}</td>` +
        `<td>${buttons.join("")}</td></tr>`;
    }).join("");
    // Rows are replaced only when they read differently: a point re-polled at 10 Hz must not swap the
    // button under the operator's pointer (a click needs press and release on the same element).
    if (html !== alarmHtml) {
      $("alarmrows").innerHTML = html;
      alarmHtml = html;
    }
    const notes = alarmNotes().map((line) => `<li>${esc(line)}</li>`).join("");
    if (notes !== notesHtml) {
      $("alarmnotes").innerHTML = notes;
      $("alarmnotes").hidden = !notes;
      notesHtml = notes;
    }
  }
  function renderArea() {
    const memo = new Map();
    $("area").innerHTML = sortedChildren("", memo).map((path) => {
      const s = summarize(path, memo), node = state.nodes.get(path);
      const word = node ? node.word : "";
      // The tile is coloured by attention: when that is above the node's own level (an alarm that returned
      // to normal, or was latched, and waits for an acknowledgement), the word alone would contradict the
      // colour: say why it is coloured so.
      const waiting = node && s.rank > node.level
        ? `<div class="tnote">${esc(tier(s.rank).toUpperCase())} alarm unacknowledged</div>` : "";
      return `<div class="tile" data-path="${esc(path)}" data-level="${s.rank}" data-tier="${tier(s.rank)}"><div class="tname">${esc(nameOf(path))}</div>` +
        `<div class="tword">${esc(word || tier(s.rank).toUpperCase())}</div>${waiting}<div>${s.points} points${s.problems ? `, ${s.problems} with problems` : ""}</div></div>`;
    }).join("");
  }

  // ------------------------------------------------------------------ the detail panel

  function select(path) {
    state.selected = path;
    markDirty();
    renderDetail(true);
  }
  function field(name, value) { return value === "" || value == null ? "" : `<dt>${esc(name)}</dt><dd>${value}</dd>`; }
  function renderDetail(fresh) {
    const panel = $("detail");
    const path = state.selected;
    if (!path || KIOSK) { panel.hidden = true; state.detailFor = null; return; }
    panel.hidden = false;
    const node = state.nodes.get(path);
    $("detailpath").textContent = path;
    if (!node) { $("detailfields").innerHTML = "<dt>state</dt><dd>not in the tree (removed)</dd>"; return; }
    // A selection made before its node came (?prefix=P opens with it selected) asks once the node is here.
    if (state.detailFor !== path) fresh = true;
    const a = fullAlarm(node);
    const fields = [
      field("level", `<span data-level="${node.level}" data-tier="${tier(node.level)}"><b class="word">${esc(node.word)}</b></span> (${node.level})`),
      field("value", node.kind === "point" ? `${esc(node.text)}<pre>${esc(JSON.stringify(node.value))}</pre>` : ""),
      field("since", node.since ? esc(sinceText(node.since)) + ` <small>${esc(node.since)}</small>` : ""),
      field("agent", node.agent ? esc(node.agent) : ""),
      field("polled", node.polled_at ? `${esc(clockOf(node.polled_at))} (${esc(human((hubNow() - Date.parse(node.polled_at)) / 1000))} ago)` : ""),
      field("received", node.received_at ? `${esc(clockOf(node.received_at))} (${esc(human((hubNow() - Date.parse(node.received_at)) / 1000))} ago)` : ""),
      field("every", node.dt != null ? `${esc(node.dt)} s` : ""),
      field("attention", node.attention != null ? esc(node.attention) : ""),
      field("raw level", node.raw_alert != null ? esc(node.raw_alert) : ""),
      field("pending", node.pending ? `${esc(node.pending.level_str)} ${esc(sinceText(node.pending.since))}` : ""),
      field("flapping", node.flapping ? `${esc(node.flapping.changes)} changes ${esc(sinceText(node.flapping.since))}` : ""),
      field("shelf", node.shelf_id != null ? `#${esc(node.shelf_id)}` : ""),
      field("alarm", a ? `#${esc(a.id)} ${esc(a.state)} at ${esc(a.level_str || "")} (max ${esc(a.max_level_str || "")}), raised ${esc(clockOf(a.raised_at))}` +
        (a.acked_by ? `, acked by ${esc(a.acked_user ? `${a.acked_user} (${a.acked_by})` : a.acked_by)} ${esc(clockOf(a.acked_at))}${a.ack_comment ? `: “${esc(a.ack_comment)}”` : ""}` : "") +
        (a.reason ? ` — ${esc(a.reason)}` : "") : ""),
    ];
    $("detailfields").innerHTML = fields.join("");
    const actions = [];
    if (mayAct()) {
      if (a && (a.state === "active_unacked" || a.state === "rtn_unacked")) actions.push(`<button type="button" class="actbutton ack" data-id="${a.id}" data-path="${esc(path)}">Ack</button>`);
      if (a && a.state === "active_acked") actions.push(`<button type="button" class="actbutton unack" data-id="${a.id}" data-path="${esc(path)}">Unack</button>`);
      actions.push(`<button type="button" class="actbutton shelve" data-path="${esc(path)}">Shelve${node.kind === "point" ? "" : " subtree"}</button>`);
      if (node.shelf_id != null) actions.push(`<button type="button" class="actbutton unshelve" data-id="${node.shelf_id}">Unshelve #${esc(node.shelf_id)}</button>`);
    }
    $("detailactions").innerHTML = actions.join("");
    if (fresh) { state.detailFor = path; loadHistory(path, node); loadJournal(path); }
  }

  async function getJson(url) {
    const response = await fetch(url, { credentials: "same-origin" });
    let body = null;
    try { body = await response.json(); } catch (e) { body = { error: `HTTP ${response.status}` }; }
    if (!response.ok) throw new Error(body.error || body.message || `HTTP ${response.status}`);
    return body;
  }
  async function loadHistory(path, node) {
    const hint = $("charthint"), box = $("chart");
    if (state.chart) { state.chart.destroy(); state.chart = null; }
    box.innerHTML = "";
    if (node.kind !== "point") { hint.textContent = "select a point for its history"; return; }
    hint.textContent = "loading the last hour…";
    const to = new Date(hubNow()), from = new Date(to.getTime() - 3600 * 1000);
    try {
      const body = await getJson(`/api/v1/history?path=${encodeURIComponent(path)}&from=${from.toISOString()}&to=${to.toISOString()}&buckets=240`);
      if (state.selected !== path) return;
      const buckets = (body.result && body.result.buckets) || [];
      const gaps = (body.result && body.result.gaps) || [];
      const points = []; // [x (s), min, avg, max]
      for (const b of buckets) {
        const empty = b.avg == null; // no number in the bucket (or a gap): drawn as a gap, never as a line
        points.push([(Date.parse(b.from) + Date.parse(b.to)) / 2000, empty ? null : b.min, empty ? null : b.avg, empty ? null : b.max]);
      }
      // A gap narrower than two buckets leaves no empty bucket: the buckets on its sides would be joined by
      // a line. A point without values in the gap's middle breaks the line there (uPlot: spanGaps false).
      const shownFrom = from.getTime() / 1000, shownTo = to.getTime() / 1000;
      for (const g of gaps) {
        const middle = (Date.parse(g.from) + Date.parse(g.to)) / 2000;
        if (middle > shownFrom && middle < shownTo) points.push([middle, null, null, null]);
      }
      points.sort((a, b) => a[0] - b[0]);
      const xs = points.map((p) => p[0]), mins = points.map((p) => p[1]), avgs = points.map((p) => p[2]), maxs = points.map((p) => p[3]);
      hint.textContent = `${buckets.length} buckets over the last hour${gaps.length ? `; ${gaps.length} gap(s): ${gaps.map((g) => `${clockOf(g.from)}–${clockOf(g.to)} ${g.reason}`).join(", ")}` : ""}`;
      if (!window.uPlot || !xs.length) { if (!xs.length) hint.textContent = "no history for this point in the last hour"; return; }
      const width = Math.max(240, box.clientWidth || 300);
      state.chart = new window.uPlot({
        width, height: 160, spanGaps: false,
        // Dots on the averages: a bucket between two gaps (or alone in the hour) has no line to draw.
        series: [{}, { label: "min", stroke: "#90a4ae" }, { label: "avg", stroke: "#1565c0", width: 2, points: { show: true, size: 4, fill: "#1565c0" } }, { label: "max", stroke: "#90a4ae" }],
        axes: [{}, { size: 60 }], scales: { x: { time: true } },
      }, [xs, mins, avgs, maxs], box);
      state.chartPath = path;
    } catch (error) {
      if (state.selected === path) hint.textContent = `history: ${error.message}`;
    }
  }
  async function loadJournal(path) {
    const list = $("journal");
    $("journalscope").textContent = `of ${path}`;
    list.innerHTML = "<li>loading…</li>";
    try {
      // The newest 50 under the selection (the hub picks them: a long journal is never read from its start).
      const body = await getJson(`/api/v1/journal?after_id=0&prefix=${encodeURIComponent(path)}&limit=50&newest=1`);
      if (state.selected !== path) return;
      const entries = ((body.result && body.result.entries) || []).slice().reverse();
      list.innerHTML = entries.length ? entries.map((e) =>
        `<li data-kind="${esc(e.kind)}"><b>${esc(clockOf(e.time || e.hub_time))}</b> ${esc(e.kind)} ${esc(e.path || "")}` +
        `${e.new != null ? ` → ${esc(e.new)}` : ""}${e.user ? ` by ${esc(e.user)}` : ""}${e.by ? ` (${esc(e.by)})` : ""}${e.comment ? `: ${esc(e.comment)}` : ""}</li>`).join("")
        : "<li>no journal entries</li>";
    } catch (error) {
      if (state.selected === path) list.innerHTML = `<li>journal: ${esc(error.message)}</li>`;
    }
  }

  // ------------------------------------------------------------------ sessions and commands

  async function loadSession() {
    try { state.session = await getJson("/api/v1/session"); } catch (e) { /* keep the anonymous session */ }
    const s = state.session;
    $("loginform").hidden = !s.users_file || !!s.user || KIOSK;
    $("whoami").hidden = !s.user;
    $("username").textContent = s.user ? `${s.user} (${s.role})` : "";
    markDirty();
  }
  async function post(url, body) {
    const response = await fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-Gsmon-CSRF": state.session.csrf || "" },
      body: JSON.stringify(body),
    });
    let answer = {};
    try { answer = await response.json(); } catch (e) { answer = { error: `HTTP ${response.status}` }; }
    if (!response.ok) throw new Error(answer.error || answer.message || `HTTP ${response.status}`);
    return answer;
  }
  function ask(title, what, shelve) {
    return new Promise((resolve) => {
      const dialog = $("commentdialog");
      $("dialogtitle").textContent = title;
      $("dialogwhat").textContent = what;
      $("shelveoptions").hidden = !shelve;
      $("comment").value = "";
      $("comment").required = shelve;
      const done = (value) => { dialog.close(); resolve(value); };
      $("commentform").onsubmit = (event) => {
        event.preventDefault();
        const comment = $("comment").value.trim();
        if (shelve && !comment) { toast("a shelf needs a comment (why, for the next shift)", true); return; }
        const picked = document.querySelector('input[name="duration"]:checked');
        done({ comment, duration: picked ? picked.value : "7200" });
      };
      $("dialogcancel").onclick = () => done(null);
      dialog.oncancel = () => resolve(null);
      dialog.showModal();
      $("comment").focus();
    });
  }
  async function ackAlarm(id, path, verb) {
    const answer = await ask(verb === "ack" ? "Acknowledge" : "Unacknowledge", `alarm #${id} on ${path}`, false);
    if (answer === null) return;
    try {
      const result = await post(`/api/v1/${verb}`, answer.comment ? { ids: [id], comment: answer.comment } : { ids: [id] });
      toast(result.message || `${verb} sent`);
    } catch (error) { toast(`${verb}: ${error.message}`, true); }
    wantBook(); // the hub answered after it applied it: the next listing has it
  }
  async function shelve(path) {
    const node = state.nodes.get(path);
    const prefix = node && node.kind !== "point" ? `${path}/` : path;
    const answer = await ask("Shelve", `${prefix}: no notifications, out of the attention rollup`, true);
    if (answer === null) return;
    const body = answer.duration === "until_normal" ? { prefix, mode: "until_normal", comment: answer.comment }
      : { prefix, mode: "timed", duration_s: Number(answer.duration), comment: answer.comment };
    try { const result = await post("/api/v1/shelve", body); toast(result.message || "shelved"); } catch (error) { toast(`shelve: ${error.message}`, true); }
    wantBook();
  }
  async function unshelve(id) {
    try { const result = await post("/api/v1/unshelve", { id }); toast(result.message || "unshelved"); } catch (error) { toast(`unshelve: ${error.message}`, true); }
    wantBook();
  }

  // ------------------------------------------------------------------ events

  function onAction(event) {
    const button = event.target.closest("button.actbutton");
    if (!button) return false;
    const id = Number(button.dataset.id);
    if (button.classList.contains("ack")) ackAlarm(id, button.dataset.path, "ack");
    else if (button.classList.contains("unack")) ackAlarm(id, button.dataset.path, "unack");
    else if (button.classList.contains("shelve")) shelve(button.dataset.path);
    else if (button.classList.contains("unshelve")) unshelve(id);
    return true;
  }
  function toggle(path, open) {
    const memo = new Map();
    const current = isExpanded(path, summarize(path, memo));
    state.expanded.set(path, open === undefined ? !current : open);
    markDirty();
  }
  function move(step) {
    const list = state.visible;
    if (!list.length) return;
    let index = list.indexOf(state.selected);
    index = index < 0 ? 0 : Math.min(list.length - 1, Math.max(0, index + step));
    select(list[index]);
    requestAnimationFrame(() => { const row = document.querySelector(".row.selected"); if (row) row.scrollIntoView({ block: "nearest" }); });
  }
  function setup() {
    if (KIOSK) document.body.classList.add("kiosk");
    if (START_PREFIX) state.selected = START_PREFIX.replace(/\/$/, "");
    // The tree is rendered anew with every batch of deltas (rows replaced), so a press and a release can
    // land on two elements of one row: the element pressed is gone, and the browser sends no click (it was
    // lost). So a release over the same row (re-rendered) while the row pressed is gone counts as its click.
    let pressed = null, released = false;
    const act = (path, twisty) => { if (twisty) toggle(path); else select(path); };
    $("tree").addEventListener("pointerdown", (event) => {
      const row = event.target.closest(".row");
      pressed = row ? { row, path: row.dataset.path, twisty: event.target.classList.contains("twisty") } : null;
      released = false;
    });
    $("tree").addEventListener("pointerup", (event) => {
      const was = pressed;
      pressed = null;
      if (!was || was.row.isConnected) return;  // the row pressed is still there: its click comes as usual
      const now = event.target.closest(".row");
      if (now && now.dataset.path === was.path) { released = true; act(was.path, was.twisty); }
    });
    $("tree").addEventListener("click", (event) => {
      if (released) { released = false; return; }  // (done at the release: never twice, a twisty not undone)
      const row = event.target.closest(".row");
      if (row) act(row.dataset.path, event.target.classList.contains("twisty"));
    });
    $("tree").addEventListener("dblclick", (event) => { const row = event.target.closest(".row"); if (row) toggle(row.dataset.path); });
    $("alarmrows").addEventListener("click", (event) => {
      if (onAction(event)) return;
      const row = event.target.closest("tr"); if (row) select(row.dataset.path);
    });
    $("detailactions").addEventListener("click", onAction);
    $("detailclose").onclick = () => { state.selected = null; renderDetail(false); markDirty(); };
    $("filter").addEventListener("input", (event) => {
      state.filter = event.target.value.trim().toLowerCase();
      state.filterSegments = state.filter.split("/").filter((s) => s !== "");
      if (!state.filterSegments.length) state.filter = "";
      markDirty();
    });
    $("expandall").onclick = () => { state.expandAll = true; state.expanded.clear(); markDirty(); };
    $("collapseall").onclick = () => { state.expandAll = false; state.expanded.clear(); markDirty(); };
    $("helpbutton").onclick = () => $("help").showModal();
    $("loginform").addEventListener("submit", async (event) => {
      event.preventDefault();
      try {
        await post("/api/v1/login", { user: $("loginuser").value, password: $("loginpass").value });
        $("loginpass").value = "";
        await loadSession();
        toast(`logged in as ${state.session.user} (${state.session.role})`);
        connect(); // (a stream open already subscribes again: the same tree, now with the user's buttons)
        if (state.selected) renderDetail(true);
      } catch (error) { toast(`login: ${error.message}`, true); }
    });
    $("logout").onclick = async () => {
      try { await post("/api/v1/logout", {}); } catch (e) { /* gone anyway */ }
      await loadSession();
      if (mustLogIn() && socket) socket.close(); // private reads: the stream ends with the session
    };
    document.addEventListener("keydown", (event) => {
      const typing = ["INPUT", "TEXTAREA"].includes(document.activeElement.tagName);
      if (document.querySelector("dialog[open]")) return;
      if (event.key === "Escape") {
        if (typing) { $("filter").value = ""; state.filter = ""; document.activeElement.blur(); markDirty(); return; }
        state.selected = null; renderDetail(false); markDirty(); return;
      }
      if (typing || event.ctrlKey || event.metaKey || event.altKey) return;
      const node = state.selected ? state.nodes.get(state.selected) : null;
      switch (event.key) {
        case "/": event.preventDefault(); $("filter").focus(); break;
        case "j": case "ArrowDown": event.preventDefault(); move(1); break;
        case "k": case "ArrowUp": event.preventDefault(); move(-1); break;
        case "ArrowRight": if (state.selected) toggle(state.selected, true); break;
        case "ArrowLeft": if (state.selected) toggle(state.selected, false); break;
        case "Enter": if (state.selected) toggle(state.selected); break;
        case "a": if (node && node.alarm && mayAct()) ackAlarm(node.alarm.id, node.path, "ack"); break;
        case "s": if (node && mayAct()) shelve(node.path); break;
        case "u": { const first = alarmRows().find((row) => row.alarm && isOpen(row.alarm)); if (first) select(first.path); break; }
        case "e": $("expandall").click(); break;
        case "c": $("collapseall").click(); break;
        case "?": $("help").showModal(); break;
        default: break;
      }
    });
    // A hidden tab does not ask: it asks once it is shown again.
    setInterval(() => { if (!document.hidden) wantBook(); }, BOOK_EVERY_MS);
    document.addEventListener("visibilitychange", () => { if (!document.hidden) wantBook(); });
    loadSession().then(connect);
  }
  document.addEventListener("DOMContentLoaded", setup);
})();
