// The replog web console: one page over the HTTP API (same origin, same TLS and ACL).
// No build step and no dependencies. Every string the server sends is put in the page as
// text (textContent, createTextNode), never as markup: a record holding <script> shows as text.

const POLL_MS = Number(globalThis.replogPollMs) || 2000; // a test may set replogPollMs first
const HISTORY = 60; // points kept for a sparkline or chart
const PAGE_RECORDS = 50;
const KEY_WINDOW = 1000; // records a search by key scans
const TAIL_ROWS = 200;

// -- DOM helpers ----------------------------------------------------------------------------

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "value") node.value = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, String(value));
  append(node, children);
  return node;
}

function table(headings, rows, attrs) {
  return el("table", attrs,
    el("thead", {}, el("tr", {}, headings.map((h) => el("th", {}, h)))),
    el("tbody", {}, rows));
}

function row(...cells) {
  return el("tr", {}, cells.map((c) => (c instanceof Node && c.tagName === "TD" ? c : el("td", {}, c))));
}

function num(n) {
  return n === null || n === undefined ? "–" : Number(n).toLocaleString("en-US");
}

function bytes(n) {
  if (n === null || n === undefined) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  let v = Number(n);
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i += 1; }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

function duration(ms) {
  const n = Number(ms);
  if (!Number.isFinite(n) || n < 0) return "forever";
  const units = [[86400000, "d"], [3600000, "h"], [60000, "min"], [1000, "s"]];
  for (const [size, unit] of units) if (n >= size && n % size === 0) return `${n / size} ${unit}`;
  return `${n} ms`;
}

function link(href, text) { return el("a", { href }, text); }

function enc(s) { return encodeURIComponent(s); }

// -- the API --------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, code, message) { super(message); this.status = status; this.code = code; }
}

async function api(path, options = {}) {
  const init = { method: options.method || "GET", headers: { Accept: "application/json" } };
  if (options.body !== undefined) {
    init.body = JSON.stringify(options.body);
    init.headers["Content-Type"] = "application/json";
  }
  const response = await fetch(path, init);
  if (response.status === 204) return null;
  let body = null;
  try { body = await response.json(); } catch { body = null; }
  if (!response.ok) {
    const err = body && body.error ? body.error : { code: "HTTP_" + response.status, message: response.statusText };
    throw new ApiError(response.status, err.code, `${err.code}: ${err.message}`);
  }
  return body;
}

function b64encode(data) {
  const view = typeof data === "string" ? new TextEncoder().encode(data) : data;
  let text = "";
  for (let i = 0; i < view.length; i += 0x8000) text += String.fromCharCode(...view.subarray(i, i + 0x8000));
  return btoa(text);
}

function b64decode(text) {
  const raw = atob(text || "");
  const out = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i += 1) out[i] = raw.charCodeAt(i);
  return out;
}

const utf8 = new TextDecoder("utf-8");

function asText(data) { return utf8.decode(data); }

function asHex(data) {
  return Array.from(data, (b) => b.toString(16).padStart(2, "0")).join(" ");
}

function shown(data, format) {
  if (format === "hex") return asHex(data);
  const text = asText(data);
  if (format === "json") {
    try { return JSON.stringify(JSON.parse(text), null, 2); } catch { return `(not JSON) ${text}`; }
  }
  return text;
}

// -- who the caller is ----------------------------------------------------------------------

let me = { identity: null, acl: false, may: {} };

async function whoami(query = "") {
  return api("/v1/whoami" + query);
}

function showIdentity() {
  const target = document.getElementById("whoami");
  const parts = [me.identity ? `signed in as ${me.identity}` : "no client identity"];
  parts.push(me.acl ? (me.may.admin ? "admin" : "no admin rights") : "ACL off");
  target.textContent = parts.join(" · ");
}

// -- charts (inline SVG) --------------------------------------------------------------------

function sparkline(values, width = 120, height = 24) {
  const box = svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, class: "spark", role: "img" });
  if (values.length < 2) return box;
  const top = Math.max(...values, 1);
  const step = width / Math.max(values.length - 1, 10); // fills the width once 11 points exist
  const start = width - step * (values.length - 1);
  const points = values.map((v, i) => `${(start + i * step).toFixed(1)},${(height - 1 - (v / top) * (height - 2)).toFixed(1)}`);
  box.append(svg("polyline", { points: points.join(" "), fill: "none", class: "line" }));
  box.append(svg("title", {}, `max ${top.toFixed(1)}/s, now ${values[values.length - 1].toFixed(1)}/s`));
  return box;
}

function lineChart(values, label, width = 480, height = 120) {
  const box = svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, class: "chart", role: "img" });
  const top = Math.max(...values, 1);
  const left = 48;
  const plot = width - left - 4;
  box.append(svg("line", { x1: left, y1: height - 14, x2: width - 4, y2: height - 14, class: "axis" }));
  box.append(svg("line", { x1: left, y1: 4, x2: left, y2: height - 14, class: "axis" }));
  box.append(svg("text", { x: left - 4, y: 12, "text-anchor": "end", class: "tick" }, num(top)));
  box.append(svg("text", { x: left - 4, y: height - 14, "text-anchor": "end", class: "tick" }, "0"));
  box.append(svg("text", { x: left, y: height - 2, class: "tick" }, label));
  if (values.length >= 2) {
    const step = plot / Math.max(values.length - 1, 10);
    const start = left + plot - step * (values.length - 1);
    const points = values.map((v, i) => `${(start + i * step).toFixed(1)},${(4 + (1 - v / top) * (height - 18)).toFixed(1)}`);
    box.append(svg("polyline", { points: points.join(" "), fill: "none", class: "line" }));
  }
  return box;
}

function bars(items, width = 480) {
  // items: [{label, value}]; one horizontal bar each
  const height = 18 * items.length + 4;
  const box = svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, class: "chart", role: "img" });
  const top = Math.max(...items.map((i) => i.value), 1);
  items.forEach((item, i) => {
    const y = 2 + i * 18;
    box.append(svg("text", { x: 0, y: y + 12, class: "tick" }, item.label));
    box.append(svg("rect", { x: 120, y, width: Math.max(1, (item.value / top) * (width - 200)), height: 14, class: "bar" }));
    box.append(svg("text", { x: 124 + (item.value / top) * (width - 200), y: y + 12, class: "tick" }, num(item.value)));
  });
  return box;
}

// Rates from successive counters: key -> [{t, count}], kept across polls.
const counters = new Map();

function rates(key, count) {
  const now = performance.now();
  const seen = counters.get(key) || [];
  seen.push({ t: now, count });
  while (seen.length > HISTORY + 1) seen.shift();
  counters.set(key, seen);
  const out = [];
  for (let i = 1; i < seen.length; i += 1) {
    const dt = (seen[i].t - seen[i - 1].t) / 1000;
    out.push(dt > 0 ? Math.max(0, seen[i].count - seen[i - 1].count) / dt : 0);
  }
  return out;
}

function series(key, value) {
  const seen = counters.get(key) || [];
  seen.push(value);
  while (seen.length > HISTORY) seen.shift();
  counters.set(key, seen);
  return seen;
}

// -- pages and the router -------------------------------------------------------------------

let cleanups = [];

function onLeave(fn) { cleanups.push(fn); }

function poll(fn) {
  let stopped = false;
  let timer = null;
  const tick = async () => {
    if (stopped) return;
    await fn();
    if (!stopped) timer = setTimeout(tick, POLL_MS);
  };
  onLeave(() => { stopped = true; clearTimeout(timer); });
  tick();
}

function page(title, ...children) {
  const main = document.getElementById("main");
  main.replaceChildren(el("h1", {}, title), ...children);
  return main;
}

function errorBox(err) {
  return el("p", { class: "error", role: "alert" }, err instanceof Error ? err.message : String(err));
}

function slot(id) { return el("div", { id }); }

function fill(node, ...children) { node.replaceChildren(...children.flat()); }

async function guarded(node, fn) {
  try { await fn(); } catch (err) { fill(node, errorBox(err)); }
}

function route() {
  for (const fn of cleanups) fn();
  cleanups = [];
  const [path, queryText] = location.hash.replace(/^#\/?/, "").split("?");
  const parts = path.split("/").filter(Boolean).map((p) => {
    try { return decodeURIComponent(p); } catch { return p; }
  });
  const query = new URLSearchParams(queryText || "");
  for (const a of document.querySelectorAll("nav a")) {
    a.classList.toggle("active", a.dataset.page === (parts[0] || "cluster"));
  }
  if (parts[0] === "topics" && parts.length === 3) return browserPage(parts[1], Number(parts[2]), query);
  if (parts[0] === "topics" && parts.length === 2) return topicPage(parts[1]);
  if (parts[0] === "topics") return topicsPage();
  if (parts[0] === "groups" && parts.length === 2) return groupPage(parts[1]);
  if (parts[0] === "groups") return groupsPage();
  if (parts[0] === "produce") return producePage(query);
  return clusterPage();
}

// -- cluster --------------------------------------------------------------------------------

const UNREACHABLE_S = 5;

function clusterPage() {
  const summary = slot("cluster-summary");
  const members = slot("cluster-members");
  const nodes = slot("cluster-nodes");
  const actions = slot("cluster-actions");
  page("Cluster", summary, members, nodes, actions);
  if (me.may.cluster_admin) fill(actions, transferForm());
  poll(() => guarded(summary, async () => {
    const [status, ready] = await Promise.all([api("/v1/cluster?view=leader"), readiness()]);
    const asked = status.asked || { node_id: status.node_id, role: status.role };
    fill(summary, el("dl", { class: "facts" },
      fact("node", asked.node_id), fact("leader", status.leader_id || "none known"),
      fact("role", asked.role), fact("term", num(status.term)),
      fact("commit index", num(status.commit_index)),
      fact("view", status.node_id === asked.node_id ? "this node's" : `the leader's (${status.node_id})`),
      fact("health", ready)));
    fill(members, el("h2", {}, "Members"), table(
      ["id", "address", "role", "voter", "match index", "lag", "last contact", ""],
      status.members.map((m) => memberRow(status, m)), { id: "members" }));
    if (status.nodes && status.nodes.length) {
      fill(nodes, el("h2", {}, "Nodes"), table(["id", "address", "state", "partitions"],
        status.nodes.map((n) => row(n.id, n.rpc_addr, n.state, num(n.partitions)))),
      status.moves && status.moves.length ? [el("h2", {}, "Moves in progress"), table(
        ["topic", "partition", "replicas", "target"],
        status.moves.map((m) => row(m.topic, m.partition, m.replicas.join(", "), m.target.join(", "))))] : []);
    }
  }));
}

function fact(name, value) { return [el("dt", {}, name), el("dd", {}, value)]; }

async function readiness() {
  const response = await fetch("/readyz");
  return response.ok ? el("span", { class: "ok" }, "ready") : el("span", { class: "bad" }, "not ready");
}

function memberRow(status, m) {
  const self = m.id === status.node_id;  // the node whose view this is
  const asked = status.asked ? status.asked.node_id : status.node_id;
  const silent = !self && (m.last_contact_s === null ? status.members.length > 1 && status.role === "leader" : m.last_contact_s > UNREACHABLE_S);
  const contact = self ? (m.id === asked ? "this node" : "the leader (this view)") : m.last_contact_s === null ? "never" : `${m.last_contact_s.toFixed(1)} s ago`;
  const tr = row(m.id, m.rpc_addr, m.is_leader ? "leader" : m.role, m.voter ? "yes" : "no",
    num(m.match_index), num(m.lag), contact,
    silent ? el("span", { class: "bad" }, "unreachable") : el("span", { class: "ok" }, "ok"));
  if (silent) tr.classList.add("unreachable");
  return tr;
}

function transferForm() {
  const out = el("span", { class: "result" });
  const target = el("input", { name: "id", placeholder: "node id (empty: most caught up)", size: 30 });
  const form = el("form", { id: "transfer-leader", class: "admin", onsubmit: async (ev) => {
    ev.preventDefault();
    try {
      const answer = await api("/v1/cluster:transfer-leader", { method: "POST", body: target.value ? { id: target.value } : {} });
      out.textContent = `leader is now ${answer.leader_id}`;
    } catch (err) { out.textContent = err.message; }
  } }, el("h2", {}, "Transfer leadership"), target, " ", el("button", { type: "submit" }, "Transfer leader"), " ", out);
  return form;
}

// -- topics ---------------------------------------------------------------------------------

function topicsPage() {
  const list = slot("topics-list");
  const create = slot("topic-create");
  page("Topics", list, create);
  if (me.may.admin) fill(create, createTopicForm());
  poll(() => guarded(list, async () => {
    const { topics } = await api("/v1/topics?view=summary");
    fill(list, topics.length === 0 ? el("p", { class: "muted" }, "No topics.") : table(
      ["topic", "partitions", "replication", "next offsets (sum)", "size", "retention", "records/s"],
      topics.map((t) => {
        const rate = rates("topic:" + t.name, t.next_offset_sum);
        return row(link(`#/topics/${enc(t.name)}`, t.name), num(t.partition_count), num(t.replication_factor),
          num(t.next_offset_sum), bytes(t.size_bytes), retention(t.config),
          el("td", { class: "rate" }, sparkline(rate), " ", rate.length ? rate[rate.length - 1].toFixed(1) : "–"));
      }), { id: "topics" }));
  }));
}

function retention(config) {
  const time = config.retention_ms ?? config["retention.ms"];
  const size = config.retention_bytes ?? config["retention.bytes"];
  const parts = [];
  if (time !== undefined && Number(time) >= 0) parts.push(duration(time));
  if (size !== undefined && Number(size) >= 0) parts.push(bytes(size));
  return parts.length ? parts.join(", ") : "forever";
}

function createTopicForm() {
  const out = el("span", { class: "result" });
  const name = el("input", { name: "name", required: true, pattern: "[A-Za-z0-9._\\-]+", placeholder: "name" });
  const partitions = el("input", { name: "partitions", type: "number", min: 1, value: "1" });
  const rf = el("input", { name: "replication_factor", type: "number", min: 0, value: "0", title: "0: the server's default" });
  const keep = el("input", { name: "retention_ms", type: "number", min: -1, placeholder: "retention ms (empty: default)" });
  const form = el("form", { id: "create-topic", class: "admin", onsubmit: async (ev) => {
    ev.preventDefault();
    const body = { name: name.value, partitions: Number(partitions.value), replication_factor: Number(rf.value) };
    if (keep.value !== "") body.config = { retention_ms: keep.value };
    try {
      const topic = await api("/v1/topics", { method: "POST", body });
      out.replaceChildren("created ", link(`#/topics/${enc(topic.name)}`, topic.name));
      name.value = "";
    } catch (err) { out.textContent = err.message; }
  } }, el("h2", {}, "Create a topic"), label("name", name), label("partitions", partitions),
  label("replication factor", rf), label("retention", keep), el("button", { type: "submit" }, "Create topic"), " ", out);
  return form;
}

function label(text, input) { return el("label", {}, text, " ", input); }

function topicPage(name) {
  const facts = slot("topic-facts");
  const parts = slot("topic-partitions");
  const admin = slot("topic-admin");
  page(`Topic ${name}`, facts, parts, admin);
  whoami(`?topic=${enc(name)}`).then((who) => {
    if (who.topic && who.topic.admin) fill(admin, deleteTopicForm(name));
  }).catch(() => {}).finally(() => { admin.dataset.checked = "yes"; });
  poll(() => guarded(parts, async () => {
    const topic = await api(`/v1/topics/${enc(name)}`);
    const total = topic.partitions.reduce((s, p) => s + p.next_offset, 0);
    const rate = rates("topic:" + name, total);
    fill(facts, el("dl", { class: "facts" }, fact("partitions", num(topic.partitions.length)),
      fact("replication factor", num(topic.replication_factor)), fact("retention", retention(topic.config)),
      fact("records/s", [sparkline(rate, 240, 32), " ", rate.length ? rate[rate.length - 1].toFixed(1) : "–"]),
      Object.entries(topic.config).map(([k, v]) => fact(k, v))));
    fill(parts, table(["partition", "leader", "replicas", "in sync", "lowest offset", "next offset", "size", "records/s", ""],
      topic.partitions.map((p) => {
        const r = rates(`part:${name}/${p.partition}`, p.next_offset);
        const lagging = p.replicas.filter((id) => !p.in_sync.includes(id));
        return row(p.partition, p.leader || el("span", { class: "bad" }, "none"), p.replicas.join(", "),
          lagging.length ? el("span", { class: "bad", title: "not in sync: " + lagging.join(", ") }, p.in_sync.join(", ") || "none") : p.in_sync.join(", "),
          num(p.lowest_offset), num(p.next_offset), bytes(p.size_bytes), r.length ? r[r.length - 1].toFixed(1) : "–",
          link(`#/topics/${enc(name)}/${p.partition}`, "browse"));
      }), { id: "partitions" }));
  }));
}

function deleteTopicForm(name) {
  const out = el("span", { class: "result" });
  const confirm = el("input", { name: "confirm", placeholder: `type ${name} to confirm` });
  return el("form", { id: "delete-topic", class: "admin danger", onsubmit: async (ev) => {
    ev.preventDefault();
    if (confirm.value !== name) { out.textContent = "type the topic's name to confirm"; return; }
    try {
      await api(`/v1/topics/${enc(name)}`, { method: "DELETE" });
      location.hash = "#/topics";
    } catch (err) { out.textContent = err.message; }
  } }, el("h2", {}, "Delete this topic and its data"), confirm, " ", el("button", { type: "submit" }, "Delete topic"), " ", out);
}

// -- the message browser --------------------------------------------------------------------

function browserPage(topic, partition, query) {
  const base = `/v1/topics/${enc(topic)}/partitions/${partition}/records`;
  const mode = el("select", { name: "mode" }, ["offset", "time", "key"].map((m) => el("option", { value: m }, "by " + m)));
  const at = el("input", { name: "at", placeholder: "offset", size: 28 });
  const format = el("select", { name: "format" }, ["text", "json", "hex"].map((f) => el("option", { value: f }, f)));
  const tail = el("button", { type: "button", id: "tail" }, "Live tail");
  const info = el("p", { class: "muted", id: "browse-info" });
  const body = el("tbody", {});
  const results = el("table", { id: "records" }, el("thead", {}, el("tr", {},
    ["offset", "time", "key", "value", "headers"].map((h) => el("th", {}, h)))), body);
  let shownRecords = [];
  const render = () => body.replaceChildren(...shownRecords.map((r) => recordRow(r, format.value)));
  format.addEventListener("change", render);
  mode.addEventListener("change", () => {
    at.placeholder = { offset: "offset", time: "time (ISO 8601 or epoch ms)", key: "key (text)" }[mode.value];
  });
  if (query.get("offset")) at.value = query.get("offset");
  const form = el("form", { id: "browse", onsubmit: async (ev) => {
    ev.preventDefault();
    stopTail();
    try {
      const found = await search(base, await bounds(topic, partition), mode.value, at.value.trim());
      shownRecords = found.records;
      info.textContent = found.note;
      render();
    } catch (err) { info.textContent = err.message; }
  } }, mode, " ", at, " ", el("button", { type: "submit" }, "Go"), " value as ", format, " ", tail);
  let source = null;
  const stopTail = () => {
    if (source) { source.close(); source = null; tail.textContent = "Live tail"; tail.classList.remove("on"); }
  };
  onLeave(stopTail);
  tail.addEventListener("click", async () => {
    if (source) { stopTail(); return; }
    try {
      const end = (await bounds(topic, partition)).next;
      source = new EventSource(`${base}:stream?offset=${end}`);
      tail.textContent = "Stop tail";
      tail.classList.add("on");
      shownRecords = [];
      render();
      info.textContent = `tailing from offset ${end}…`;
      source.addEventListener("record", (ev) => {
        const record = JSON.parse(ev.data);
        shownRecords.push(record);
        if (shownRecords.length > TAIL_ROWS) shownRecords.shift();
        body.append(recordRow(record, format.value));
        if (body.children.length > TAIL_ROWS) body.firstElementChild.remove();
        info.textContent = `tailing: last offset ${record.offset}`;
      });
      source.onerror = () => { info.textContent = "the stream ended (retrying)…"; };
    } catch (err) { info.textContent = err.message; }
  });
  page(`${topic} / partition ${partition}`, el("p", {}, link(`#/topics/${enc(topic)}`, `← topic ${topic}`),
    " · ", link(`#/produce?topic=${enc(topic)}&partition=${partition}`, "produce here")), form, info, results);
  if (query.get("offset")) form.requestSubmit();
  else bounds(topic, partition).then((range) => {
    at.value = String(Math.max(range.lowest, range.next - PAGE_RECORDS));
    form.requestSubmit();
  }).catch((err) => { info.textContent = err.message; });
}

async function bounds(topic, partition) {
  // The partition's readable range [lowest, next) from the topic's description.
  const described = await api(`/v1/topics/${enc(topic)}`);
  const p = described.partitions.find((x) => x.partition === partition);
  if (!p) throw new Error(`topic ${topic} has no partition ${partition}`);
  return { lowest: p.lowest_offset, next: p.next_offset };
}

async function readAt(base, offset, count) {
  return api(`${base}?offset=${offset}&max_records=${count}`);
}

async function search(base, range, mode, text) {
  if (mode === "offset") {
    const offset = text === "" ? range.lowest : Number(text);
    if (!Number.isInteger(offset) || offset < 0) throw new Error("the offset must be a whole number");
    const got = await readAt(base, offset, PAGE_RECORDS);
    return { records: got.records, note: `offsets ${offset}… (${got.records.length} records; the partition ends at ${got.high_watermark})` };
  }
  if (mode === "time") {
    const ms = /^\d+$/.test(text) ? Number(text) : Date.parse(text);
    if (!Number.isFinite(ms)) throw new Error("give the time as ISO 8601 (2024-05-01T12:00:00Z) or epoch milliseconds");
    const offset = await firstAtOrAfter(base, range, ms);
    const got = await readAt(base, offset, PAGE_RECORDS);
    return { records: got.records, note: `first record at or after ${new Date(ms).toISOString()}: offset ${offset}` };
  }
  const end = range.next;
  const start = Math.max(range.lowest, end - KEY_WINDOW);
  const found = [];
  for (let offset = start; offset < end;) {
    const got = await readAt(base, offset, 500);
    if (got.records.length === 0 && got.next_offset <= offset) break;
    for (const r of got.records) if (r.key !== undefined && asText(b64decode(r.key)) === text) found.push(r);
    offset = got.next_offset;
  }
  return { records: found, note: `${found.length} records with key ${JSON.stringify(text)} in offsets ${start}..${end - 1} (the last ${KEY_WINDOW} at most)` };
}

async function firstAtOrAfter(base, range, ms) {
  // Append times do not go down along a partition: a binary search over one-record reads.
  let lo = range.lowest;
  let hi = range.next;
  while (lo < hi) {
    const mid = Math.floor((lo + hi) / 2);
    const got = await readAt(base, mid, 1);
    const r = got.records[0];
    if (!r || r.offset >= hi || r.timestamp_ms >= ms) hi = mid;
    else lo = r.offset + 1;
  }
  return lo;
}

function isoTime(ms) {
  const when = new Date(ms);
  return Number.isNaN(when.getTime()) ? String(ms) : when.toISOString();
}

function recordRow(r, format) {
  const value = b64decode(r.value);
  const headers = (r.headers || []).map((h) => el("div", {}, el("b", {}, h.key), "=", shown(b64decode(h.value), format)));
  return el("tr", { "data-offset": r.offset },
    el("td", {}, num(r.offset)), el("td", { class: "time" }, isoTime(r.timestamp_ms)),
    el("td", { class: "key" }, r.key === undefined ? el("span", { class: "muted" }, "–") : shown(b64decode(r.key), format === "json" ? "text" : format)),
    el("td", { class: "value" }, el("pre", {}, shown(value, format))),
    el("td", { class: "headers" }, headers));
}

// -- consumer groups ------------------------------------------------------------------------

function groupsPage() {
  const list = slot("groups-list");
  page("Consumer groups", list);
  poll(() => guarded(list, async () => {
    const { groups } = await api("/v1/groups");
    fill(list, groups.length === 0 ? el("p", { class: "muted" }, "No groups.") : table(["group", "state", "members"],
      groups.map((g) => row(link(`#/groups/${enc(g.group)}`, g.group), g.state, num(g.members))), { id: "groups" }));
  }));
}

function groupPage(name) {
  const facts = slot("group-facts");
  const chart = slot("group-chart");
  const members = slot("group-members");
  const offsets = slot("group-offsets");
  const admin = slot("group-admin");
  page(`Group ${name}`, facts, chart, members, offsets, admin);
  whoami(`?group=${enc(name)}`).then((who) => {
    if (who.group && who.group.admin) fill(admin, resetForm(name), deleteGroupForm(name));
  }).catch(() => {}).finally(() => { admin.dataset.checked = "yes"; });
  poll(() => guarded(facts, async () => {
    const g = await api(`/v1/groups/${enc(name)}`);
    const total = g.offsets.reduce((s, o) => s + (o.lag > 0 ? o.lag : 0), 0);
    const history = series("lag:" + name, total);
    fill(facts, el("dl", { class: "facts" }, fact("state", g.state), fact("generation", num(g.generation)),
      fact("assignor", g.assignor || "–"), fact("members", num(g.members.length)),
      fact("total lag", el("span", { id: "total-lag" }, num(total)))));
    fill(chart, el("h2", {}, "Lag"), lineChart(history, `total lag, the last ${Math.round((POLL_MS * history.length) / 1000)} s`),
      g.offsets.length ? bars(g.offsets.map((o) => ({ label: `${o.topic}/${o.partition}`, value: Math.max(0, o.lag) }))) : []);
    fill(members, el("h2", {}, "Members"), g.members.length === 0 ? el("p", { class: "muted" }, "No members.") : table(
      ["member", "epoch", "topics", "assignment"],
      g.members.map((m) => row(m.id, m.epoch, m.topics.join(", "), m.assignment.map((tp) => `${tp.topic}/${tp.partition}`).join(", ")))));
    fill(offsets, el("h2", {}, "Committed offsets"), table(["topic", "partition", "committed", "end offset", "lag"],
      g.offsets.map((o) => row(o.topic, o.partition, num(o.committed), num(o.end_offset), el("td", { class: "lag" }, num(o.lag)))),
      { id: "offsets" }));
  }));
}

function resetForm(name) {
  const out = el("span", { class: "result" });
  const topic = el("input", { name: "topic", placeholder: "topic", required: true });
  const to = el("select", { name: "to" }, [["earliest", "to earliest"], ["latest", "to latest"], ["offset", "to offset"]].map(([v, t]) => el("option", { value: v }, t)));
  const offset = el("input", { name: "offset", type: "number", min: 0, placeholder: "offset" });
  return el("form", { id: "reset-offsets", class: "admin", onsubmit: async (ev) => {
    ev.preventDefault();
    try {
      const t = await api(`/v1/topics/${enc(topic.value)}`);
      const offsets = t.partitions.map((p) => ({
        topic: t.name, partition: p.partition,
        offset: to.value === "earliest" ? p.lowest_offset : to.value === "latest" ? p.next_offset
          : Math.min(Math.max(Number(offset.value), p.lowest_offset), p.next_offset),
      }));
      await api(`/v1/groups/${enc(name)}/offsets`, { method: "POST", body: { member_id: "", member_epoch: 0, offsets } });
      out.textContent = `reset ${offsets.length} partitions`;
    } catch (err) { out.textContent = err.message; }
  } }, el("h2", {}, "Reset offsets (the group must have no members)"), topic, " ", to, " ", offset, " ",
  el("button", { type: "submit" }, "Reset offsets"), " ", out);
}

function deleteGroupForm(name) {
  const out = el("span", { class: "result" });
  return el("form", { id: "delete-group", class: "admin danger", onsubmit: async (ev) => {
    ev.preventDefault();
    try { await api(`/v1/groups/${enc(name)}`, { method: "DELETE" }); location.hash = "#/groups"; } catch (err) { out.textContent = err.message; }
  } }, el("button", { type: "submit" }, "Delete group"), " ", out);
}

// -- produce --------------------------------------------------------------------------------

function producePage(query) {
  const out = el("p", { class: "result", id: "produce-result", role: "status" });
  const topic = el("input", { name: "topic", required: true, list: "topic-names", value: query.get("topic") || "" });
  const names = el("datalist", { id: "topic-names" });
  const partition = el("input", { name: "partition", type: "number", min: 0, placeholder: "any (by key)", value: query.get("partition") || "" });
  const key = el("input", { name: "key", placeholder: "none" });
  const value = el("textarea", { name: "value", rows: 6, cols: 60 });
  const encoding = el("select", { name: "encoding" }, el("option", { value: "text" }, "text (UTF-8)"), el("option", { value: "base64" }, "base64"));
  const headers = el("div", { id: "headers" });
  const addHeader = () => headers.append(el("div", { class: "header" },
    el("input", { name: "header-key", placeholder: "header" }), " = ", el("input", { name: "header-value", placeholder: "value" })));
  const form = el("form", { id: "produce", onsubmit: async (ev) => {
    ev.preventDefault();
    try {
      const record = { value: encoding.value === "base64" ? value.value.trim() : b64encode(value.value) };
      if (key.value !== "") record.key = b64encode(key.value);
      const hs = Array.from(headers.children).map((d) => d.querySelectorAll("input"))
        .filter(([k]) => k.value !== "").map(([k, v]) => ({ key: k.value, value: b64encode(v.value) }));
      if (hs.length) record.headers = hs;
      const where = partition.value === "" ? `/v1/topics/${enc(topic.value)}/records`
        : `/v1/topics/${enc(topic.value)}/partitions/${Number(partition.value)}/records`;
      const answer = await api(where, { method: "POST", body: { record } });
      const p = answer.partition ?? Number(partition.value);
      out.replaceChildren(`appended to partition ${p} at offset ${answer.offset} `,
        link(`#/topics/${enc(topic.value)}/${p}?offset=${answer.offset}`, "show it"));
    } catch (err) { out.replaceChildren(errorBox(err)); }
  } },
  label("topic", topic), names, label("partition", partition), label("key", key),
  el("label", { class: "block" }, "value ", encoding, value),
  el("fieldset", {}, el("legend", {}, "headers"), headers, el("button", { type: "button", onclick: addHeader }, "Add header")),
  el("button", { type: "submit" }, "Produce"));
  addHeader();
  page("Produce a record", form, out);
  api("/v1/topics?view=summary").then(({ topics }) => names.replaceChildren(...topics.map((t) => el("option", { value: t.name })))).catch(() => {});
}

// -- start ----------------------------------------------------------------------------------

async function start() {
  try { me = await whoami(); } catch (err) {
    me = { identity: null, acl: true, may: {} };
    document.getElementById("main").replaceChildren(errorBox(err));
  }
  showIdentity();
  window.addEventListener("hashchange", route);
  route();
}

start();
