// /: spaces live now (hearing counts), coming up (countdowns), recordings;
// a form to start a space. The lists are polled every POLL_MS; a failed poll
// backs off with backoff.js's policy.
import { api, Retrier } from './api.js';
import { $, el, countdownText, counts, inSeconds } from './util.js';

const POLL_MS = 5000;
let spaces = [];

const link = (s, text) => el('a', { href: '/s/' + encodeURIComponent(s.id) }, text);

function renderSpaces() {
  const live = spaces.filter((s) => s.state === 'live');
  const soon = spaces.filter((s) => s.state === 'scheduled' || s.state === 'green')
    .sort((a, b) => (a.starts_at || 9e12) - (b.starts_at || 9e12));
  $('#live').replaceChildren(...live.map((s) => el('li', { dataset: { id: s.id } },
    el('span', { class: 'grow' }, el('span', { class: 'badge live' }, 'live'), ' ', link(s, s.title)),
    el('span', { class: 'meta' }, el('span', { class: 'count' }, String(counts(s).hearing || 0)), ' hearing'))));
  $('#scheduled').replaceChildren(...soon.map((s) => el('li', { dataset: { id: s.id } },
    el('span', { class: 'grow' }, el('span', { class: 'badge ' + s.state }, s.state), ' ', link(s, s.title)),
    el('span', { class: 'meta' }, 'starts in ', el('span', { class: 'countdown', dataset: { at: s.starts_at || '' } },
      s.starts_at ? countdownText(s.starts_at - Date.now() / 1000) : 'soon')))));
}

function renderRecordings(list) {
  $('#recordings').replaceChildren(...list.map((r) => el('li', { dataset: { id: r.space } },
    el('span', { class: 'grow' }, el('a', { href: '/s/' + encodeURIComponent(r.space) }, r.title || r.space)),
    el('span', { class: 'meta' }, `${Math.round(r.duration_s / 60)} min${r.recording ? ', still recording' : ''} · `,
      el('a', { href: r.url, download: '' }, 'download .opus')))));
}

// Countdowns move every second between polls.
setInterval(() => {
  for (const c of document.querySelectorAll('#scheduled .countdown'))
    if (c.dataset.at) c.textContent = countdownText(Number(c.dataset.at) - Date.now() / 1000);
}, 1000);

const retrier = new Retrier(() => refresh(), (ms) => {
  $('#load-status').textContent = `The server does not answer: trying again ${inSeconds(ms)}.`;
});

async function refresh() {
  try {
    const [sp, rec] = await Promise.all([api('GET', '/api/spaces'), api('GET', '/api/recordings')]);
    spaces = sp.spaces || [];
    renderSpaces();
    renderRecordings((rec && rec.recordings) || []);
    $('#load-status').textContent = '';
    retrier.failures = 0; // polling: each success starts the backoff over
    setTimeout(refresh, POLL_MS);
  } catch (e) {
    retrier.failed(e.retryAfterMs || 0);
  }
}
refresh();

$('#create').addEventListener('submit', async (e) => {
  e.preventDefault();
  const out = $('#create-status');
  try {
    const s = await api('POST', '/api/spaces', { body: { title: $('#create-title').value.trim() } });
    // the host key travels in the address once; the host page moves it to sessionStorage
    location.href = `/host/${encodeURIComponent(s.id)}?key=${encodeURIComponent(s.host_key)}`;
  } catch (err) {
    out.textContent = 'Could not create the space: ' + err.message;
  }
});
