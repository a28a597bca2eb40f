// Small DOM and formatting helpers shared by the pages.

export const $ = (sel, root = document) => root.querySelector(sel);

// el('li', {class: 'x', dataset: {id: 1}}, 'text', child...): a new element.
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'dataset') Object.assign(e.dataset, v);
    else if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k in e && typeof v !== 'string') e[k] = v;
    else e.setAttribute(k, v === true ? '' : v);
  }
  e.append(...children.filter((c) => c !== null && c !== undefined));
  return e;
}

// The space id from /s/{id}, /host/{id} or /speak/{id}.
export function spaceIdFromPath() {
  const parts = location.pathname.split('/').filter(Boolean);
  return decodeURIComponent(parts[1] || '');
}

// "1 h 02 min", "4 min 05 s", "12 s" until `seconds` from now.
export function countdownText(seconds) {
  if (seconds <= 0) return 'any moment now';
  const s = Math.floor(seconds % 60), m = Math.floor(seconds / 60) % 60, h = Math.floor(seconds / 3600);
  const pad = (n) => String(n).padStart(2, '0');
  if (h >= 48) return `${Math.floor(h / 24)} days`;
  if (h) return `${h} h ${pad(m)} min`;
  if (m) return `${m} min ${pad(s)} s`;
  return `${s} s`;
}

// Sets a status element: its machine word (data-state) and its human text.
export function setStatus(elem, state, text) {
  delete elem.dataset.wait;
  elem.dataset.state = state;
  elem.textContent = text;
}

// "in 3 s" for a delay in milliseconds.
export function inSeconds(ms) {
  return ms < 1000 ? 'in less than a second' : `in ${Math.round(ms / 1000)} s`;
}

// Shows "<prefix> in N s" on a status element and counts down once a second
// until the status changes (setStatus by anyone else ends it).
let countdownTimer = null;
export function setWaitStatus(elem, state, prefix, ms) {
  clearInterval(countdownTimer);
  const until = performance.now() + ms;
  const show = () => {
    const left = until - performance.now();
    if (elem.dataset.state !== state || elem.dataset.wait !== prefix || left <= 0)
      return clearInterval(countdownTimer);
    elem.textContent = `${prefix} ${inSeconds(left)}`;
  };
  elem.dataset.state = state;
  elem.dataset.wait = prefix;
  elem.textContent = `${prefix} ${inSeconds(ms)}`;
  countdownTimer = setInterval(show, 1000);
}

// The speakers' counts shape: the API calls them "listeners" (the issue's contract says "counts").
export function counts(space) {
  return space.listeners || space.counts || {};
}

// An absolute ws:// or wss:// URL for a path on this server.
export function wsUrl(path) {
  return (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + path;
}
