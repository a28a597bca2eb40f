// /speak/{id}?name=NAME&key=KEY (an invited speaker) or ?key=HOSTKEY (the
// host): join from the browser microphone, with a level meter and mute. The
// key moves to sessionStorage and leaves the address bar.
import { api, spacePath } from './api.js';
import { Speaker } from './speaker.js';
import { $, setStatus, setWaitStatus, spaceIdFromPath } from './util.js';

const id = spaceIdFromPath();
const params = new URLSearchParams(location.search);
const name = params.get('name') || '';
const keyName = `tribune.speak.${id}.${name}`;
if (params.get('key')) {
  sessionStorage.setItem(keyName, params.get('key'));
  params.delete('key');
  const q = params.toString();
  history.replaceState(null, '', location.pathname + (q ? '?' + q : ''));
}
const key = sessionStorage.getItem(keyName) || '';
const status = $('#status'), join = $('#join'), mute = $('#mute');
$('#who').textContent = name || 'the host';
$('#listen-link').href = '/s/' + encodeURIComponent(id);
if (!key) {
  join.disabled = true;
  setStatus(status, 'idle', 'This link has no key: ask the host for your speaker link.');
}

const speaker = new Speaker(id, key, name, (what, value, arg) => {
  if (what === 'servermuted') $('#server-muted').hidden = !value;
  if (what === 'spacestate') showState(value);
  if (what !== 'state') return;
  switch (value) {
    case 'connecting': return setStatus(status, 'connecting', 'Connecting…');
    case 'speaking': return setStatus(status, 'speaking', speaker.muted ? 'On stage, muted' : 'On stage: you are heard');
    case 'reconnecting': return setWaitStatus(status, 'reconnecting', speaker.busy
      ? 'This speaker is connected elsewhere (another tab?): trying again' : 'Connection lost: reconnecting', arg);
    case 'removed': leave(); return setStatus(status, 'removed', 'The host removed you from the stage' + (arg ? ` (${arg})` : '') + '.');
    case 'ended': leave(); return setStatus(status, 'ended', 'The space has ended. Thank you!');
  }
});
window.tribune = { speaker };

function leave() {
  join.textContent = 'Join the stage';
  join.disabled = true;
  mute.disabled = true;
}

join.addEventListener('click', async () => {
  if (speaker.active) {
    speaker.stop();
    setStatus(status, 'idle', 'You left the stage.');
    join.textContent = 'Join the stage';
    mute.disabled = true;
    return;
  }
  join.disabled = true;
  setStatus(status, 'connecting', 'Starting the microphone…');
  try {
    await speaker.start();
    join.textContent = 'Leave the stage';
    mute.disabled = false;
  } catch (e) {
    speaker.stop();
    setStatus(status, 'idle', 'Could not start the microphone: ' + e.message);
  }
  join.disabled = false;
});

mute.addEventListener('click', () => {
  const m = !speaker.muted;
  speaker.setMuted(m);
  mute.setAttribute('aria-pressed', String(m));
  mute.textContent = m ? 'Unmute' : 'Mute';
  if (status.dataset.state === 'speaking')
    setStatus(status, 'speaking', m ? 'On stage, muted' : 'On stage: you are heard');
});

// The level meter follows the microphone ~10 times a second.
setInterval(() => {
  const m = $('#level');
  m.value = speaker.stats.level;
  m.textContent = speaker.stats.level.toFixed(2);
}, 100);

function showState(word) {
  const st = $('#state');
  st.textContent = word;
  st.className = 'badge ' + word;
}

// The space's title and state once; then the speak socket's hello and state
// messages keep the badge current. (No event stream here: a browser allows 6
// connections per server, and a host often has this page, the console and a
// listen page open at once.)
api('GET', spacePath(id)).then((s) => {
  $('#title').textContent = s.title;
  document.title = 'Speak: ' + s.title + ' · Tribune';
  showState(s.state);
}).catch((e) => ($('#title').textContent = e.status === 404 ? 'No such space' : 'Tribune'));
