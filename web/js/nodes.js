// Failover between nodes (docs/internals/web.md, Failover).
//
// The space's JSON lists the nodes that serve it too ("nodes": base URLs; at an edge, the
// other edges its origin knows and the origin last; at an origin with edges, its edges,
// least loaded first). Every client of the listen page (the player's paths, the event
// stream) builds its URLs on the page's current node, `nodes.current`, which starts as the
// node that served the page. A client whose node does not answer twice in a row (its stream
// failed and its probe got no answer, then the retry on that node failed the same way) asks
// to move: the current node becomes the next one of the list that is not the failed one and
// did not fail lately, and every client follows on its next attempt (each through its own
// Retrier: the jittered delays and Retry-After still apply). A 503 (the node is full) is an
// answer, not a death: the client stays and waits what Retry-After says.
//
//   page served by E1 --> nodes.current = E1 --stream fails, probe: no answer (1)-->
//   retry on E1 fails, probe: no answer (2) --> current = E2 (E1 marked down for DOWN_MS)
//   --> onSwitch: the page says "Switched to E2"; the event stream reopens there

export const FAILOVER_AFTER = 2; // consecutive no-answers on one node before moving
export const DOWN_MS = 60000; // a node that failed is tried last for this long
export const NODES_MAX = 16;

// The origin (scheme://host:port) of an http(s) URL, or null.
function originOf(url) {
  try {
    const u = new URL(url);
    return u.protocol === 'http:' || u.protocol === 'https:' ? u.origin : null;
  } catch {
    return null;
  }
}

export class Nodes {
  constructor(home = location.origin) {
    this.home = home; // the node that served the page
    this.current = home;
    this.known = []; // the last "nodes" list read, as origins
    this.down = new Map(); // origin -> when it failed (performance.now())
    this.switches = 0;
    this.subscribers = [];
  }

  // The space JSON's "nodes" (read on every space event); a missing list keeps the last.
  learn(list) {
    if (!Array.isArray(list)) return;
    const seen = new Set();
    this.known = list.map(originOf).filter((o) => o && !seen.has(o) && seen.add(o))
      .slice(0, NODES_MAX);
  }

  // A path on the current node: relative on the page's own node (as before failover
  // existed), absolute elsewhere.
  url(path, base = this.current) {
    return base === this.home ? path : base + path;
  }

  // A ws:// or wss:// URL for a path on the current node.
  wsUrl(path, base = this.current) {
    return base.replace(/^http/, 'ws') + path;
  }

  // fn(to, from) on every switch.
  subscribe(fn) {
    this.subscribers.push(fn);
  }

  // A client's attempt on `base` worked: its count of no-answers starts over.
  ok(client) {
    client.misses = 0;
  }

  // A client's attempt on `base` failed and its probe answered `status` (0: no answer).
  // True when the client should go on to nodes.current, which differs from `base` (it
  // moved now, or another client moved it already). Counts no-answers per client.
  failed(client, base, status) {
    const isDead = status === 0 || status === 502 || status === 504;
    if (!isDead) {
      client.misses = 0;
      return false;
    }
    if (base !== this.current) {
      client.misses = 0;
      return true;
    }
    client.misses = (client.misses || 0) + 1;
    if (client.misses < FAILOVER_AFTER) return false;
    client.misses = 0;
    return this.failover(base) !== null;
  }

  // Moves away from `from`: the first node of the list that is not `from` and did not fail
  // within DOWN_MS, else the one that failed longest ago. Null when there is no other node.
  failover(from) {
    const now = performance.now();
    this.down.set(from, now);
    const others = this.known.filter((o) => o !== from);
    if (!others.length) return null;
    const up = others.find((o) => !this.down.has(o) || now - this.down.get(o) > DOWN_MS);
    const to = up || others.reduce((a, b) => (this.down.get(a) <= this.down.get(b) ? a : b));
    this.current = to;
    this.switches++;
    for (const fn of this.subscribers) {
      try { fn(to, from); } catch (e) { console.warn('nodes subscriber', e); }
    }
    return to;
  }
}

// The page's one instance (the listen page; other pages never move). Outside a browser
// (tests/e2e/test_nodes.py runs this module in Node) there is no location.
export const nodes = new Nodes(typeof location === 'undefined' ? '' : location.origin);
