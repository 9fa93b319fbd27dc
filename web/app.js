/* global document, window, fetch, EventSource, Chart, URLSearchParams, location */
// The vmwu dashboard: plain ES module, no framework, no bundler. Chart.js is the
// UMD build copied next to this file at build time (global `Chart`).

const csrf = document.querySelector('meta[name="csrf-token"]').content;
const view = document.getElementById('view');

/** Builds a DOM element; strings become text nodes (never HTML). */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'style' && typeof v === 'object') Object.assign(el.style, v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof window.Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

async function api(path) {
  const r = await fetch(path, { credentials: 'same-origin', headers: { accept: 'application/json' } });
  const body = await r.json();
  if (!r.ok) throw new Error(body.message || `${r.status}`);
  return body;
}

async function post(path, body) {
  const headers = { 'x-csrf-token': csrf };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const r = await fetch(path, { method: 'POST', credentials: 'same-origin', headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const res = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(res.message || `${r.status}`);
  return res;
}

/** A table in a box of its own that scrolls sideways, so a wide table never widens the page. */
const boxed = (attrs, ...children) => h('div', { class: 'table-box' }, h('table', attrs, ...children));

const enc = encodeURIComponent;
const ms = (x) => (x === null || x === undefined ? '-' : x < 1000 ? `${Math.round(x)} ms` : x < 120000 ? `${(x / 1000).toFixed(1)} s` : `${Math.round(x / 60000)} min`);
const time = (t) => (t ? new Date(t).toLocaleString() : '-');
const badge = (s) => h('span', { class: `state s-${s}`, 'data-state': s }, s);
/** `--after`: what an experiment waits (or waited) for, linked. */
const afterNote = (x) => (x.after
  ? h('span', { class: 'after muted', 'data-after': x.after.experiment }, x.state === 'waiting' ? ' for ' : ' after ',
    h('a', { href: `#/exp/${enc(x.after.experiment)}` }, x.after.experiment), x.after.condition === 'finished' ? ' (to finish)' : '')
  : '');
const pct = (done, total) => (total ? Math.floor((done / total) * 100) : 100);
/** A bar in segments (succeeded, failed, cancelled, running) and the share of settled jobs. */
function progress(done, total, counts) {
  const p = pct(done, total);
  const seg = (n, cls) => (n && total ? h('div', { class: cls, style: { width: `${(n / total) * 100}%` } }) : null);
  return h('span', {}, h('span', { class: 'bar', title: `${done} of ${total} settled` },
    seg(counts.succeeded, 'b-succeeded'), seg(counts.failed, 'b-failed'), seg(counts.cancelled, 'b-cancelled'), seg(counts.running, 'b-running')),
  ' ', h('span', { class: 'pct' }, `${p}%`), ` ${done}/${total}`);
}

// ---- live updates: one EventSource for the whole page ----
let onChange = () => {};
const live = document.getElementById('live');
const events = new EventSource('/api/events');
events.addEventListener('hello', () => live.classList.add('on'));
events.addEventListener('change', (m) => onChange(JSON.parse(m.data)));
events.onerror = () => live.classList.remove('on');

/** At most one refresh in flight, and one more queued: a burst of changes costs two fetches. */
function throttled(fn) {
  let running = false;
  let again = false;
  const run = async () => {
    if (running) { again = true; return; }
    running = true;
    try { await fn(); } catch (e) { console.error(e); }
    running = false;
    if (again) { again = false; run(); }
  };
  return run;
}

let cleanup = [];
function leave() {
  for (const f of cleanup) f();
  cleanup = [];
  onChange = () => {};
}

// ---- experiments ----
async function experimentsPage(nav) {
  const table = h('tbody');
  const form = await submitForm();
  // Another view was asked for while the form loaded: it is that one's to draw.
  if (nav !== navigation) return;
  view.replaceChildren(h('h1', {}, 'Experiments'), form, boxed({ id: 'experiments' },
    h('thead', {}, h('tr', {}, ['Name', 'State', 'Progress', 'Succeeded', 'Failed', 'Running', 'Pending', 'Cancelled', 'ETA', 'Target', 'Created', 'Started', 'Finished'].map((x) => h('th', {}, x)))),
    table));
  const refresh = throttled(async () => {
    const list = await api('/api/experiments');
    table.replaceChildren(...list.map((x) => h('tr', { 'data-exp': x.name, class: `row-${x.state}` },
      h('td', {}, h('a', { href: `#/exp/${enc(x.name)}` }, x.name)), h('td', {}, badge(x.state), afterNote(x)), h('td', {}, progress(x.done, x.total, x.counts)),
      h('td', {}, x.counts.succeeded), h('td', {}, x.counts.failed), h('td', {}, x.counts.running), h('td', {}, x.counts.pending), h('td', {}, x.counts.cancelled),
      h('td', {}, x.etaMs === null ? '-' : ms(x.etaMs)), h('td', {}, x.target), h('td', {}, time(x.createdAt)), h('td', {}, time(x.startedAt)), h('td', {}, time(x.finishedAt)))));
    if (!list.length) table.append(h('tr', {}, h('td', { colspan: 13, class: 'muted' }, 'No experiments yet: vmwu sweep PLAN --base tiny --detach')));
  });
  onChange = refresh;
  await refresh();
}

/** "New sweep": a plan file from this computer, run on a unit or a bare base (what `vmwu sweep --detach` does). */
async function submitForm() {
  const [units, bases] = await Promise.all([api('/api/units'), api('/api/bases')]);
  const target = h('select', { id: 'submit-target' },
    units.map((u) => h('option', { value: `unit:${u.name}:${u.version}` }, `unit ${u.name}:${u.version}`)),
    bases.filter((b) => b.boot === 'kernel').map((b) => h('option', { value: `base:${b.name}` }, `base ${b.name}`)));
  const file = h('input', { type: 'file', id: 'submit-plan', accept: '.pln,text/plain' });
  const name = h('input', { id: 'submit-name', placeholder: 'name (default: the plan\'s)', size: 24 });
  const slots = h('input', { id: 'submit-slots', type: 'number', min: 1, placeholder: 'slots', style: { width: '5em' } });
  const retries = h('input', { id: 'submit-retries', type: 'number', min: 0, value: 2, style: { width: '4em' } });
  // A plan of more jobs is refused (TOO_MANY_JOBS, shown below) unless this raises the limit.
  const maxJobs = h('input', { id: 'submit-max-jobs', type: 'number', min: 1, placeholder: 'max jobs (100000)', style: { width: '10em' } });
  // Resources and the executor, as `vmwu sweep` takes them: empty fields leave the unit's values and the store's defaults.
  const memory = h('input', { id: 'submit-memory', placeholder: 'memory (e.g. 512M)', size: 14 });
  const cpus = h('input', { id: 'submit-cpus', type: 'number', min: 1, placeholder: 'CPUs', style: { width: '5em' } });
  const timeout = h('input', { id: 'submit-timeout', placeholder: 'walltime (e.g. 30m)', size: 16 });
  const executor = h('select', { id: 'submit-executor' }, ['local', 'ssh', 'slurm'].map((x) => h('option', { value: x }, `on ${x === 'ssh' ? 'the SSH pool' : x === 'slurm' ? 'Slurm' : 'this host'}`)));
  const hosts = h('input', { id: 'submit-hosts', placeholder: 'hosts (label=value or names)', size: 24, hidden: true });
  const partition = h('input', { id: 'submit-partition', placeholder: 'partition', size: 12, hidden: true });
  executor.onchange = () => {
    hosts.hidden = executor.value !== 'ssh';
    partition.hidden = executor.value !== 'slurm';
  };
  const status = h('span', { id: 'submit-status' });
  const go = async () => {
    status.textContent = '';
    status.className = '';
    const f = file.files[0];
    if (!f) { status.textContent = 'choose a plan file'; status.className = 'error'; return; }
    const [kind, ...rest] = target.value.split(':');
    try {
      const r = await post('/api/experiments', {
        planText: await f.text(), planName: f.name, name: name.value || undefined, slots: slots.value || undefined, retries: retries.value,
        maxJobs: maxJobs.value || undefined,
        [kind]: rest.join(':'),
        memory: memory.value || undefined, cpus: cpus.value || undefined, timeout: timeout.value || undefined, executor: executor.value,
        hosts: executor.value === 'ssh' ? hosts.value || undefined : undefined, partition: executor.value === 'slurm' ? partition.value || undefined : undefined,
      });
      location.hash = `#/exp/${enc(r.name)}`;
    } catch (e) {
      status.textContent = e.message;
      status.className = 'error';
    }
  };
  return h('details', { id: 'submit' }, h('summary', {}, 'New sweep'),
    h('div', { class: 'filters' }, 'plan ', file, ' on ', target, name, slots, ' retries ', retries, maxJobs),
    h('div', { class: 'filters' }, memory, cpus, timeout, executor, hosts, partition, h('button', { id: 'submit-go', onclick: go }, 'Start'), status));
}

// ---- image previews ----
/** Names offered a preview. Only an offer: the server types the file by its bytes and may have none (src/server/image-preview.ts). */
const IMAGE_NAME = /\.(png|jpe?g|svg|pgm|ppm|pnm)$/i;
const previewUrl = (name, job, attempt, path, thumb) =>
  `/api/experiments/${enc(name)}/jobs/${job}/preview/${path.split('/').map(enc).join('/')}?attempt=${attempt}${thumb ? '&thumb=1' : ''}`;

/** The image full size over the page, always through <img> (where an SVG's scripts never run); a click or Escape closes it. */
function showFull(src, caption) {
  const close = () => {
    box.remove();
    document.removeEventListener('keydown', onKey);
  };
  const onKey = (e) => { if (e.key === 'Escape') close(); };
  const box = h('div', { class: 'lightbox', id: 'lightbox', title: 'click to close', onclick: close }, h('img', { src, alt: caption }), h('div', { class: 'caption' }, caption));
  document.addEventListener('keydown', onKey);
  document.body.append(box);
  cleanup.push(close);
}

/** A thumbnail (the browser scales it; a PGM/PPM comes small from the server) that opens full size; removed when the file has no preview. */
function thumbnail(name, job, attempt, path, onGone = (img) => img.remove()) {
  return h('img', {
    class: 'thumb', src: previewUrl(name, job, attempt, path, true), alt: path, title: `${path}: click for full size`, loading: 'lazy', decoding: 'async',
    'data-preview': path,
    onclick: () => showFull(previewUrl(name, job, attempt, path, false), `job ${job} · ${path}`),
    onerror: (ev) => onGone(ev.target),
  });
}

// ---- one experiment ----
// template: finding or making the host's fast-start template (absent from records older than the phase).
const PHASES = ['template', 'boot', 'restore', 'stageIn', 'exec', 'stageOut', 'shutdown'];

/** How an attempt started: from a template, from a checkpoint, or a boot (and why not a restore). */
function startLabel(s) {
  if (!s) return '-';
  if (s.checkpoint) return `checkpoint ${s.checkpoint}`;
  return s.mode === 'restore' ? 'template' : s.fallback ? 'boot (fallback)' : 'boot';
}
const PHASE_COLORS = ['#78909c', '#42a5f5', '#26c6da', '#ab47bc', '#66bb6a', '#ffa726', '#8d6e63'];

async function experimentPage(name) {
  const st0 = await api(`/api/experiments/${enc(name)}`);
  const q = { state: '', sort: 'index', dir: 'asc', offset: 0, limit: 50, params: {} };
  const head = h('div');
  const msg = h('p', { class: 'error', id: 'message' });
  const tbody = h('tbody');
  const pager = h('div', { class: 'pager' });
  const stateSel = h('select', { id: 'filter-state', onchange: () => { q.state = stateSel.value; q.offset = 0; refreshJobs(); } },
    h('option', { value: '' }, 'all states'), ['pending', 'running', 'succeeded', 'failed', 'cancelled'].map((s) => h('option', { value: s }, s)));
  const paramInputs = st0.paramNames.map((p) => h('label', {}, `${p} = `, h('input', {
    size: 8, 'data-param': p, onchange: (ev) => { q.params[p] = ev.target.value; q.offset = 0; refreshJobs(); },
  })));
  const cols = [['index', 'Job'], ['state', 'State'], [null, 'Params'], ['attempts', 'Attempts'], ['exit', 'Exit'], ['duration', 'Duration'], ['host', 'Host'],
    ['cpu', 'CPU'], ['rss', 'Peak RSS'], ['started', 'Started'], [null, 'Error'], [null, '']];
  const ths = cols.map(([key, label]) => h('th', {
    class: key ? 'sortable' : '', 'data-sort': key,
    onclick: key ? () => { q.dir = q.sort === key && q.dir === 'asc' ? 'desc' : 'asc'; q.sort = key; q.offset = 0; refreshJobs(); } : undefined,
  }, label));
  const phaseCanvas = h('canvas', { id: 'phase-chart' });
  const histCanvas = h('canvas', { id: 'hist-chart' });
  // The gallery: image outputs of finished jobs, a page (≤ 200) at a time; `after` pages by job index, `back` remembers the pages before.
  const gal = { after: 0, back: [], page: null, at: 0, timer: undefined };
  const gallery = h('div', { class: 'gallery', id: 'gallery' });
  const galleryNote = h('p', { class: 'muted', id: 'gallery-note' });
  const galleryPager = h('div', { class: 'pager' });
  const gallerySection = h('section', { id: 'gallery-section', hidden: true }, h('h2', {}, 'Images'), galleryNote, gallery, galleryPager);
  view.replaceChildren(
    h('h1', {}, `Experiment ${name}`), head, msg,
    h('div', { class: 'filters' }, h('button', { id: 'btn-cancel', onclick: () => act('cancel') }, 'Cancel'),
      h('button', { id: 'btn-suspend', title: 'checkpoint and stop the running jobs; Resume goes on from the checkpoints', onclick: () => act('suspend') }, 'Suspend'),
      h('button', { id: 'btn-resume', onclick: () => act('resume') }, 'Resume')),
    h('div', { class: 'charts' }, h('div', { class: 'chart' }, phaseCanvas), h('div', { class: 'chart' }, histCanvas)),
    gallerySection,
    h('h2', {}, 'Jobs'),
    h('div', { class: 'filters' }, stateSel, paramInputs),
    boxed({ id: 'jobs' }, h('thead', {}, h('tr', {}, ths)), tbody), pager,
  );

  async function act(what) {
    msg.textContent = '';
    try {
      const r = await post(`/api/experiments/${enc(name)}/${what}`);
      msg.textContent = '';
      head.dataset.lastAction = `${what}:${r.state ?? 'ok'}`;
      refreshHead();
    } catch (e) {
      msg.textContent = `${what} failed: ${e.message}`;
    }
  }

  const refreshHead = throttled(async () => {
    const st = await api(`/api/experiments/${enc(name)}`);
    const c = st.counts;
    head.replaceChildren(
      h('p', {}, badge(st.state), afterNote(st), ' on ', st.target, ' · ', progress(st.done, st.total, st.counts), st.etaMs !== null ? ` · ETA ${ms(st.etaMs)}` : ''),
      st.endedWhy ? h('p', { id: 'ended-why', class: 'muted' }, st.endedWhy) : '',
      h('p', { id: 'counts' }, `succeeded ${c.succeeded} · failed ${c.failed} · running ${c.running} · pending ${c.pending} · cancelled ${c.cancelled}`,
        st.retrying ? ` (${st.retrying} waiting to retry)` : ''),
      h('p', { class: 'muted' }, `created ${time(st.createdAt)} · started ${time(st.startedAt)} · finished ${time(st.finishedAt)} · slots ${st.slotsExplain ?? st.slots ?? '-'} · seed ${st.seed}`),
    );
    head.dataset.state = st.state;
    document.getElementById('btn-cancel').disabled = !['created', 'running', 'stopped', 'waiting'].includes(st.state);
    document.getElementById('btn-suspend').disabled = st.state !== 'running';
    document.getElementById('btn-resume').disabled = !['created', 'stopped', 'cancelled'].includes(st.state);
  });

  const refreshJobs = throttled(async () => {
    const p = new URLSearchParams({ sort: q.sort, dir: q.dir, offset: String(q.offset), limit: String(q.limit) });
    if (q.state) p.set('state', q.state);
    for (const [k, v] of Object.entries(q.params)) if (v) p.set(`param.${k}`, v);
    const page = await api(`/api/experiments/${enc(name)}/jobs?${p}`);
    for (const th of ths) {
      th.classList.toggle('sorted', th.dataset.sort === q.sort);
      th.classList.toggle('desc', th.dataset.sort === q.sort && q.dir === 'desc');
    }
    tbody.replaceChildren(...page.jobs.map((j) => h('tr', { class: `row-${j.state}`, 'data-job': j.index },
      h('td', {}, h('a', { href: `#/exp/${enc(name)}/job/${j.index}` }, j.index)), h('td', {}, badge(j.state)),
      h('td', {}, Object.entries(j.params).map(([k, v]) => `${k}=${v}`).join(' ')), h('td', {}, j.attempts),
      h('td', {}, j.exitCode ?? '-'), h('td', {}, ms(j.totalMs)), h('td', { class: 'host' }, j.host ?? '-'), h('td', {}, ms(j.cpuMs)),
      h('td', {}, j.maxRssKiB === null ? '-' : size(j.maxRssKiB * 1024)), h('td', {}, time(j.startedAt)), h('td', { class: 'error' }, j.error ?? ''),
      h('td', {}, j.state === 'failed' || j.state === 'cancelled' ? h('button', {
        class: 'retry', onclick: async () => {
          try { await post(`/api/experiments/${enc(name)}/jobs/${j.index}/retry`); } catch (e) { msg.textContent = `retry failed: ${e.message}`; }
        },
      }, 'Retry') : ''))));
    const last = Math.min(page.offset + page.limit, page.total);
    pager.replaceChildren(
      h('button', { id: 'prev', disabled: page.offset === 0, onclick: () => { q.offset = Math.max(0, q.offset - q.limit); refreshJobs(); } }, '‹ prev'),
      ` ${page.total ? page.offset + 1 : 0}–${last} of ${page.total} `,
      h('button', { id: 'next', disabled: last >= page.total, onclick: () => { q.offset += q.limit; refreshJobs(); } }, 'next ›'),
    );
  });

  const refreshGallery = throttled(async () => {
    const p = await api(`/api/experiments/${enc(name)}/gallery${gal.after ? `?after=${gal.after}` : ''}`);
    gal.page = p;
    gal.at = Date.now();
    gallerySection.hidden = !p.images.length && !gal.back.length;
    gallery.replaceChildren(...p.images.map((im) => h('figure', { 'data-job': im.job, 'data-path': im.path },
      thumbnail(name, im.job, im.attempt, im.path, (img) => img.closest('figure')?.remove()),
      h('figcaption', {}, h('a', { href: `#/exp/${enc(name)}/job/${im.job}` }, `job ${im.job}`), ` ${im.path}`))));
    galleryNote.textContent = `${p.images.length} image${p.images.length === 1 ? '' : 's'} from ${p.scannedJobs} finished job${p.scannedJobs === 1 ? '' : 's'}`
      + `${gal.after ? ` after job ${gal.after}` : ''} (${p.finishedJobs} finished in all)`;
    galleryPager.replaceChildren(
      h('button', { id: 'gallery-prev', disabled: !gal.back.length, onclick: () => { gal.after = gal.back.pop() ?? 0; refreshGallery(); } }, '‹ prev'), ' ',
      h('button', { id: 'gallery-next', disabled: p.next === null, onclick: () => { gal.back.push(gal.after); gal.after = p.next; refreshGallery(); } }, 'next ›'),
    );
  });
  /** New images can only come on the last page, as jobs finish: look again at most every 5 s, and once after the last change. */
  const galleryLater = () => {
    if (!gal.page || gal.page.next !== null || gal.timer) return;
    gal.timer = setTimeout(() => { gal.timer = undefined; refreshGallery(); }, Math.max(0, 5000 - (Date.now() - gal.at)));
  };
  cleanup.push(() => clearTimeout(gal.timer));

  let phaseChart;
  let histChart;
  const refreshCharts = throttled(async () => {
    const t = await api(`/api/experiments/${enc(name)}/timings`);
    const labels = t.jobs.map((j) => `#${j.index}`);
    const datasets = PHASES.map((p, i) => ({ label: p, data: t.jobs.map((j) => j.phases[p] / 1000), backgroundColor: PHASE_COLORS[i] }));
    if (!phaseChart) {
      phaseChart = new Chart(phaseCanvas, {
        type: 'bar', data: { labels, datasets },
        options: { animation: false, maintainAspectRatio: false, plugins: { title: { display: true, text: 'Phase timings per job (s)' } },
          scales: { x: { stacked: true }, y: { stacked: true, title: { display: true, text: 'seconds' } } } },
      });
    } else {
      phaseChart.data.labels = labels;
      phaseChart.data.datasets.forEach((d, i) => { d.data = datasets[i].data; });
      phaseChart.update();
    }
    const hl = t.histogram.map((b) => `${(b.from / 1000).toFixed(1)}–${(b.to / 1000).toFixed(1)} s`);
    const hd = t.histogram.map((b) => b.count);
    if (!histChart) {
      histChart = new Chart(histCanvas, {
        type: 'bar', data: { labels: hl, datasets: [{ label: 'jobs', data: hd, backgroundColor: '#26a69a', barPercentage: 1, categoryPercentage: 1 }] },
        options: { animation: false, maintainAspectRatio: false, plugins: { title: { display: true, text: `Job durations (${t.count} finished jobs)` } },
          scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } },
      });
    } else {
      histChart.data.labels = hl;
      histChart.data.datasets[0].data = hd;
      histChart.options.plugins.title.text = `Job durations (${t.count} finished jobs)`;
      histChart.update();
    }
  });
  cleanup.push(() => { phaseChart?.destroy(); histChart?.destroy(); });

  onChange = (ev) => {
    if (!ev.experiments.includes(name)) return;
    refreshHead();
    refreshJobs();
    refreshCharts();
    galleryLater();
  };
  await Promise.all([refreshHead(), refreshJobs(), refreshCharts(), refreshGallery()]);
}

// ---- one job ----
const ATTEMPT_COLS = ['#', 'Status', 'Exit', 'Run', 'Start', 'Host', 'Batch id', 'CPU', 'Peak RSS', 'Started', 'Total', ...PHASES, 'Checkpoints', 'Files'];
const rowClass = (s) => `row-${s === 'succeeded' ? 'succeeded' : s === 'running' ? 'running' : 'failed'}`;

/**
 * The VMs of one attempt of a multi-VM job (`--nodes`): name, the machine it ran on, status and error,
 * restored from a template or booted, phases and what its QEMU used. Every value goes in as text (h() never parses HTML): a VM's error may carry guest output.
 */
function vmsTable(attempt, vms) {
  return boxed({ class: 'vms', 'data-attempt-vms': attempt },
    h('thead', {}, h('tr', {}, ['VM', 'Machine', 'Status', 'Error', 'Run', 'Start', 'CPU', 'Peak RSS', 'Total', ...PHASES].map((x) => h('th', {}, x)))),
    h('tbody', {}, vms.map((v) => h('tr', { class: rowClass(v.status), 'data-vm': v.name },
      h('td', { class: 'vm-name' }, v.name ?? `node${v.index}`), h('td', { class: 'vm-machine' }, v.machine ?? '-'),
      h('td', { class: 'vm-status' }, badge(v.status)), h('td', { class: 'vm-error error' }, v.error ?? ''), h('td', { class: 'vm-run' }, v.runId || '-'),
      h('td', { class: 'vm-start' }, v.start === 'restore' ? 'template' : v.start ?? '-'),
      h('td', { class: 'vm-cpu', title: v.usage ? `from ${v.usage.source}` : '' }, v.usage ? ms(v.usage.cpuMs) : '-'),
      h('td', { class: 'vm-rss' }, v.usage ? size(v.usage.maxRssKiB * 1024) : '-'),
      h('td', { class: 'vm-total' }, ms(v.totalMs)), PHASES.map((p) => h('td', { 'data-phase': p }, v.phases ? ms(v.phases[p] ?? 0) : '-'))))));
}

async function jobPage(name, idx) {
  const base = `/api/experiments/${enc(name)}/jobs/${idx}`;
  const info = h('div');
  const out = h('pre', { class: 'log', id: 'stdout' });
  const err = h('pre', { class: 'log err', id: 'stderr' });
  const logState = h('span', { id: 'log-state', class: 'muted' }, 'connecting…');
  view.replaceChildren(
    h('p', {}, h('a', { href: `#/exp/${enc(name)}` }, `← ${name}`)), h('h1', {}, `Job ${idx} of ${name}`), info,
    h('h2', {}, 'Output ', logState), h('h3', {}, 'stdout'), out, h('h3', {}, 'stderr'), err,
  );
  const refresh = throttled(async () => {
    const { job, attempts } = await api(base);
    const last = attempts[attempts.length - 1];
    info.replaceChildren(
      boxed({ class: 'kv' }, h('tbody', {},
        h('tr', {}, h('td', {}, 'state'), h('td', { id: 'job-state' }, badge(job.state))),
        h('tr', {}, h('td', {}, 'params'), h('td', {}, Object.entries(job.params).map(([k, v]) => `${k}=${v}`).join(' '))),
        h('tr', {}, h('td', {}, 'exit code'), h('td', {}, job.exitCode ?? '-')),
        h('tr', {}, h('td', {}, 'error'), h('td', { class: 'error' }, job.error ?? '')),
        h('tr', {}, h('td', {}, 'attempts'), h('td', {}, `${job.attempts} (failures ${job.failures})`)),
      )),
      h('h2', {}, 'Attempts'),
      boxed({ id: 'attempts' }, h('thead', {}, h('tr', {}, ATTEMPT_COLS.map((x) => h('th', {}, x)))),
        h('tbody', {}, attempts.flatMap((a) => [h('tr', { class: rowClass(a.status), 'data-attempt': a.attempt },
          h('td', {}, a.attempt), h('td', {}, badge(a.status)), h('td', {}, a.exitCode ?? '-'), h('td', {}, a.runId ?? '-'),
          h('td', { class: 'start', title: a.start?.fallback ?? '' }, startLabel(a.start)), h('td', { class: 'host' }, a.host ?? '-'),
          h('td', { class: 'batch-id' }, a.batchId ?? '-'), h('td', { class: 'cpu', title: a.usage ? `from ${a.usage.source}` : '' }, a.usage ? ms(a.usage.cpuMs) : '-'),
          h('td', { class: 'rss' }, a.usage ? size(a.usage.maxRssKiB * 1024) : '-'), h('td', {}, time(a.startedAt)),
          h('td', {}, ms(a.totalMs)), PHASES.map((p) => h('td', {}, a.phases ? ms(a.phases[p] ?? 0) : '-')),
          h('td', { class: 'checkpoints' }, a.checkpoints.map((c) => h('div', { title: `${time(c.createdAt)}, ${size(c.bytes)}` }, `${c.id}${c.stopped ? ' (stopped)' : ''}`))),
          h('td', {}, a.files.map((f) => h('div', { class: 'file' }, IMAGE_NAME.test(f.path) ? thumbnail(name, idx, a.attempt, f.path) : '',
            h('a', { href: `${base}/files/${f.path.split('/').map(enc).join('/')}?attempt=${a.attempt}`, download: '' }, f.path), ` (${f.size} B)`)))),
          // A multi-VM job's VMs, in a row of their own under the attempt.
          Array.isArray(a.vms) && a.vms.length
            ? h('tr', { class: 'vms-row', 'data-vms-of': a.attempt }, h('td', {}), h('td', { colspan: ATTEMPT_COLS.length - 1 }, vmsTable(a.attempt, a.vms)))
            : null,
        ].filter(Boolean)))),
      last && !last.files.length ? h('p', { class: 'muted' }, 'no output files yet') : '',
    );
  });
  onChange = (ev) => { if (ev.experiments.includes(name)) refresh(); };
  await refresh();
  const logs = new EventSource(`${base}/log`);
  logs.addEventListener('attempt', (m) => {
    const a = JSON.parse(m.data);
    out.textContent = '';
    err.textContent = '';
    logState.textContent = `attempt ${a.attempt} (${a.runId ? `run ${a.runId}` : `on ${a.host}`}) — live`;
  });
  logs.addEventListener('log', (m) => {
    const d = JSON.parse(m.data);
    const el = d.stream === 'stderr' ? err : out;
    const stick = el.scrollTop + el.clientHeight >= el.scrollHeight - 4;
    el.append(d.text);
    if (stick) el.scrollTop = el.scrollHeight;
  });
  logs.addEventListener('end', (m) => {
    logState.textContent = `finished: ${JSON.parse(m.data).state}`;
    logs.close();
  });
  cleanup.push(() => logs.close());
}

// ---- units and bases ----
const size = (b) => (b >= 1 << 30 ? `${(b / (1 << 30)).toFixed(1)} GiB` : b >= 1 << 20 ? `${(b / (1 << 20)).toFixed(1)} MiB` : `${Math.round(b / 1024)} KiB`);
const short = (d) => (d ? d.replace(/^sha256:/, '').slice(0, 12) : '-');

async function unitsPage() {
  const body = h('tbody');
  view.replaceChildren(h('h1', {}, 'Units'), boxed({ id: 'units' }, h('thead', {}, h('tr', {}, ['Name', 'Version', 'Base', 'Layer chain (top first)', 'Size', 'Created'].map((x) => h('th', {}, x)))), body));
  const refresh = throttled(async () => {
    const list = await api('/api/units');
    body.replaceChildren(...list.map((u) => h('tr', {}, h('td', {}, u.name), h('td', {}, u.version), h('td', {}, `${u.base} (${short(u.baseDigest)})`),
      h('td', {}, u.chain.map((l) => h('div', {}, `${short(l.digest)} ${l.kind}${l.packages.length ? `: ${l.packages.join(' ')}` : ''} — ${size(l.size)}`))),
      h('td', {}, size(u.size)), h('td', {}, time(u.createdAt)))));
    if (!list.length) body.append(h('tr', {}, h('td', { colspan: 6, class: 'muted' }, 'No units: vmwu build DIR')));
  });
  onChange = (ev) => { if (ev.catalog) refresh(); };
  await refresh();
}

async function basesPage() {
  const body = h('tbody');
  view.replaceChildren(h('h1', {}, 'Bases'), boxed({ id: 'bases' }, h('thead', {}, h('tr', {}, ['Name', 'Digest', 'Arch', 'OS', 'Boot', 'Size', 'Virtual size', 'Created'].map((x) => h('th', {}, x)))), body));
  const refresh = throttled(async () => {
    const list = await api('/api/bases');
    body.replaceChildren(...list.map((b) => h('tr', {}, h('td', {}, b.name), h('td', {}, short(b.digest)), h('td', {}, b.arch), h('td', {}, b.os), h('td', {}, b.boot),
      h('td', {}, size(b.size)), h('td', {}, size(b.virtualSize)), h('td', {}, time(b.createdAt)))));
  });
  onChange = (ev) => { if (ev.catalog) refresh(); };
  await refresh();
}

// ---- routing ----
/** Counts the views asked for: a page that loads before it draws draws only if it is still the latest. */
let navigation = 0;

async function route() {
  const nav = ++navigation;
  leave();
  const parts = location.hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
  try {
    if (parts[0] === 'exp' && parts[1] && parts[2] === 'job' && /^\d+$/.test(parts[3] ?? '')) await jobPage(parts[1], Number(parts[3]));
    else if (parts[0] === 'exp' && parts[1]) await experimentPage(parts[1]);
    else if (parts[0] === 'units') await unitsPage();
    else if (parts[0] === 'bases') await basesPage();
    else await experimentsPage(nav);
  } catch (e) {
    if (nav === navigation) view.replaceChildren(h('p', { class: 'error' }, `Error: ${e.message}`));
  }
}
window.addEventListener('hashchange', route);
route();
