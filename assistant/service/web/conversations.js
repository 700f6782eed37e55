// The Conversations view: past conversations listed and searched; one opened with its audio,
// both sides of its transcript following playback (click a line to hear it), its delay over
// time, and delete. Runs after app.js (its `api`, `$`, `token`, `maxDelayMs`, `clock`).
// The view is in the URL's fragment: #view=conversations&id=ID&t=SECONDS.
"use strict";

const HOLD_S = 0.3;  // a line stays lit this long after its last word
const SEARCH_WAIT_MS = 250;  // typing pauses this long before a search is sent
const SVG = "http://www.w3.org/2000/svg";
let opened = null;  // {id, lines: [{start, end, item}], latency, duration}
let searchTimer = null;
let deletedNote = "";

function viewParams() {
  return new URLSearchParams(location.hash.slice(1));
}

function go(params) {
  location.hash = new URLSearchParams(params).toString();
}

function stamp(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

// --- the view ------------------------------------------------------------------------------
function route() {
  const params = viewParams();
  const view = params.get("view") === "conversations" ? "conversations" : "live";
  $("view-live").classList.toggle("hidden", view !== "live");
  $("view-conversations").classList.toggle("hidden", view !== "conversations");
  $("tab-live").classList.toggle("current", view === "live");
  $("tab-conversations").classList.toggle("current", view === "conversations");
  if (view !== "conversations") return;
  loadList();
  const id = params.get("id");
  const at = Number(params.get("t")) || 0;
  if (!id) closeConversation();
  else if (!opened || opened.id !== id) openConversation(id, at);
  else if (params.has("t")) seek(at);
}

// --- the list ------------------------------------------------------------------------------
async function loadList() {
  const query = $("search").value.trim();
  const path = "/api/sessions" + (query ? "?q=" + encodeURIComponent(query) : "");
  try {
    const answer = await api("GET", path);
    if (query !== $("search").value.trim()) return;  // a newer search is on its way
    showList(answer.conversations, query);
  } catch (e) {
    $("list-note").textContent = "Cannot list the conversations: " + e.message;
  }
}

function showList(conversations, query) {
  const list = $("conversations");
  list.replaceChildren();
  for (const c of conversations) list.append(listItem(c));
  const n = conversations.length;
  let note = query ? `${n} conversation${n === 1 ? "" : "s"} with “${query}”`
                   : `${n} conversation${n === 1 ? "" : "s"}`;
  if (!query && n === 0) note = "No conversations yet: talk with `assistant chat` or Start.";
  $("list-note").textContent = note + deletedNote;
  deletedNote = "";
  markSelected();
}

function listItem(c) {
  const item = element("li", "conversation");
  item.dataset.id = c.id;
  const usable = !c.problems.some((p) => p.startsWith("not a conversation"));
  const head = element(usable ? "a" : "span", "head");
  if (usable) head.href = "#" + new URLSearchParams({ view: "conversations", id: c.id });
  const when = c.started ? new Date(c.started).toLocaleString() : c.id;
  head.append(element("span", "when", when));
  if (c.duration_s !== null) head.append(element("span", "length dim", clock(c.duration_s)));
  if (c.voice) head.append(element("span", "model dim", `${c.voice} ${c.quant || ""}`));
  item.append(head);
  if (c.first_words) item.append(element("div", "words", c.first_words));
  if (c.recording) item.append(element("div", "badge listening", "being recorded"));
  for (const problem of c.problems) item.append(element("div", "problem", problem));
  for (const m of c.matches || []) {
    const link = element("a", "match " + m.speaker);
    link.href = "#" + new URLSearchParams({ view: "conversations", id: c.id, t: m.start });
    link.append(element("span", "at", stamp(m.start)), element("span", "", " " + m.text));
    item.append(link);
  }
  return item;
}

function markSelected() {
  for (const item of $("conversations").children) {
    item.classList.toggle("selected", opened !== null && item.dataset.id === opened.id);
  }
}

// --- one conversation ----------------------------------------------------------------------
async function openConversation(id, at) {
  closeConversation();
  opened = { id, lines: [], latency: [], duration: 0 };
  markSelected();
  $("pick").classList.add("hidden");
  $("opened").classList.remove("hidden");
  $("opened-title").textContent = id;
  let detail;
  try {
    detail = await api("GET", "/api/sessions/" + encodeURIComponent(id));
  } catch (e) {
    showOpenedError(e.message);
    return;
  }
  if (!opened || opened.id !== id) return;  // another one was opened meanwhile
  const c = detail.conversation;
  opened.duration = c.duration_s || 0;
  opened.latency = detail.latency;
  $("opened-title").textContent = c.started ? new Date(c.started).toLocaleString() : c.id;
  const meta = [c.id];
  if (c.duration_s !== null) meta.push(clock(c.duration_s));
  if (c.voice) meta.push(`${c.voice} ${c.quant || ""}`);
  if (c.delay_p50_ms !== null) {
    meta.push(`delay p50 ${c.delay_p50_ms.toFixed(0)} ms, p95 ${c.delay_p95_ms.toFixed(0)} ms`);
  }
  if (!c.transcribed) meta.push("your side is not transcribed yet: Moshi's side only");
  $("opened-meta").textContent = meta.join(" · ");
  $("opened-problems").replaceChildren(...c.problems.map((p) => element("li", "problem", p)));
  showLines(detail.lines);
  drawLatency();
  opened.audio = detail.audio;
  $("player").src = detail.audio;
  if (at) seek(at);
}

function closeConversation() {
  const player = $("player");
  player.pause();
  player.removeAttribute("src");
  player.load();  // ends the requests for the old audio
  opened = null;
  $("opened").classList.add("hidden");
  $("confirm").classList.add("hidden");
  $("opened-error").classList.add("hidden");
  $("audio-error").classList.add("hidden");
  $("pick").classList.remove("hidden");
  $("lines").replaceChildren();
  markSelected();
}

function showOpenedError(message) {
  $("opened-error").textContent = message;
  $("opened-error").classList.remove("hidden");
}

function showLines(lines) {
  const list = $("lines");
  list.replaceChildren();
  if (lines.length === 0) list.append(element("li", "dim", "(nothing was said)"));
  for (const line of lines) {
    const item = element("li", "line " + line.speaker);
    item.dataset.start = line.start;
    item.title = "play from " + stamp(line.start);
    item.append(element("span", "at", stamp(line.start)),
                element("span", "who", line.speaker === "user" ? "You" : "Moshi"),
                element("span", "text", line.text));
    item.tabIndex = 0;  // reachable from the keyboard: Enter plays from there too
    item.addEventListener("click", () => seek(line.start));
    item.addEventListener("keydown", (e) => {
      if (e.key === "Enter") seek(line.start);
    });
    list.append(item);
    opened.lines.push({ start: line.start, end: line.end, item });
  }
}

// Jump there (playing on if it was playing) and light the line at once.
function seek(seconds) {
  $("player").currentTime = seconds;
  follow(seconds);
}

// The lines being heard at `t` are lit; the first of them is kept in sight.
function follow(t) {
  if (!opened) return;
  let first = null;
  for (const line of opened.lines) {
    const now = line.start - 0.05 <= t && t < line.end + HOLD_S;
    if (now && !line.item.classList.contains("current") && first === null) first = line.item;
    line.item.classList.toggle("current", now);
  }
  if (first) first.scrollIntoView({ block: "nearest" });
  const playhead = $("latency-chart").querySelector(".playhead");
  if (playhead && opened.scale) {
    const x = opened.scale(t);
    playhead.setAttribute("x1", x);
    playhead.setAttribute("x2", x);
  }
}

// The delay's median and p95 over the conversation, the limit dashed, the playhead.
function drawLatency() {
  const svg = $("latency-chart");
  svg.replaceChildren();
  const points = opened.latency;
  const w = 560, h = 170, left = 36, right = 8, top = 10, bottom = 22;
  if (points.length === 0) {
    svg.append(svgNode("text", { x: left, y: h / 2, class: "label" }, "no delay was recorded"));
    opened.scale = null;
    return;
  }
  const end = Math.max(opened.duration, points[points.length - 1].t, 1);
  const high = Math.max(maxDelayMs, ...points.map((p) => p.delay_p95)) * 1.1;
  const x = (t) => left + (t / end) * (w - left - right);
  const y = (v) => h - bottom - (v / high) * (h - top - bottom);
  for (const tick of [0, high / 2, high]) {
    svg.append(svgNode("line", { x1: left, x2: w - right, y1: y(tick), y2: y(tick), class: "grid" }),
               svgNode("text", { x: 2, y: y(tick) + 4, class: "label" }, tick.toFixed(0)));
  }
  for (const [tick, anchor] of [[0, "start"], [end / 2, "middle"], [end, "end"]]) {
    svg.append(svgNode("text", { x: x(tick), y: h - 6, class: "label", "text-anchor": anchor },
                       stamp(tick)));
  }
  svg.append(svgNode("line", { x1: left, x2: w - right, y1: y(maxDelayMs), y2: y(maxDelayMs),
                               class: "limit" }));
  for (const key of ["delay_p50", "delay_p95"]) {
    const line = points.map((p) => `${x(p.t).toFixed(1)},${y(p[key]).toFixed(1)}`).join(" ");
    svg.append(svgNode("polyline", { points: line, class: key.replace("delay_", "") }));
  }
  svg.append(svgNode("line", { x1: left, x2: left, y1: top, y2: h - bottom, class: "playhead" }));
  opened.scale = x;
}

function svgNode(tag, attributes, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

async function deleteOpened() {
  if (!opened) return;
  const id = opened.id;
  const player = $("player");
  player.pause();
  player.removeAttribute("src");
  player.load();  // no request of ours may hold the folder while it is deleted
  try {
    await api("DELETE", "/api/sessions/" + encodeURIComponent(id));
  } catch (e) {
    $("confirm").classList.add("hidden");
    showOpenedError("Not deleted: " + e.message);
    if (opened && opened.id === id && opened.audio) player.src = opened.audio;
    return;
  }
  deletedNote = ` · deleted ${id}`;
  go({ view: "conversations" });
}

function initConversations() {
  if (!token) return;
  const player = $("player");
  player.addEventListener("timeupdate", () => follow(player.currentTime));
  player.addEventListener("seeked", () => follow(player.currentTime));
  player.addEventListener("error", async () => {
    const src = player.getAttribute("src");
    if (!opened || !src) return;
    // The element says only that it failed; the service says why (being recorded, damaged).
    let reason = "The audio cannot be played.";
    try {
      const answer = await fetch(src, { headers: { Range: "bytes=0-0" }, cache: "no-store" });
      if (!answer.ok) reason = "The audio cannot be played: " + (await answer.json()).error;
    } catch (e) {
      // the generic reason stands
    }
    if (opened && player.getAttribute("src") === src) {
      $("audio-error").textContent = reason;
      $("audio-error").classList.remove("hidden");
    }
  });
  $("search").addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(loadList, SEARCH_WAIT_MS);
  });
  $("delete").addEventListener("click", () => $("confirm").classList.remove("hidden"));
  $("cancel-delete").addEventListener("click", () => $("confirm").classList.add("hidden"));
  $("confirm-delete").addEventListener("click", deleteOpened);
  window.addEventListener("hashchange", route);
  // Back to the tab after a while: conversations may have ended (or been deleted) meanwhile.
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && viewParams().get("view") === "conversations") loadList();
  });
  route();
}

initConversations();
