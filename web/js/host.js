// /host/{id}?key=HOSTKEY: the host console. The key leaves the address bar at
// once (sessionStorage, history.replaceState) and goes with each host action
// as "Authorization: Bearer". Speakers and counts come from the event stream;
// the request queue is polled every REQUESTS_MS.
import { api, spacePath, SpaceWatch, Retrier } from './api.js';
import { Chart } from './chart.js';
import { $, el, counts, spaceIdFromPath } from './util.js';

const REQUESTS_MS = 3000;
const BUILTIN = new Set(['host', 'demo']);
const id = spaceIdFromPath();
const base = spacePath(id);
const keyName = 'tribune.host.' + id, invitesName = 'tribune.invites.' + id;

// ---- the key ----
const params = new URLSearchParams(location.search);
if (params.get('key')) {
  sessionStorage.setItem(keyName, params.get('key'));
  params.delete('key');
  const q = params.toString();
  history.replaceState(null, '', location.pathname + (q ? '?' + q : '') + location.hash);
}
let key = sessionStorage.getItem(keyName) || '';
$('#key-form').hidden = !!key;
$('#key-form').addEventListener('submit', (e) => {
  e.preventDefault();
  key = $('#host-key').value.trim();
  sessionStorage.setItem(keyName, key);
  $('#key-form').hidden = true;
  setLinks();
  pollRequests();
});

function setLinks() {
  $('#listen-link').href = '/s/' + encodeURIComponent(id);
  $('#speak-self').href = `/speak/${encodeURIComponent(id)}?key=${encodeURIComponent(key)}`;
}
setLinks();

function say(text) {
  $('#message').textContent = text;
}

// A host action; errors are shown, 401 asks for the key again.
async function act(method, path, body) {
  try {
    const r = await api(method, base + path, { key, body });
    say('');
    return r;
  } catch (e) {
    say(e.message);
    if (e.status === 401) $('#key-form').hidden = false;
    return null;
  }
}

// ---- on air ----
$('#go-live').addEventListener('click', () => act('POST', '/live'));
$('#end').addEventListener('click', () => act('POST', '/end'));

// ---- the space ----
const chart = new Chart($('#chart'), [
  { key: 'hearing', label: 'hearing', color: '#2e7d32' },
  { key: 'lagging', label: 'lagging', color: '#c62828' },
]);

function render(s) {
  $('#title').textContent = s.title;
  document.title = 'Host: ' + s.title + ' · Tribune';
  const st = $('#state');
  st.textContent = s.state;
  st.className = 'badge ' + s.state;
  const c = counts(s);
  $('#hearing').textContent = String(c.hearing || 0);
  $('#lagging').textContent = String(c.lagging || 0);
  $('#waiting').textContent = String(c.waiting || 0);
  chart.push({ hearing: c.hearing || 0, lagging: c.lagging || 0 });
  $('#go-live').disabled = s.state === 'live' || s.state === 'ended';
  $('#end').disabled = s.state === 'ended';
  renderSpeakers(s.speakers || []);
}

function renderSpeakers(list) {
  const ul = $('#speakers');
  // rebuild only what changed, so that keyboard focus stays on its button
  const seen = new Set();
  for (const p of list) {
    seen.add(p.name);
    let li = ul.querySelector(`li[data-name="${CSS.escape(p.name)}"]`);
    if (!li) {
      li = el('li', { dataset: { name: p.name } },
        el('span', { class: 'name grow' }, p.name), el('span', { class: 'meta state' }),
        el('button', { type: 'button', class: 'mute secondary', 'aria-pressed': 'false' }, 'Mute'),
        // the host's own microphone and the demo's built-in speaker are not invited: no remove
        BUILTIN.has(p.name) ? null : el('button', { type: 'button', class: 'remove secondary' }, 'Remove'));
      li.querySelector('.mute').addEventListener('click', () => {
        const muted = li.querySelector('.mute').getAttribute('aria-pressed') === 'true';
        setMuteButton(li, !muted); // at once; the next event confirms
        act('POST', `/speakers/${encodeURIComponent(p.name)}/${muted ? 'unmute' : 'mute'}`);
      });
      li.querySelector('.remove')?.addEventListener('click', async () => {
        if (await act('DELETE', `/speakers/${encodeURIComponent(p.name)}`)) li.remove();
      });
      ul.append(li);
    }
    li.classList.toggle('connected', !!p.connected);
    li.classList.toggle('talking', !!p.talking);
    li.classList.toggle('muted', !!p.muted);
    li.querySelector('.state').textContent = p.connected ? (p.talking ? 'talking' : 'connected') : 'not connected';
    setMuteButton(li, !!p.muted);
  }
  for (const li of [...ul.children]) if (!seen.has(li.dataset.name)) li.remove();
}

function setMuteButton(li, muted) {
  const b = li.querySelector('.mute');
  b.setAttribute('aria-pressed', String(muted));
  b.textContent = muted ? 'Unmute' : 'Mute';
  b.setAttribute('aria-label', `${muted ? 'Unmute' : 'Mute'} ${li.dataset.name}`);
  li.querySelector('.remove')?.setAttribute('aria-label', `Remove ${li.dataset.name}`);
}

new SpaceWatch(id, render, (state) => {
  if (state === 'gone') say('There is no such space.');
  if (state === 'reconnecting') say('Lost the connection to the server: reconnecting…');
  if (state === 'open') say('');
}).start();

// ---- invites (kept in this tab: the keys are shown once) ----
const invites = JSON.parse(sessionStorage.getItem(invitesName) || '[]');

function speakUrl(name, k) {
  return `${location.origin}/speak/${encodeURIComponent(id)}?name=${encodeURIComponent(name)}&key=${encodeURIComponent(k)}`;
}

function renderInvites() {
  $('#invites').replaceChildren(...invites.map(({ name, key: k }) => {
    const input = el('input', { class: 'link', type: 'text', readonly: true, value: speakUrl(name, k),
      'aria-label': `Speak link for ${name}` });
    const copy = el('button', { type: 'button', class: 'copy secondary', 'aria-label': `Copy the link for ${name}` }, 'Copy');
    copy.addEventListener('click', async () => {
      input.select();
      try {
        await navigator.clipboard.writeText(input.value);
      } catch {
        document.execCommand('copy'); // older browsers, or no clipboard permission
      }
      copy.textContent = 'Copied';
      setTimeout(() => (copy.textContent = 'Copy'), 1500);
    });
    return el('li', { dataset: { name } }, el('span', { class: 'name' }, name), input, copy);
  }));
}
renderInvites();

$('#invite').addEventListener('submit', async (e) => {
  e.preventDefault();
  const name = $('#invite-name').value.trim();
  const r = await act('POST', '/speakers', { name });
  if (!r) return;
  invites.push({ name: r.name, key: r.key });
  sessionStorage.setItem(invitesName, JSON.stringify(invites));
  renderInvites();
  $('#invite-name').value = '';
});

// ---- requests to speak ----
const reqRetry = new Retrier(() => pollRequests());
let reqTimer = null;

async function pollRequests() {
  clearTimeout(reqTimer);
  if (!key) return;
  try {
    const r = await api('GET', base + '/requests', { key });
    reqRetry.failures = 0;
    renderRequests((r.requests || []).filter((q) => q.state === 'pending'));
    reqTimer = setTimeout(pollRequests, REQUESTS_MS);
  } catch (e) {
    if (e.status === 401) return say('The host key was refused.'), ($('#key-form').hidden = false);
    if (e.status !== 404) reqRetry.failed();
  }
}

function renderRequests(list) {
  $('#requests').replaceChildren(...list.map((q) => {
    const decide = (how) => async () => {
      if (await act('POST', `/requests/${q.id}/${how}`)) pollRequests();
    };
    return el('li', { dataset: { id: String(q.id) } },
      el('span', { class: 'name grow' }, q.name),
      el('button', { type: 'button', class: 'approve', onclick: decide('approve'), 'aria-label': `Approve ${q.name}` }, 'Approve'),
      el('button', { type: 'button', class: 'refuse secondary', onclick: decide('refuse'), 'aria-label': `Refuse ${q.name}` }, 'Refuse'));
  }));
}
pollRequests();
