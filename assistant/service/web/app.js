// The web dashboard: polls the service's /api/live twice a second and draws it.
// The token arrives in the URL's fragment (never sent to any server), is kept for this tab
// only, and goes with every request as a bearer token.
"use strict";

const FRAME_MS = 80;
const POLL_MS = 500;
let token = null;
let maxDelayMs = 500;

// The fragment holds the view (`view=conversations&id=...`, conversations.js) and, when the
// page is opened by `assistant ctl open` or the menu bar, the token.
function readToken() {
  const params = new URLSearchParams(location.hash.slice(1));
  const given = params.get("token");
  if (given && /^[A-Za-z0-9_\-]+$/.test(given)) {
    sessionStorage.setItem("assistant-token", given);
    params.delete("token");
    const rest = params.toString();  // out of the address bar; the view stays
    history.replaceState(null, "", location.pathname + (rest ? "#" + rest : ""));
  }
  return sessionStorage.getItem("assistant-token");
}

async function api(method, path, body) {
  const response = await fetch(path, {
    method,
    headers: { "Authorization": "Bearer " + token, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: "no-store",
  });
  const payload = await response.json();
  if (!response.ok) throw new Error(payload.error || response.statusText);
  return payload;
}

const $ = (id) => document.getElementById(id);
const ms = (v) => (v === null || v === undefined ? "-" : v.toFixed(1));

function bytes(n) {
  for (const [unit, size] of [["GB", 1e9], ["MB", 1e6], ["kB", 1e3]]) {
    if (n >= size) return (n / size).toFixed(1) + " " + unit;
  }
  return n + " B";
}

function level(value, budget) {
  const share = value / budget;
  return share < 0.75 ? "ok" : share < 1 ? "warn" : "bad";
}

function clock(seconds) {
  const s = Math.floor(seconds);
  const pad = (x) => String(x).padStart(2, "0");
  return `${Math.floor(s / 3600)}:${pad(Math.floor((s % 3600) / 60))}:${pad(s % 60)}`;
}

function showStatus(status) {
  const state = $("state");
  state.textContent = status.state;
  state.className = "badge " + status.state;
  $("muted").classList.toggle("hidden", !status.muted);
  $("mute").textContent = status.muted ? "Unmute" : "Mute";
  $("quant").value = status.quant;
  $("voice").value = status.voice;
  const talking = status.state === "listening" || status.state === "speaking";
  $("start").disabled = talking || status.state === "loading";
  $("stop").disabled = !talking;
  $("error").textContent = status.error || "";
  $("error").classList.toggle("hidden", !status.error);
  maxDelayMs = status.max_delay_ms;
  $("budget").textContent = `(budget ${FRAME_MS} ms a frame, ${maxDelayMs} ms mic → speaker)`;
  const m = status.model;
  if (m) {
    $("model-label").textContent = m.label;
    $("model-voice").textContent = m.voice;
    const group = m.group_size ? `, group ${m.group_size}` : "";
    $("model-quant").textContent = `${m.quantization} (${m.bits} bits${group})`;
    $("model-bpw").textContent = m.bits_per_weight.toFixed(2);
    $("model-size").textContent = bytes(m.file_size);
    $("model-params").textContent = (m.parameters / 1e9).toFixed(2) + " B";
    $("model-load").textContent = m.load_seconds.toFixed(1) + " s";
    $("model-memory").textContent = "~" + bytes(m.memory_estimate);
  }
}

function showMetrics(metrics) {
  if (!metrics) return;
  for (const row of document.querySelectorAll("#latency tbody tr")) {
    const stage = metrics.stages[row.dataset.stage];
    const budget = row.dataset.stage === "delay" ? maxDelayMs : FRAME_MS;
    const cells = row.querySelectorAll("td");
    const w = stage.window;
    const values = [stage.last, w.count ? w.p50 : null, w.count ? w.p95 : null,
                    w.count ? w.p99 : null, stage.session.count ? stage.session.p95 : null,
                    stage.session.count ? stage.session.max : null];
    values.forEach((v, i) => { cells[i].textContent = ms(v); });
    cells[2].className = w.count ? level(w.p95, budget) : "";
  }
  const f = metrics.frames;
  $("rtf").textContent = metrics.real_time_factor.toFixed(2) +
    (metrics.real_time_factor < 1 ? " (keeping up)" : " (slower than real time)");
  $("rtf").className = level(metrics.real_time_factor, 1);
  $("bottleneck").textContent = metrics.bottleneck;
  $("frames").textContent = String(f.finished);
  $("dropped").textContent = `${f.dropped_input} / ${f.dropped_output}`;
  $("xruns").textContent = `${metrics.audio.underruns} / ${metrics.audio.overruns}`;
  $("aec").textContent = metrics.echo_reduction_db === null ? "off" :
    metrics.echo_reduction_db.toFixed(0) + " dB of echo removed";
  $("memory").textContent = `${bytes(metrics.memory.mlx_active)} / ${bytes(metrics.memory.rss)}`;
  $("elapsed").textContent = clock(metrics.elapsed_s);
  drawChart($("chart-step"), [["step", metrics.history.step, "#0b57d0"]], FRAME_MS);
  drawChart($("chart-delay"), [["delay", metrics.history.delay, "#6a1b9a"]], maxDelayMs);
  drawChart($("chart-codec"), [["encode", metrics.history.encode, "#2e7d32"],
                               ["decode", metrics.history.decode, "#b26a00"]], FRAME_MS);
}

// A line per series over the last frames, with the budget as a dashed red line.
function drawChart(canvas, series, budget) {
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height, pad = 28;
  ctx.clearRect(0, 0, w, h);
  const all = series.flatMap(([, values]) => values);
  const top = Math.max(budget * 1.25, ...all, 1);
  const y = (v) => h - pad - (v / top) * (h - 2 * pad);
  ctx.font = "11px sans-serif";
  ctx.fillStyle = "#777";
  ctx.strokeStyle = "#eee";
  for (const tick of [0, top / 2, top]) {
    ctx.beginPath(); ctx.moveTo(pad, y(tick)); ctx.lineTo(w - 4, y(tick)); ctx.stroke();
    ctx.fillText(tick.toFixed(0), 2, y(tick) + 4);
  }
  ctx.strokeStyle = "#c62828";
  ctx.setLineDash([5, 4]);
  ctx.beginPath(); ctx.moveTo(pad, y(budget)); ctx.lineTo(w - 4, y(budget)); ctx.stroke();
  ctx.setLineDash([]);
  let legend = pad + 4;
  for (const [name, values, color] of series) {
    ctx.strokeStyle = color;
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    const n = Math.max(values.length - 1, 1);
    values.forEach((v, i) => {
      const x = pad + (i / n) * (w - pad - 4);
      if (i === 0) ctx.moveTo(x, y(v)); else ctx.lineTo(x, y(v));
    });
    ctx.stroke();
    ctx.lineWidth = 1;
    ctx.fillStyle = color;
    ctx.fillText(name, legend, 12);
    legend += ctx.measureText(name).width + 12;
  }
}

async function poll() {
  try {
    const live = await api("GET", "/api/live");
    showStatus(live.status);
    showMetrics(live.metrics);
    const transcript = $("transcript");
    if (transcript.textContent !== live.transcript) {
      transcript.textContent = live.transcript;
      transcript.scrollTop = transcript.scrollHeight;
    }
    $("footer").textContent = "served from this Mac only (127.0.0.1); no internet needed";
  } catch (e) {
    $("state").textContent = "unreachable";
    $("state").className = "badge error";
    $("footer").textContent = "the service does not answer: " + e.message;
  }
}

async function act(method, path, body) {
  try {
    showStatus(await api(method, path, body));
  } catch (e) {
    $("error").textContent = e.message;
    $("error").classList.remove("hidden");
  }
}

function main() {
  token = readToken();
  if (!token) {
    $("state").textContent = "no token";
    $("error").textContent = "Open this page with `assistant ctl open` (it carries the access token).";
    $("error").classList.remove("hidden");
    return;
  }
  $("start").addEventListener("click", () => act("POST", "/api/start"));
  $("stop").addEventListener("click", () => act("POST", "/api/stop"));
  $("mute").addEventListener("click", () =>
    act("POST", "/api/mute", { muted: $("mute").textContent === "Mute" }));
  $("quant").addEventListener("change", (e) => act("POST", "/api/switch", { quant: e.target.value }));
  $("voice").addEventListener("change", (e) => act("POST", "/api/switch", { voice: e.target.value }));
  poll();
  setInterval(poll, POLL_MS);
}

main();
