// /s/{id}: the listen page. Play/stop, the hearing count and speakers from
// the space's event stream, "starting soon" with a countdown, the replay once
// ended, the low-latency and HLS switches (one at a time), and a request to speak.
// When the node that serves it dies, the page moves to another node of the space's
// "nodes" list (nodes.js) and says so in #node.
import { api, spacePath, SpaceWatch } from './api.js';
import { nodes } from './nodes.js';
import { Player } from './player.js';
import { $, el, countdownText, counts, setStatus, setWaitStatus, spaceIdFromPath } from './util.js';

const id = spaceIdFromPath();
const status = $('#status'), play = $('#play'), ll = $('#lowlatency'), hls = $('#hls');
let space = null; // the last space JSON

const player = new Player(id, onPlayerState);
window.tribune = { player, nodes };

// The player or the event stream moved to another node: say where, and why.
nodes.subscribe((to, from) => {
  const box = $('#node');
  box.textContent = `Switched to ${new URL(to).host}: ${new URL(from).host} stopped answering.`;
  box.dataset.node = to;
  box.hidden = false;
});

// What the player does, shown in #status (data-state is the machine word).
function onPlayerState(state, arg) {
  if (space && space.state === 'ended' && state !== 'idle') state = 'ended';
  // not live yet: the server holds us (silent) until the host goes live
  else if ((state === 'playing' || state === 'connecting') && space && space.state !== 'live' &&
    player.playing) state = 'waiting';
  switch (state) {
    case 'connecting': return setStatus(status, 'connecting', 'Connecting…');
    case 'playing': return setStatus(status, 'playing', player.mode === 'ws'
      ? 'Playing (low latency)' : player.mode === 'hls' ? 'Playing (HLS)' : 'Playing');
    case 'waiting': return setStatus(status, 'waiting', 'Starting soon: you will hear it when it goes live.');
    case 'reconnecting': return setWaitStatus(status, 'reconnecting', 'Connection lost: reconnecting', arg);
    case 'ended': return ended();
    case 'unavailable':
      if (arg === 'hls') {
        hls.checked = false;
        player.setHls(false);
        return setStatus(status, 'connecting', 'HLS is not available here (no hls.js in this build, or no Media Source Extensions): using the standard stream.');
      }
      ll.checked = false;
      player.setLowLatency(false);
      return setStatus(status, 'connecting', 'Low latency is not available here: using the standard stream.');
    default: return setStatus(status, 'idle', 'Press play to listen.');
  }
}

function ended() {
  if (player.playing) player.stop();
  setPlayButton(false);
  play.disabled = true;
  setStatus(status, 'ended', 'This space has ended.');
  const url = (space && space.recording && space.recording.url) ||
    '/spaces/' + encodeURIComponent(id) + '/recording.opus';
  const replay = $('#replay');
  if (replay.getAttribute('src') !== url) replay.src = url;
  $('#replay-box').hidden = false;
  $('#request-box').hidden = true; // requests to an ended space are refused
}

function setPlayButton(on) {
  play.setAttribute('aria-pressed', String(on));
  play.textContent = on ? 'Stop' : 'Play';
}

play.addEventListener('click', async () => {
  if (player.playing) {
    player.stop();
    setPlayButton(false);
    return;
  }
  setPlayButton(true);
  try {
    await player.play();
  } catch (e) {
    setStatus(status, 'idle', 'Could not start the player: ' + e.message);
    setPlayButton(false);
  }
});

ll.addEventListener('change', () => {
  if (ll.checked) hls.checked = false;
  player.setLowLatency(ll.checked);
});
hls.addEventListener('change', () => {
  if (hls.checked) ll.checked = false;
  player.setHls(hls.checked);
});

// ---- the space, from its event stream ----

function render(s) {
  space = s;
  nodes.learn(s.nodes);
  player.setSpaceState(s.state);
  $('#title').textContent = s.title;
  document.title = s.title + ' · Tribune';
  const st = $('#state');
  st.textContent = s.state;
  st.className = 'badge ' + s.state;
  $('#count').textContent = String(counts(s).hearing || 0);
  renderSpeakers(s.speakers || []);
  $('#countdown-box').hidden = !(s.state === 'scheduled' || s.state === 'green');
  tick();
  if (s.state === 'ended') ended();
  else if (player.playing && status.dataset.state === 'waiting' && s.state === 'live')
    onPlayerState(player.impl && player.impl.isAudible === false ? 'connecting' : 'playing');
  else if (player.playing && s.state !== 'live' &&
    ['playing', 'connecting'].includes(status.dataset.state)) onPlayerState('waiting');
}

function renderSpeakers(list) {
  const ul = $('#speakers');
  ul.replaceChildren(...list.filter((p) => p.connected).map((p) => {
    const cls = ['connected', p.talking ? 'talking' : '', p.muted ? 'muted' : ''].filter(Boolean);
    return el('li', { dataset: { name: p.name }, class: cls.join(' ') },
      el('span', { class: 'name grow' }, p.name),
      el('span', { class: 'meta' }, p.muted ? 'muted' : p.talking ? 'talking' : ''));
  }));
}

// The countdown to starts_at, once a second while scheduled or green.
function tick() {
  if (!space) return;
  const c = $('#countdown');
  if (space.starts_at) c.textContent = countdownText(space.starts_at - Date.now() / 1000);
  else c.textContent = 'soon';
}
setInterval(tick, 1000);

new SpaceWatch(id, render, (state) => {
  if (state === 'gone') {
    $('#title').textContent = 'No such space';
    play.disabled = true;
  }
}, nodes).start();

// ---- request to speak ----

$('#request-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const name = $('#request-name').value.trim();
  const out = $('#request-status');
  $('#request').disabled = true;
  try {
    const r = await api('POST', spacePath(id) + '/requests', { body: { name } });
    out.textContent = 'Request sent: waiting for the host…';
    waitForDecision(r.id, r.token, name);
  } catch (err) {
    out.textContent = 'Could not send the request: ' + err.message;
    $('#request').disabled = false;
  }
});

// Polls the request every 2 s until the host decides (at most for an hour).
async function waitForDecision(rid, token, name) {
  const out = $('#request-status');
  for (let i = 0; i < 1800; i++) {
    await new Promise((r) => setTimeout(r, 2000));
    let r;
    try {
      r = await api('GET', `${spacePath(id)}/requests/${rid}`, { key: token });
    } catch (err) {
      if (err.status === 401 || err.status === 404) {
        out.textContent = 'The request is gone: ' + err.message;
        return;
      }
      continue; // the server is away: ask again
    }
    if (r.state === 'refused') {
      out.textContent = 'The host declined your request.';
      return;
    }
    if (r.state === 'approved' && !r.key) {
      out.textContent = 'Approved, but the key was already collected (by another tab?).';
      return;
    }
    if (r.state === 'approved') {
      out.textContent = 'Approved! You can join the stage.';
      const a = $('#speak-link');
      a.href = `/speak/${encodeURIComponent(id)}?name=${encodeURIComponent(name)}&key=${encodeURIComponent(r.key)}`;
      a.hidden = false;
      return;
    }
  }
}
