// diffuse web app: the browser front end of `diffuse serve`.
// Plain ES module, no dependencies; talks only to the server's HTTP API (/api/v1, /sdapi/v1).

const $ = (id) => document.getElementById(id);
const KEY_STORE = 'diffuse.apiKey';
const POLL_MS = 500;
// A1111 sampler names of scheduler presets: shown when the server labels a preset with its bare name,
// and matched against the "Sampler:" of a dropped PNG.
const A1111 = {
  pndm: 'PLMS', ddim: 'DDIM', ddpm: 'DDPM', euler: 'Euler', 'euler-a': 'Euler a', lms: 'LMS', heun: 'Heun',
  kdpm2: 'DPM2', 'kdpm2-a': 'DPM2 a', 'dpmpp-2m': 'DPM++ 2M', 'dpmpp-2m-karras': 'DPM++ 2M Karras',
  'dpmpp-2m-sde': 'DPM++ 2M SDE', unipc: 'UniPC', lcm: 'LCM',
};

// ui.fooBar is the element with id "foo-bar".
const ui = new Proxy({}, {
  get: (cache, k) => cache[k] || (cache[k] = $(k.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase()))),
});

const state = {
  info: null,
  limits: { max_width: 2048, max_height: 2048, max_steps: 150, max_images: 8 },
  sizeTouched: false,
  init: null,        // {dataUrl, name, width, height}
  job: null,         // the job being tracked
  results: [],       // all results of this session, newest first
  shown: [],         // results shown on the stage (one job's images)
  selected: null,    // result whose details are shown
  lastSeed: null,
  livePreview: false,
};

// ---------------------------------------------------------------- helpers

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));
const fmtSecs = (ms) => (ms < 10000 ? (ms / 1000).toFixed(1) : Math.round(ms / 1000)) + ' s';

function h(tag, attrs = {}, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v == null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const k of kids) if (k != null) e.append(k);
  return e;
}

function toast(msg, kind = 'info', ms = 4500) {
  const t = h('div', { class: 'toast ' + kind, role: kind === 'error' ? 'alert' : 'status' }, msg);
  ui.toasts.append(t);
  setTimeout(() => { t.classList.add('leaving'); setTimeout(() => t.remove(), 300); }, ms);
}

function showError(msg) {
  ui.errorText.textContent = msg;
  ui.error.hidden = false;
}
function hideError() { ui.error.hidden = true; }

function b64ToBlob(b64, type = 'image/png') {
  const bin = atob(b64);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return new Blob([bytes], { type });
}

function readAsDataURL(file) {
  return new Promise((resolve, reject) => {
    const r = new FileReader();
    r.onload = () => resolve(r.result);
    r.onerror = () => reject(r.error || new Error('could not read the file'));
    r.readAsDataURL(file);
  });
}

function loadImage(src) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve(img);
    img.onerror = () => reject(new Error('not a readable image'));
    img.src = src;
  });
}

// ---------------------------------------------------------------- API

class ApiError extends Error {
  constructor(status, message, retryAfter) { super(message); this.status = status; this.retryAfter = retryAfter; }
}

let keyPrompt = null;  // shared promise while the key dialog is open
function askForKey(rejected) {
  if (keyPrompt) return keyPrompt;
  const dlg = $('key-dialog'), input = $('key-input');
  $('key-message').textContent = rejected
    ? 'The server rejected the stored API key. Enter the right one (it is kept in this browser only).'
    : 'This server needs an API key. It is kept in this browser only.';
  input.value = '';
  keyPrompt = new Promise((resolve) => {
    const done = (key) => {
      $('key-form').removeEventListener('submit', onSubmit);
      $('key-cancel').removeEventListener('click', onCancel);
      dlg.removeEventListener('cancel', onCancel);
      if (dlg.open) dlg.close();
      keyPrompt = null;
      resolve(key);
    };
    const onSubmit = (e) => {
      e.preventDefault();
      const key = input.value.trim();
      if (!key) return;
      localStorage.setItem(KEY_STORE, key);
      ui.apiKeyBtn.hidden = false;
      done(key);
    };
    const onCancel = (e) => { e.preventDefault(); done(null); };
    $('key-form').addEventListener('submit', onSubmit);
    $('key-cancel').addEventListener('click', onCancel);
    dlg.addEventListener('cancel', onCancel);
    dlg.showModal();
    input.focus();
  });
  return keyPrompt;
}

// fetch() wrapper: JSON in/out, Bearer key, 401 -> ask for the key and retry, errors -> ApiError.
async function api(path, { method = 'GET', body, raw = false, signal } = {}) {
  for (let attempt = 0; ; attempt++) {
    const headers = {};
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const key = localStorage.getItem(KEY_STORE);
    if (key) headers.Authorization = 'Bearer ' + key;
    let res;
    try {
      res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal, cache: 'no-store' });
    } catch (e) {
      if (e.name === 'AbortError') throw e;
      // One quiet retry: a kept-alive connection the server just closed fails like this.
      if (attempt < 1) { await sleep(300); continue; }
      throw new ApiError(0, `Cannot reach the server (${e.message}). Is \`diffuse serve\` still running?`);
    }
    if (res.status === 401) {
      const k = await askForKey(Boolean(key));
      if (!k) throw new ApiError(401, 'This server needs an API key; none was given.');
      continue;
    }
    if (!res.ok) {
      let msg = '';
      try {
        const text = await res.text();
        try { msg = JSON.parse(text).error || text; } catch { msg = text; }
      } catch { /* body unreadable */ }
      throw new ApiError(res.status, (msg || res.statusText || 'request failed').trim(), res.headers.get('Retry-After'));
    }
    return raw ? res : res.json();
  }
}

function describeError(e) {
  if (!(e instanceof ApiError)) return String(e && e.message || e);
  if (e.status === 429) {
    const s = parseInt(e.retryAfter, 10);
    return `Server busy: ${e.message || 'the queue is full'}` + (s > 0 ? ` (retry in ${s} s).` : '.');
  }
  if (e.status === 422 || e.status === 400) return 'The server rejected the request: ' + e.message;
  if (e.status === 0 || e.status === 401) return e.message;
  return `Server error ${e.status}: ${e.message}`;
}

// ---------------------------------------------------------------- server info / form setup

function modelByName(name) { return (state.info?.models || []).find((m) => m.name === name); }

function fillNumber(input, value) { input.value = value; input.dispatchEvent(new Event('input')); }

function applyModelDefaults() {
  const m = modelByName(ui.model.value);
  if (!m) { ui.modelHint.textContent = ''; return; }
  const bits = [];
  if (m.family) bits.push(m.family.toUpperCase());
  if (m.default_width && m.default_height) bits.push(`${m.default_width}×${m.default_height}`);
  if (m.scheduler) bits.push(m.scheduler);
  ui.modelHint.textContent = m.loaded ? bits.join(' · ') : 'Not loaded yet: it loads on first use (may take a while).';
  const def = ui.scheduler.querySelector('option[value=""]');
  if (def) def.textContent = m.scheduler ? `Model default (${m.scheduler.replace(/Scheduler$/, '')})` : 'Model default';
  if (!state.sizeTouched) {
    ui.width.value = m.default_width || '';
    ui.height.value = m.default_height || '';
    ui.width.placeholder = ui.height.placeholder = 'auto';
  }
  renderPresets();
}

function renderPresets() {
  const m = modelByName(ui.model.value);
  const base = (m && m.default_width) || 512;
  const sizes = [[base, base]];
  if (base >= 256) sizes.push([base, Math.round(base * 1.5 / 8) * 8], [Math.round(base * 1.5 / 8) * 8, base]);
  else sizes.push([64, 64], [base * 2, base * 2]);
  const seen = new Set();
  ui.sizePresets.replaceChildren(...sizes.filter(([w, hh]) => {
    const k = w + 'x' + hh;
    if (seen.has(k) || w > state.limits.max_width || hh > state.limits.max_height) return false;
    seen.add(k); return true;
  }).map(([w, hh]) => h('button', {
    type: 'button', class: 'chip', title: `Set size to ${w}×${hh}`,
    onclick: () => { ui.width.value = w; ui.height.value = hh; state.sizeTouched = true; },
  }, `${w}×${hh}`)));
}

async function loadInfo() {
  let info;
  try {
    info = await api('api/v1/info');
  } catch (e) {
    ui.serverInfo.textContent = 'Offline';
    showError('Could not load the server information. ' + describeError(e) + ' Reload the page to try again.');
    return;
  }
  state.info = info;
  Object.assign(state.limits, info.limits || {});
  ui.serverInfo.textContent = [`v${info.version}`, info.backend, info.threads ? `${info.threads} threads` : null].filter(Boolean).join(' · ');
  if (info.auth_required || localStorage.getItem(KEY_STORE)) ui.apiKeyBtn.hidden = false;

  ui.model.replaceChildren(...(info.models || []).map((m) =>
    h('option', { value: m.name }, m.title || m.name)));
  if (info.current_model) ui.model.value = info.current_model;

  const scheds = info.schedulers && info.schedulers.length ? info.schedulers : [{ name: '', label: 'Model default' }];
  ui.scheduler.replaceChildren(...scheds.map((s) => {
    const label = (!s.label || s.label === s.name) && A1111[s.name] ? A1111[s.name] : s.label || s.name || 'Model default';
    return h('option', { value: s.name, 'data-label': label }, label === s.name || !s.name ? label : `${label} (${s.name})`);
  }));

  const L = state.limits;
  for (const el of [ui.steps, ui.stepsRange]) el.max = L.max_steps;
  ui.width.max = L.max_width; ui.height.max = L.max_height; ui.count.max = L.max_images;
  applyModelDefaults();
}

// ---------------------------------------------------------------- form <-> request

function linkPair(range, number, parse) {
  range.addEventListener('input', () => { number.value = range.value; });
  number.addEventListener('input', () => { const v = parse(number.value); if (!Number.isNaN(v)) range.value = v; });
}

function roundTo8(input) {
  if (input.value === '') return;
  let v = parseInt(input.value, 10);
  if (Number.isNaN(v)) { input.value = ''; return; }
  v = clamp(Math.round(v / 8) * 8, 8, parseInt(input.max, 10) || 2048);
  input.value = v;
}

function intOr(input, fallback, lo, hi) {
  const v = parseInt(input.value, 10);
  const r = Number.isNaN(v) ? fallback : clamp(v, lo, hi);
  input.value = r;
  return r;
}

function collectRequest() {
  roundTo8(ui.width); roundTo8(ui.height);
  const req = {
    prompt: ui.prompt.value,
    steps: intOr(ui.steps, 20, 1, state.limits.max_steps),
    guidance_scale: (() => { const v = parseFloat(ui.cfg.value); return Number.isNaN(v) ? 7.5 : v; })(),
    seed: (() => { const v = parseInt(ui.seed.value, 10); return Number.isNaN(v) || v < 0 ? -1 : v; })(),
    scheduler: ui.scheduler.value,
    image_count: intOr(ui.count, 1, 1, state.limits.max_images),
    preview: true,
  };
  // An empty box sends no negative prompt (diffusers' default: zeros on SDXL), not "".
  if (ui.negative.value) req.negative_prompt = ui.negative.value;
  ui.stepsRange.value = req.steps;
  if (ui.model.value) req.model = ui.model.value;
  if (ui.width.value) req.width = parseInt(ui.width.value, 10);
  if (ui.height.value) req.height = parseInt(ui.height.value, 10);
  if (state.init) {
    req.init_image = state.init.dataUrl;
    const s = parseFloat(ui.strength.value);
    req.strength = Number.isNaN(s) ? 0.75 : clamp(s, 0, 1);
  }
  return req;
}

function selectScheduler(value) {
  const opts = [...ui.scheduler.options];
  const norm = (s) => String(s).toLowerCase().replace(/\+\+/g, 'pp').replace(/[^a-z0-9]/g, '');
  const hit = opts.find((o) => o.value === value) ||
    opts.find((o) => norm(o.dataset.label || o.textContent) === norm(value)) ||
    opts.find((o) => o.value && norm(o.value) === norm(value));
  if (hit) ui.scheduler.value = hit.value;
  return Boolean(hit);
}

function selectModel(name) {
  if (!name) return false;
  const models = state.info?.models || [];
  const lc = String(name).toLowerCase();
  const m = models.find((x) => x.name === name) || models.find((x) => x.name.toLowerCase() === lc) ||
    models.find((x) => (x.title || '').toLowerCase().startsWith(lc));
  if (!m) return false;
  if (ui.model.value !== m.name) { ui.model.value = m.name; applyModelDefaults(); }
  return true;
}

// Fill the form from a job's resolved request (and optionally one image's seed).
function fillFromRequest(req, seed) {
  if (!req) return;
  if (req.model) selectModel(req.model);
  if (typeof req.prompt === 'string') ui.prompt.value = req.prompt;
  if (typeof req.negative_prompt === 'string') ui.negative.value = req.negative_prompt;
  if (req.steps) fillNumber(ui.steps, req.steps);
  if (req.guidance_scale != null) fillNumber(ui.cfg, req.guidance_scale);
  if (req.scheduler != null) selectScheduler(req.scheduler);
  if (req.width && req.height) { ui.width.value = req.width; ui.height.value = req.height; state.sizeTouched = true; }
  if (req.image_count) ui.count.value = req.image_count;
  if (req.strength != null) fillNumber(ui.strength, req.strength);
  const s = seed ?? req.seed;
  if (s != null) ui.seed.value = s;
}

// ---------------------------------------------------------------- job tracking

let timer = null;
function setStatus(kind, text) {
  ui.status.hidden = false;
  ui.status.dataset.state = kind;
  ui.statusText.textContent = text;
  const active = kind === 'submitting' || kind === 'queued' || kind === 'running';
  ui.cancel.hidden = !active;
  ui.cancel.disabled = kind === 'submitting' || Boolean(state.job && state.job.cancelling);
  ui.generate.disabled = active;
  ui.generate.textContent = active ? 'Generating…' : 'Generate';
  ui.generate.setAttribute('aria-busy', active ? 'true' : 'false');
}

function tick() {
  const job = state.job;
  if (!job) return;
  const el = performance.now() - job.t0;
  let s = fmtSecs(el);
  if (job.step > 1 && job.total > job.step && job.tFirstStep) {
    const per = (performance.now() - job.tFirstStep) / (job.step - 1);
    s += ` · about ${fmtSecs(per * (job.total - job.step))} left`;
  }
  ui.statusTime.textContent = s;
}

function setProgress(step, total) {
  const job = state.job;
  if (total > 0) { ui.progress.max = total; if (job) job.total = total; }
  if (step != null) {
    ui.progress.value = step;
    if (job) {
      if (step >= 1 && !job.tFirstStep) job.tFirstStep = performance.now();
      job.step = step;
    }
  }
  ui.progress.setAttribute('aria-valuetext', `step ${step || 0} of ${total || ui.progress.max}`);
}

function showQueued(job, pos) {
  if (job.finished || job.running) return;
  ui.progress.removeAttribute('value');  // indeterminate while waiting
  setStatus('queued', pos > 0 ? `Queued: ${pos} job${pos === 1 ? '' : 's'} ahead` : 'Queued: next up');
  if (state.livePreview) ui.waitingText.textContent = 'Waiting for the server to start this job…';
}

function showRunning(job, step, total) {
  if (job.finished) return;
  if (!job.running && state.livePreview) ui.waitingText.textContent = 'Generating… the preview appears after the first step.';
  job.running = true;
  setProgress(step, total);
  setStatus('running', step > 0 ? `Step ${step} / ${job.total}` : `Starting… (${job.total} steps)`);
}

function showPreview(b64) {
  if (!b64 || !state.livePreview) return;
  ui.preview.src = 'data:image/png;base64,' + b64;
  setStageView('preview');
}

function setStageView(view) {
  ui.stage.dataset.view = view;
  ui.empty.hidden = view !== 'empty';
  ui.waiting.hidden = view !== 'waiting';
  ui.preview.hidden = view !== 'preview';
  ui.results.hidden = view !== 'results';
}

function endJob(job) {
  job.finished = true;
  clearInterval(timer); timer = null;
  if (state.job === job) state.job = null;
  state.livePreview = false;
}

function finishDone(job, st) {
  if (job.finished) return;
  endJob(job);
  tick();
  const elapsed = performance.now() - job.t0;
  setProgress(job.total, job.total);
  setStatus('done', `Done in ${fmtSecs(elapsed)}`);
  ui.statusTime.textContent = '';
  const req = st.request || job.req;
  const images = st.images || [];
  const added = images.map((img, i) => ({
    key: `${st.id || job.id}-${i}`, jobId: st.id || job.id, index: i,
    png: img.png_base64, parameters: img.parameters || '', seed: img.seed ?? st.seed,
    request: req, model: st.model || req.model, warnings: st.warnings || [],
    url: URL.createObjectURL(b64ToBlob(img.png_base64)),
  }));
  if (!added.length) {
    showError('The job finished but returned no images.');
    setStageView(state.shown.length ? 'results' : 'empty');
    return;
  }
  state.results.unshift(...added.slice().reverse());
  state.lastSeed = added[0].seed;
  ui.seedReuse.disabled = state.lastSeed == null;
  for (const w of st.warnings || []) toast(w, 'warn', 7000);
  showResults(added, added[0]);
  renderGallery();
}

function finishFailed(job, kind, message) {
  if (job.finished) return;
  endJob(job);
  if (kind === 'cancelled') {
    setStatus('cancelled', 'Cancelled');
    ui.statusTime.textContent = job.step ? `stopped at step ${job.step} / ${job.total}` : '';
  } else {
    setStatus('error', 'Failed');
    ui.statusTime.textContent = '';
    showError('Generation failed: ' + (message || 'unknown error'));
  }
  if (state.shown.length) showResults(state.shown, state.selected); else setStageView('empty');
}

// Apply a full job object (GET /api/v1/jobs/{id}), from polling.
function applyJobStatus(job, st) {
  switch (st.status) {
    case 'queued': showQueued(job, st.queue_position || 0); break;
    case 'running':
      showRunning(job, st.step || 0, st.total_steps || job.total);
      break;
    case 'done': finishDone(job, st); break;
    case 'error': finishFailed(job, 'error', st.error); break;
    case 'cancelled': finishFailed(job, 'cancelled'); break;
    default: break;
  }
}

function handleEvent(job, name, data) {
  switch (name) {
    case 'queued': showQueued(job, data.queue_position || 0); break;
    case 'started': showRunning(job, 0, data.total_steps || job.total); break;
    case 'step':
      showRunning(job, data.step, data.total_steps || job.total);
      showPreview(data.preview_png_base64);
      break;
    case 'done': finishDone(job, data); break;
    case 'error': finishFailed(job, 'error', data.error); break;
    case 'cancelled': finishFailed(job, 'cancelled'); break;
    default: break;  // unknown events are ignored (forward compatible)
  }
}

// Read the SSE stream with fetch (EventSource cannot send Authorization). Returns when the stream ends.
async function streamEvents(job) {
  const res = await api(`api/v1/jobs/${encodeURIComponent(job.id)}/events`, { raw: true, signal: job.abort.signal });
  if (!res.body) throw new Error('no stream');
  const reader = res.body.getReader();
  const dec = new TextDecoder();
  let buf = '', event = '', data = [];
  const dispatch = () => {
    if (data.length) {
      let obj = {};
      try { obj = JSON.parse(data.join('\n')); } catch { obj = {}; }
      handleEvent(job, event || 'message', obj);
    }
    event = ''; data = [];
  };
  const line = (l) => {
    if (l === '') { dispatch(); return; }
    if (l.startsWith(':')) return;
    const i = l.indexOf(':');
    const field = i < 0 ? l : l.slice(0, i);
    let value = i < 0 ? '' : l.slice(i + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') event = value;
    else if (field === 'data') data.push(value);
  };
  while (!job.finished) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += dec.decode(value, { stream: true });
    let m;
    while ((m = /\r\n|\r|\n/.exec(buf))) {
      if (m[0] === '\r' && m.index === buf.length - 1) break;  // maybe half of \r\n
      line(buf.slice(0, m.index));
      buf = buf.slice(m.index + m[0].length);
    }
  }
  if (!job.finished) { if (buf) line(buf); dispatch(); return; }
  // Finished (terminal event, or cancelled by us): let the server end the stream, but do not wait long.
  const timeout = setTimeout(() => job.abort.abort(), 3000);
  try { while (!(await reader.read()).done); } catch { /* aborted */ }
  clearTimeout(timeout);
}

async function pollJob(job) {
  let failures = 0;
  while (!job.finished) {
    try {
      const st = await api(`api/v1/jobs/${encodeURIComponent(job.id)}`);
      failures = 0;
      applyJobStatus(job, st);
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) { finishFailed(job, 'error', 'the server no longer knows this job'); return; }
      if (++failures >= 20) { finishFailed(job, 'error', 'lost contact with the server: ' + describeError(e)); return; }
    }
    if (!job.finished) await sleep(POLL_MS);
  }
}

async function track(job) {
  try {
    await streamEvents(job);
  } catch (e) {
    if (job.finished) return;
    if (e instanceof ApiError && e.status === 401) { finishFailed(job, 'error', e.message); return; }
  }
  if (!job.finished) await pollJob(job);  // stream broke or closed early
}

async function generate() {
  if (state.job) return;
  hideError();
  const req = collectRequest();
  const job = { id: null, req, t0: performance.now(), total: req.steps, step: 0, finished: false, abort: new AbortController() };
  state.job = job;
  ui.progress.max = req.steps;
  ui.progress.value = 0;
  ui.status.dataset.jobId = '';
  setStatus('submitting', 'Submitting…');
  ui.statusTime.textContent = '';
  let r;
  try {
    r = await api('api/v1/jobs', { method: 'POST', body: req });
  } catch (e) {
    state.job = null;
    setStatus('idle', '');
    ui.status.hidden = true;
    showError(describeError(e));
    return;
  }
  job.id = r.id;
  ui.status.dataset.jobId = r.id;
  if (req.width && req.height) ui.preview.style.aspectRatio = `${req.width} / ${req.height}`;
  else ui.preview.style.aspectRatio = '';
  state.livePreview = true;
  ui.waitingText.textContent = 'Starting…';
  setStageView('waiting');
  if (r.status === 'running') showRunning(job, 0, job.total); else showQueued(job, r.queue_position || 0);
  timer = setInterval(tick, 200);
  tick();
  track(job);
}

async function cancel() {
  const job = state.job;
  if (!job || !job.id || job.cancelling) return;
  job.cancelling = true;
  ui.cancel.disabled = true;
  ui.statusText.textContent = 'Cancelling…';
  try {
    const r = await api(`api/v1/jobs/${encodeURIComponent(job.id)}`, { method: 'DELETE' });
    if (r && r.status === 'cancelled') finishFailed(job, 'cancelled');
    // otherwise the job already ended; its terminal event arrives on the stream / poll
  } catch (e) {
    job.cancelling = false;
    if (!job.finished) { ui.cancel.disabled = false; showError('Could not cancel: ' + describeError(e)); }
  }
}

// ---------------------------------------------------------------- results and gallery

function showResults(list, selected) {
  state.shown = list;
  const n = list.length;
  ui.results.dataset.count = n > 4 ? 'many' : String(n);
  ui.results.replaceChildren(...list.map((r) => {
    const img = h('img', { src: r.url, alt: `Generated image, seed ${r.seed}`, 'data-testid': 'result-image', class: 'result-image' });
    img.addEventListener('load', () => img.style.setProperty('--ar', img.naturalWidth / img.naturalHeight || 1));
    if (n === 1) return h('figure', { class: 'result single' }, img);
    return h('button', {
      type: 'button', class: 'result' + (r === selected ? ' selected' : ''), 'aria-pressed': r === selected ? 'true' : 'false',
      'aria-label': `Show details of image ${r.index + 1} (seed ${r.seed})`, onclick: () => select(r),
    }, img);
  }));
  setStageView('results');
  select(selected || list[0]);
}

function select(r) {
  state.selected = r;
  if (!r) { ui.details.hidden = true; return; }
  ui.details.hidden = false;
  ui.parameters.textContent = r.parameters || '(the server sent no parameters text)';
  ui.download.href = r.url;
  ui.download.download = `diffuse-${r.seed ?? 'image'}${r.index ? '-' + (r.index + 1) : ''}.png`;
  ui.warnings.hidden = !r.warnings.length;
  ui.warnings.textContent = r.warnings.length ? 'Warnings: ' + r.warnings.join(' · ') : '';
  for (const b of ui.results.querySelectorAll('button.result')) {
    const on = b.querySelector('img').getAttribute('src') === r.url;
    b.classList.toggle('selected', on); b.setAttribute('aria-pressed', on ? 'true' : 'false');
  }
  for (const b of ui.gallery.querySelectorAll('.gallery-item')) {
    const on = b.dataset.key === r.key;
    b.classList.toggle('selected', on); b.setAttribute('aria-pressed', on ? 'true' : 'false');
  }
}

function renderGallery() {
  const n = state.results.length;
  ui.galleryCount.textContent = n ? `(${n})` : '';
  ui.galleryClear.hidden = !n;
  if (!n) { ui.gallery.replaceChildren(h('p', { class: 'muted gallery-empty' }, 'No results yet.')); return; }
  ui.gallery.replaceChildren(...state.results.map((r) => h('button', {
    type: 'button', class: 'gallery-item' + (r === state.selected ? ' selected' : ''), 'data-testid': 'gallery-item',
    'data-key': r.key, 'aria-pressed': r === state.selected ? 'true' : 'false',
    title: (r.request?.prompt || '').slice(0, 120) + ` (seed ${r.seed})`,
    onclick: () => {
      state.livePreview = false;
      showResults(state.results.filter((x) => x.jobId === r.jobId).sort((a, b) => a.index - b.index), r);
    },
  }, h('img', { src: r.url, alt: `Result, seed ${r.seed}`, loading: 'lazy' }))));
}

function clearGallery() {
  for (const r of state.results) URL.revokeObjectURL(r.url);
  state.results = []; state.shown = []; state.selected = null;
  ui.details.hidden = true;
  if (!state.job) { setStageView('empty'); ui.status.hidden = true; }
  renderGallery();
}

// ---------------------------------------------------------------- init image (image to image)

async function setInitImage(file) {
  if (!file || !file.type.startsWith('image/')) { toast('That file is not an image.', 'error'); return; }
  try {
    let dataUrl = await readAsDataURL(file);
    const img = await loadImage(dataUrl);
    if (file.type !== 'image/png') {  // the API takes PNG
      const c = document.createElement('canvas');
      c.width = img.naturalWidth; c.height = img.naturalHeight;
      c.getContext('2d').drawImage(img, 0, 0);
      dataUrl = c.toDataURL('image/png');
    }
    state.init = { dataUrl, name: file.name || 'image', width: img.naturalWidth, height: img.naturalHeight };
    renderInit();
  } catch (e) {
    toast(`Could not read ${file.name || 'the image'}: ${e.message}`, 'error');
  }
}

function setInitFromResult(r) {
  state.init = { dataUrl: 'data:image/png;base64,' + r.png, name: `diffuse-${r.seed}.png`, width: r.request?.width, height: r.request?.height };
  renderInit();
  toast('Input image set: adjust Strength under “Image to image”, then Generate.');
}

function renderInit() {
  const on = Boolean(state.init);
  ui.initEmpty.hidden = on; ui.initSet.hidden = !on; ui.strengthField.hidden = !on;
  ui.initZone.classList.toggle('has-image', on);
  if (on) {
    ui.initThumb.src = state.init.dataUrl;
    ui.initName.textContent = state.init.name;
    ui.initDims.textContent = state.init.width ? `${state.init.width}×${state.init.height}` : '';
  } else {
    ui.initThumb.removeAttribute('src');
    ui.initFile.value = '';
  }
}

// ---------------------------------------------------------------- PNG info (drop a PNG anywhere)

async function loadSettingsFromPng(file) {
  if (!file) return;
  if (file.type && file.type !== 'image/png' && !/\.png$/i.test(file.name)) {
    toast(`${file.name} is not a PNG. Drop a PNG made by diffuse or A1111 to load its settings.`, 'error');
    return;
  }
  let res;
  try {
    res = await api('sdapi/v1/png-info', { method: 'POST', body: { image: await readAsDataURL(file) } });
  } catch (e) {
    toast(`Could not read ${file.name}: ${describeError(e)}`, 'error', 7000);
    return;
  }
  const p = res.parameters || {};
  const has = (k) => p[k] != null && String(p[k]) !== '';
  if (!Object.keys(p).length || (!has('Prompt') && !has('Steps') && !has('Seed'))) {
    toast(`${file.name} has no generation parameters to load.`, 'warn', 6000);
    return;
  }
  const filled = [], skipped = [];
  if (has('Prompt') || has('Steps')) {
    ui.prompt.value = p.Prompt || ''; filled.push('prompt');
    ui.negative.value = p['Negative prompt'] || '';
    if (has('Negative prompt')) filled.push('negative prompt');
  }
  if (has('Steps') && !Number.isNaN(parseInt(p.Steps, 10))) { fillNumber(ui.steps, clamp(parseInt(p.Steps, 10), 1, state.limits.max_steps)); filled.push('steps'); }
  if (has('Sampler')) {
    const type = p['Schedule type'];
    const ok = (type && !/^automatic$/i.test(type) && selectScheduler(`${p.Sampler} ${type}`)) || selectScheduler(p.Sampler);
    if (ok) filled.push('scheduler'); else skipped.push(`scheduler “${p.Sampler}” (not available here)`);
  }
  if (has('CFG scale') && !Number.isNaN(parseFloat(p['CFG scale']))) { fillNumber(ui.cfg, parseFloat(p['CFG scale'])); filled.push('guidance'); }
  if (has('Seed') && !Number.isNaN(parseInt(p.Seed, 10))) { ui.seed.value = parseInt(p.Seed, 10); filled.push('seed'); }
  if (has('Model')) {
    if (selectModel(p.Model)) filled.push('model'); else skipped.push(`model “${p.Model}” (not available here)`);
  }
  const size = /^(\d+)\s*x\s*(\d+)$/i.exec(String(p.Size || '').trim());
  if (size) { ui.width.value = size[1]; ui.height.value = size[2]; state.sizeTouched = true; filled.push('size'); }
  if (has('Denoising strength') && !Number.isNaN(parseFloat(p['Denoising strength']))) fillNumber(ui.strength, parseFloat(p['Denoising strength']));
  let msg = `Loaded from ${file.name}: ${filled.join(', ') || 'nothing usable'}.`;
  if (skipped.length) msg += ` Kept the current ${skipped.join(' and ')}.`;
  toast(msg, skipped.length ? 'warn' : 'ok', 6000);
}

// ---------------------------------------------------------------- wiring

function wire() {
  const mac = /Mac|iPhone|iPad/.test(navigator.platform || navigator.userAgent);
  $('kbd-mod').textContent = mac ? '⌘' : 'Ctrl';

  linkPair(ui.stepsRange, ui.steps, (v) => parseInt(v, 10));
  linkPair(ui.cfgRange, ui.cfg, parseFloat);
  linkPair(ui.strengthRange, ui.strength, parseFloat);
  ui.steps.addEventListener('change', () => { intOr(ui.steps, 20, 1, state.limits.max_steps); ui.stepsRange.value = ui.steps.value; });
  ui.count.addEventListener('change', () => intOr(ui.count, 1, 1, state.limits.max_images));
  for (const el of [ui.width, ui.height]) {
    el.addEventListener('input', () => { state.sizeTouched = true; });
    el.addEventListener('change', () => roundTo8(el));
  }
  $('swap-size').addEventListener('click', () => {
    [ui.width.value, ui.height.value] = [ui.height.value, ui.width.value];
    state.sizeTouched = true;
  });
  ui.model.addEventListener('change', applyModelDefaults);

  $('seed-random').addEventListener('click', () => { ui.seed.value = -1; });
  ui.seedReuse.addEventListener('click', () => { if (state.lastSeed != null) ui.seed.value = state.lastSeed; });

  ui.generate.addEventListener('click', generate);
  ui.cancel.addEventListener('click', cancel);
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey) && !$('key-dialog').open) { e.preventDefault(); generate(); }
  });
  $('error-close').addEventListener('click', hideError);

  $('use-settings').addEventListener('click', () => {
    const r = state.selected; if (!r) return;
    fillFromRequest(r.request, r.seed);
    toast(`Form filled from the result with seed ${r.seed}.`, 'ok');
  });
  $('reuse-seed').addEventListener('click', () => {
    const r = state.selected; if (!r) return;
    ui.seed.value = r.seed;
    const n = r.request?.image_count || 1;
    toast(r.index > 0 && n > 1 ? `Seed set to ${r.seed}. This is image ${r.index + 1} of a batch of ${n}: keep Images per run at ${n} to get it again.`
      : `Seed set to ${r.seed}.`, 'ok', 6000);
  });
  $('use-as-init').addEventListener('click', () => { if (state.selected) setInitFromResult(state.selected); });
  ui.galleryClear.addEventListener('click', clearGallery);

  ui.apiKeyBtn.addEventListener('click', async () => {
    const k = await askForKey(false);
    if (k) { toast('API key saved in this browser.', 'ok'); if (!state.info) loadInfo(); }
  });

  // init image: choose or drop onto its slot
  ui.initFile.addEventListener('change', () => setInitImage(ui.initFile.files[0]));
  $('init-remove').addEventListener('click', () => { state.init = null; renderInit(); });

  // PNG info: choose, or drop anywhere except the init slot
  const pngFile = $('load-png-file');
  $('load-png').addEventListener('click', () => pngFile.click());
  pngFile.addEventListener('change', () => { loadSettingsFromPng(pngFile.files[0]); pngFile.value = ''; });

  let depth = 0;
  const hasFiles = (e) => [...(e.dataTransfer?.types || [])].includes('Files');
  const inInit = (e) => ui.initZone.contains(e.target);
  const overlay = (on, init) => {
    ui.dropOverlay.hidden = !on || init;
    ui.initZone.classList.toggle('drag', Boolean(on && init));
  };
  window.addEventListener('dragenter', (e) => { if (!hasFiles(e)) return; e.preventDefault(); depth++; overlay(true, inInit(e)); });
  window.addEventListener('dragover', (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault(); e.dataTransfer.dropEffect = 'copy'; overlay(true, inInit(e));
  });
  window.addEventListener('dragleave', (e) => { if (!hasFiles(e)) return; if (--depth <= 0) { depth = 0; overlay(false); } });
  window.addEventListener('drop', (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault(); depth = 0;
    const init = inInit(e);
    overlay(false);
    const file = e.dataTransfer.files[0];
    if (!file) return;
    if (init) setInitImage(file); else loadSettingsFromPng(file);
  });
}

wire();
renderInit();
renderGallery();
loadInfo();
