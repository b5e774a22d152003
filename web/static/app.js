// dreamrender's page: start a render through dreamweb, then watch it form over Server-Sent Events.
// Events are read with fetch() rather than EventSource so that they carry the Authorization header
// (EventSource cannot send one, and a token in the URL would end up in logs).
"use strict";

const $ = (id) => document.getElementById(id);
const ui = { frames: 0, frameTimes: [], job: null, abort: null, plot: [], ended: false };
window.dreamweb = ui; // for tests and bench/bench_web.py: frame arrival times, the job being shown

// Which form controls each mode sends (their names are the settings dataclasses' fields).
const MODES = {
  dream: { kind: "dream", fields: ["layer", "size", "steps", "step_size"], files: ["photo"] },
  preset: { kind: "style", fields: ["preset", "size", "strength"], files: ["photo"] },
  style: { kind: "style", fields: ["method", "size", "strength", "iterations"], files: ["photo", "style"] },
  sample: { kind: "sample", fields: ["generator", "count"], files: [] },
};

function headers() {
  const token = $("token").value.trim();
  localStorage.setItem("dreamweb.token", token);
  return token ? { Authorization: `Bearer ${token}` } : {};
}

async function api(path, options = {}) {
  const resp = await fetch(path, { ...options, headers: { ...headers(), ...(options.headers || {}) } });
  if (!resp.ok) {
    let err = { code: `HTTP ${resp.status}`, message: resp.statusText, violations: [] };
    try { err = await resp.json(); } catch (_) { /* not JSON: keep the HTTP status */ }
    throw err;
  }
  return resp;
}

function showError(err) {
  const box = $("error");
  if (!err) { box.hidden = true; box.textContent = ""; return; }
  const fields = (err.violations || []).map((v) => `${v.field}: ${v.description}`).join("\n");
  box.textContent = `${err.code}: ${err.message}` + (fields && !err.message.includes(fields) ? `\n${fields}` : "");
  box.hidden = false;
}

function setState(state, detail = "") {
  $("state").textContent = detail ? `${state} · ${detail}` : state;
  $("state").dataset.state = state;
  const live = state === "running" || state === "queued" || state === "starting";
  $("cancel").disabled = !live;
}

// ---- the form -------------------------------------------------------------------------------
function mode() { return document.querySelector("input[name=mode]:checked").value; }

function applySpecs(opts) {
  // Each input's default, range and help come from the settings dataclass it mirrors.
  const specs = { dream: {}, style: {}, sample: {} };
  for (const [kind, list] of Object.entries(opts.kinds)) for (const s of list) specs[kind][s.name] = s;
  const byInput = { size: specs.dream.size, steps: specs.dream.steps, step_size: specs.dream.step_size,
    strength: specs.style.strength, iterations: specs.style.iterations, count: specs.sample.count };
  for (const [id, s] of Object.entries(byInput)) {
    if (!s) continue;
    const el = $(id);
    el.placeholder = s.default; el.title = s.help;
    if (s.min !== null) el.min = s.min;
    if (s.max !== null) el.max = s.max;
  }
  $("size").value = 512; // a size that renders in seconds here; the server's own default keeps the photo's
  const fill = (sel, items) => { sel.replaceChildren(...items.map(([v, t]) => new Option(t, v))); };
  fill($("preset"), opts.presets.map((p) => [p.index, `${p.index}: ${p.name}`]));
  fill($("generator"), opts.generators.map((g) => [g, g]));
  const dreamModel = opts.models.find((m) => m.kind === "features" && m.available && m.default_dream_layer);
  if (dreamModel) {
    fill($("layer"), [["", `default (${dreamModel.default_dream_layer})`], ...dreamModel.layers.map((l) => [l, l])]);
  }
}

function formData() {
  const m = MODES[mode()];
  const data = new FormData();
  data.append("kind", m.kind);
  data.append("request_id", `web-${crypto.randomUUID ? crypto.randomUUID() : Date.now() + "-" + Math.random()}`);
  for (const id of m.fields) {
    const el = $(id);
    if (el.value !== "") data.append(el.name, el.value);
  }
  for (const id of m.files) {
    const file = id === "photo" ? (ui.dropped || $("photo").files[0]) : $(id).files[0];
    if (file) data.append($(id).name, file);
  }
  return data;
}

async function start(ev) {
  ev.preventDefault();
  showError(null);
  setState("starting");
  $("start").disabled = true;
  try {
    const job = await (await api("api/renders", { method: "POST", body: formData() })).json();
    location.hash = `job=${job.job_id}`; // a reload re-attaches to it
    attach(job.job_id);
  } catch (err) {
    setState("failed");
    showError(err);
  } finally {
    $("start").disabled = false;
  }
}

// ---- watching a job -------------------------------------------------------------------------
function resetView() {
  ui.frames = 0; ui.frameTimes = []; ui.plot = []; ui.ended = false;
  $("preview").removeAttribute("src");
  $("preview").dataset.frames = "0";
  $("progress").value = 0; $("eta").textContent = "";
  $("download").classList.add("disabled"); $("download").removeAttribute("href");
  drawPlot();
}

async function attach(jobId) {
  if (ui.abort) ui.abort.abort();
  const ctl = new AbortController();
  ui.abort = ctl; ui.job = jobId;
  resetView(); showError(null); setState("connecting");
  for (let attempt = 0; !ui.ended && ui.job === jobId && attempt < 30; attempt++) {
    try {
      await readEvents(jobId, ctl.signal);
    } catch (err) {
      if (ctl.signal.aborted) return;
      if (err && err.code && !String(err.code).startsWith("HTTP 5")) { setState("failed"); showError(err); return; }
    }
    if (!ui.ended) await new Promise((r) => setTimeout(r, 1000)); // the stream broke: attach again
  }
}

async function readEvents(jobId, signal) {
  const resp = await api(`api/jobs/${jobId}/events`, { signal });
  const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      let name = "", data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("event: ")) name = line.slice(7);
        else if (line.startsWith("data: ")) data += line.slice(6);
      }
      if (name) await handle(name, data ? JSON.parse(data) : {}, jobId);
    }
  }
}

function eta(seconds) {
  if (!seconds) return "";
  return seconds >= 90 ? `about ${Math.round(seconds / 60)} min left` : `about ${Math.round(seconds)} s left`;
}

async function handle(name, ev, jobId) {
  if (ui.job !== jobId) return;
  if (name === "accepted") setState(ev.queue_position ? "queued" : "running", ev.queue_position ? `#${ev.queue_position}` : "");
  else if (name === "queued") { setState("queued", `#${ev.queue_position}`); $("eta").textContent = eta(ev.eta_seconds); }
  else if (name === "progress") {
    setState("running", `${ev.step}/${ev.total_steps}`);
    $("progress").value = ev.total_steps ? ev.step / ev.total_steps : 0;
    $("eta").textContent = eta(ev.eta_seconds);
    const v = ev.values || {};
    const y = v.total ?? v.score ?? v.g_loss;
    if (y !== undefined) { ui.plot.push([ev.step, y]); drawPlot(); }
  } else if (name === "frame") {
    ui.frames += 1;
    ui.frameTimes.push({ step: ev.step, at: performance.timeOrigin + performance.now() });
    $("preview").src = ev.image;
    $("preview").dataset.frames = String(ui.frames);
  } else if (name === "result") {
    ui.ended = true;
    const blob = await (await api(ev.url)).blob();
    const url = URL.createObjectURL(blob);
    $("preview").src = url;
    $("download").href = url;
    $("download").download = `dreamrender-${jobId}.${(ev.media_type || "image/png").split("/")[1].replace("jpeg", "jpg")}`;
    $("download").classList.remove("disabled");
    $("progress").value = 1; $("eta").textContent = `${(ev.stats.elapsed_seconds || 0).toFixed(1)} s`;
    setState("succeeded", `${ev.stats.width}×${ev.stats.height}`);
    loadJobs();
  } else if (name === "error") {
    ui.ended = true;
    setState(ev.code === "CANCELLED" ? "cancelled" : "failed");
    if (ev.code !== "CANCELLED") showError(ev);
    loadJobs();
  } else if (name === "end") ui.ended = true;
}

function drawPlot() {
  const c = $("plot"), g = c.getContext("2d");
  g.clearRect(0, 0, c.width, c.height);
  const pts = ui.plot.filter(([, y]) => Number.isFinite(y));
  c.hidden = pts.length < 2; // a job re-opened once done has one progress event: nothing to plot
  if (c.hidden) return;
  const log = pts.every(([, y]) => y > 0); // losses span decades: plot their logarithm
  const ys = pts.map(([, y]) => (log ? Math.log10(y) : y)), xs = pts.map(([x]) => x);
  const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  g.strokeStyle = "#8ab4f8"; g.lineWidth = 2; g.beginPath();
  pts.forEach((_, i) => {
    const x = ((xs[i] - x0) / (x1 - x0 || 1)) * (c.width - 8) + 4;
    const y = c.height - 4 - ((ys[i] - y0) / (y1 - y0 || 1)) * (c.height - 8);
    if (i) g.lineTo(x, y); else g.moveTo(x, y);
  });
  g.stroke();
}

async function cancel() {
  if (!ui.job) return;
  try { await api(`api/jobs/${ui.job}/cancel`, { method: "POST" }); } catch (err) { showError(err); }
}

async function loadJobs() {
  try {
    const { jobs } = await (await api("api/jobs?page_size=12")).json();
    $("jobs").replaceChildren(...jobs.map((j) => {
      const li = document.createElement("li"), b = document.createElement("button");
      const when = new Date(j.create_time * 1000).toLocaleTimeString();
      b.textContent = `${j.kind.replace("Render", "")} · ${j.state} · ${when}`;
      b.dataset.job = j.job_id; b.dataset.state = j.state;
      b.onclick = () => { location.hash = `job=${j.job_id}`; attach(j.job_id); };
      li.append(b);
      return li;
    }));
  } catch (err) { /* listing is a convenience: the render itself reports its errors */ }
}

async function loadOptions() {
  try {
    const opts = await (await api("api/options")).json();
    applySpecs(opts);
    $("dreamd").textContent = `dreamd on ${opts.device}`;
  } catch (err) {
    $("dreamd").textContent = `dreamd: ${err.code}`;
    if (err.code === "UNAUTHENTICATED") $("auth").open = true;
  }
}

function setupDrop() {
  const zone = $("drop");
  const show = (file) => { ui.dropped = file; $("thumb").src = URL.createObjectURL(file); $("thumb").hidden = false; };
  $("photo").addEventListener("change", () => { ui.dropped = null; if ($("photo").files[0]) show($("photo").files[0]); });
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault(); zone.classList.remove("over");
    if (e.dataTransfer.files[0]) show(e.dataTransfer.files[0]);
  });
}

function init() {
  $("token").value = localStorage.getItem("dreamweb.token") || "";
  const form = $("render");
  const syncMode = () => { form.dataset.mode = mode(); };
  form.addEventListener("change", syncMode); syncMode();
  form.addEventListener("submit", start);
  $("cancel").addEventListener("click", cancel);
  $("refresh").addEventListener("click", loadJobs);
  $("token").addEventListener("change", () => { loadOptions(); loadJobs(); });
  setupDrop();
  loadOptions(); loadJobs();
  const m = location.hash.match(/job=([0-9a-f]+)/);
  if (m) attach(m[1]);
}

document.addEventListener("DOMContentLoaded", init);
