// Shared helpers for Tribune's browser tests (real Chromium, driven by playwright-core).
//
// What is here:
//   - Server: start $TRIBUNE_BIN serve (or demo) on a free loopback port with a fresh data dir,
//     wait until GET /api/spaces answers 200; stop (SIGTERM, exit 0 expected), kill (SIGKILL),
//     restart on the same port and data dir; the server's log (stderr) goes to a file.
//   - http()/api(): one request with a JSON body or answer; the rooms API (create, invite, live,
//     mute, remove, requests ...), routes and bodies as in README.md and src/api/.
//   - launchBrowser(): Debian's /usr/bin/chromium, headless, with the fake media device flags
//     (optionally a WAV file as the fake microphone); page console and errors go to our log.
//   - waitUntil(): poll a condition with a deadline (never sleep in place of a condition).
//   - Signal helpers: goertzel(), beepWav() (48 kHz mono 16-bit WAV of short tones once a
//     second), ffmpegCapture() (decode a URL to s16le), percentile().
//   - runTest(): the standard main: a whole-test deadline, PASS/FAIL line, exit status, cleanup
//     of servers and browsers; the temp dir is removed on success, kept on failure or with
//     TRIBUNE_E2E_KEEP=1.
//
// Rules every test follows: no sleep in place of a condition, every loop bounded by count and
// deadline, loopback only (127.0.0.1).
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

export const HERE = path.dirname(fileURLToPath(import.meta.url));
export const ROOT = path.dirname(path.dirname(HERE));
export const TRIBUNE_BIN = process.env.TRIBUNE_BIN || path.join(ROOT, 'build', 'tribune');
export const IS_ASAN = TRIBUNE_BIN.includes('asan');
export const SLOW = IS_ASAN ? 3 : 1;
export const KEEP = process.env.TRIBUNE_E2E_KEEP === '1';
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
export const ARTIFACTS = path.join(ROOT, 'build', 'artifacts');

const T0 = performance.now();
const servers = [];
const browsers = [];
let tmpRoot = null;

export class TestFailure extends Error {}

export function log(msg) {
    const t = ((performance.now() - T0) / 1000).toFixed(2).padStart(7);
    console.log(`[${t}] ${msg}`);
}

export function check(cond, msg) {
    if (!cond) throw new TestFailure(typeof msg === 'function' ? msg() : msg);
}

export function sleep(ms) {
    return new Promise((r) => setTimeout(r, ms));
}

// Polls pred() (sync or async) until it returns a truthy value, or fails after timeoutMs.
// Exceptions from pred count as "not yet" (the last one is quoted on timeout).
export async function waitUntil(pred, timeoutMs, what, intervalMs = 50) {
    const deadline = performance.now() + timeoutMs;
    let lastErr = null;
    for (let n = 0; n < 1_000_000; n++) {
        try {
            const v = await pred();
            if (v) return v;
        } catch (e) {
            lastErr = e;
        }
        if (performance.now() >= deadline) break;
        await sleep(intervalMs);
    }
    throw new TestFailure(
        `timed out after ${(timeoutMs / 1000).toFixed(1)}s waiting for: ${what}` +
            (lastErr ? ` (last error: ${lastErr.message || lastErr})` : ''),
    );
}

// The test's temp dir (one per process); sub-directories with tmpdir(name).
export function tmpdir(name) {
    if (!tmpRoot) tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'tribune-browser-'));
    if (!name) return tmpRoot;
    const d = fs.mkdtempSync(path.join(tmpRoot, `${name}-`));
    return d;
}

export function freePort() {
    return new Promise((resolve, reject) => {
        const s = net.createServer();
        s.on('error', reject);
        s.listen(0, '127.0.0.1', () => {
            const { port } = s.address();
            s.close(() => resolve(port));
        });
    });
}

// ---- the server -------------------------------------------------------------------------------

export class Server {
    // new Server({cmd: 'serve'|'demo', extra: ['--log_level', 'debug'], name})
    constructor({ cmd = 'serve', extra = [], dataDir = null, name = null } = {}) {
        this.cmd = cmd;
        this.extra = extra;
        this.dataDir = dataDir || tmpdir('data');
        this.name = name || cmd;
        this.proc = null;
        this.port = null;
        this.logPath = null;
        this.logs = []; // every log file of this server, one per start
        this.exited = null;
        servers.push(this);
    }

    get url() {
        return `http://127.0.0.1:${this.port}`;
    }

    get host() {
        return `127.0.0.1:${this.port}`;
    }

    // Starts on a free port, or on `port` (a restart on the same address).
    async start({ port = null, readyMs = 15000 * SLOW } = {}) {
        check(fs.existsSync(TRIBUNE_BIN), `TRIBUNE_BIN ${TRIBUNE_BIN} is missing: build it first`);
        let last = '';
        for (let attempt = 0; attempt < 3; attempt++) {
            this.port = port || (await freePort());
            this.logPath = path.join(tmpdir(), `server-${this.name}-${this.port}-${this.logs.length}.log`);
            this.logs.push(this.logPath);
            const argv = [this.cmd, '--listen', this.host, '--data', this.dataDir, ...this.extra];
            log(`start: ${TRIBUNE_BIN} ${argv.join(' ')}`);
            const fd = fs.openSync(this.logPath, 'w');
            this.proc = spawn(TRIBUNE_BIN, argv, { stdio: ['ignore', fd, fd] });
            fs.closeSync(fd);
            this.exited = null;
            const proc = this.proc;
            const exited = new Promise((r) => proc.on('exit', (code, sig) => r({ code, sig })));
            proc.exitedPromise = exited;
            exited.then((x) => {
                if (this.proc === proc) this.exited = x;
            });
            const deadline = performance.now() + readyMs;
            while (performance.now() < deadline && !this.exited) {
                try {
                    const r = await http(this, 'GET', '/api/spaces', { timeoutMs: 2000 });
                    if (r.status === 200) {
                        log(`server ${this.name} ready on port ${this.port} (pid ${proc.pid})`);
                        return this;
                    }
                } catch {
                    /* not yet */
                }
                await sleep(50);
            }
            if (!this.exited) {
                this.kill();
                throw new TestFailure(`server did not answer GET /api/spaces within ${readyMs} ms\n${this.logTail()}`);
            }
            last = `server exited with ${JSON.stringify(this.exited)} before becoming ready\n${this.logTail()}`;
            if (!/in use/i.test(this.logText())) break;
        }
        throw new TestFailure(last);
    }

    alive() {
        return this.proc !== null && this.exited === null && this.proc.exitCode === null && this.proc.signalCode === null;
    }

    logText(all = false) {
        const files = all ? this.logs : [this.logPath];
        return files
            .map((f) => {
                try {
                    return fs.readFileSync(f, 'utf8');
                } catch {
                    return '';
                }
            })
            .join('');
    }

    logTail(n = 40) {
        const lines = this.logText().split('\n');
        return `---- server ${this.name} log (${this.logPath}), last ${Math.min(n, lines.length)} lines ----\n${lines
            .slice(-n)
            .join('\n')}\n---- end of server log ----`;
    }

    checkAlive(what = '') {
        check(this.alive(), () => `server died ${what}\n${this.logTail()}`);
    }

    // SIGTERM; the server must exit 0 within timeoutMs, with no sanitizer report in its log.
    async stop(timeoutMs = 10000) {
        if (!this.proc || this.stoppedOnPurpose) return;
        check(this.alive(), () => `server had already exited (${JSON.stringify(this.exited)}) before stop\n${this.logTail()}`);
        const proc = this.proc;
        proc.kill('SIGTERM');
        const r = await Promise.race([proc.exitedPromise, sleep(timeoutMs).then(() => null)]);
        if (!r) {
            proc.kill('SIGKILL');
            throw new TestFailure(`server did not exit within ${timeoutMs} ms of SIGTERM\n${this.logTail()}`);
        }
        this.stoppedOnPurpose = true;
        check(r.code === 0, () => `server exited with ${JSON.stringify(r)} after SIGTERM\n${this.logTail()}`);
        for (const m of ['AddressSanitizer', 'LeakSanitizer', 'runtime error']) {
            check(!this.logText(true).includes(m), () => `server log contains ${m}\n${this.logTail(80)}`);
        }
        log(`server ${this.name} stopped cleanly`);
    }

    // SIGKILL, waits for the exit.
    async kill() {
        if (!this.proc || !this.alive()) return;
        const proc = this.proc;
        this.stoppedOnPurpose = true;
        proc.kill('SIGKILL');
        await proc.exitedPromise;
    }

    // SIGKILL then start again on the same port and data dir (a fresh log file).
    async restart() {
        const port = this.port;
        await this.kill();
        this.stoppedOnPurpose = false;
        return this.start({ port });
    }
}

// One HTTP request to the server. Returns {status, headers, text, json}. 4xx/5xx are results.
export async function http(srv, method, p, { body = undefined, headers = {}, timeoutMs = 5000 } = {}) {
    const h = { ...headers };
    let b = body;
    if (b !== undefined && typeof b !== 'string') {
        b = JSON.stringify(b);
        h['Content-Type'] = 'application/json';
    }
    const res = await fetch(srv.url + p, { method, headers: h, body: b, signal: AbortSignal.timeout(timeoutMs) });
    const text = await res.text();
    let json = null;
    try {
        json = JSON.parse(text);
    } catch {
        /* not JSON */
    }
    return { status: res.status, headers: res.headers, text, json };
}

// A request that must answer `want` (a status or a list); returns the parsed JSON.
export async function api(srv, method, p, { body, key, want = [200, 201] } = {}) {
    const headers = key ? { Authorization: `Bearer ${key}` } : {};
    const r = await http(srv, method, p, { body, headers });
    const ok = Array.isArray(want) ? want.includes(r.status) : r.status === want;
    check(ok, () => `${method} ${p} answered ${r.status} (want ${want}): ${r.text.slice(0, 300)}`);
    return r.json;
}

// The rooms API (README "HTTP surface"; src/api/api.c and rooms.c).
export const rooms = {
    create: (srv, title, startsAt) =>
        api(srv, 'POST', '/api/spaces', { body: startsAt ? { title, starts_at: startsAt } : { title }, want: 201 }),
    get: (srv, id) => api(srv, 'GET', `/api/spaces/${id}`, { want: 200 }),
    list: (srv) => api(srv, 'GET', '/api/spaces', { want: 200 }),
    invite: (srv, sp, name) =>
        api(srv, 'POST', `/api/spaces/${sp.id}/speakers`, { body: { name }, key: sp.host_key, want: 201 }),
    speakers: (srv, sp) => api(srv, 'GET', `/api/spaces/${sp.id}/speakers`, { key: sp.host_key, want: 200 }),
    live: (srv, sp) => api(srv, 'POST', `/api/spaces/${sp.id}/live`, { key: sp.host_key, want: 200 }),
    end: (srv, sp) => api(srv, 'POST', `/api/spaces/${sp.id}/end`, { key: sp.host_key, want: 200 }),
    mute: (srv, sp, name) => api(srv, 'POST', `/api/spaces/${sp.id}/speakers/${name}/mute`, { key: sp.host_key, want: 200 }),
    unmute: (srv, sp, name) =>
        api(srv, 'POST', `/api/spaces/${sp.id}/speakers/${name}/unmute`, { key: sp.host_key, want: 200 }),
    remove: (srv, sp, name) => api(srv, 'DELETE', `/api/spaces/${sp.id}/speakers/${name}`, { key: sp.host_key, want: 200 }),
    request: (srv, id, name) => api(srv, 'POST', `/api/spaces/${id}/requests`, { body: { name }, want: 201 }),
    requests: (srv, sp) => api(srv, 'GET', `/api/spaces/${sp.id}/requests`, { key: sp.host_key, want: 200 }),
};

// ---- the browser ------------------------------------------------------------------------------

// Chromium with the fake media device (a WAV as the microphone when `micWav` is given), audio
// autoplay allowed, no network beyond loopback. Page console lines and errors go to our log.
export async function launchBrowser({ micWav = null, args = [] } = {}) {
    check(fs.existsSync(CHROMIUM), `${CHROMIUM} is missing: scripts/deps.sh installs Debian's chromium`);
    const flags = [
        '--no-sandbox',
        '--use-fake-ui-for-media-stream',
        '--use-fake-device-for-media-stream',
        '--autoplay-policy=no-user-gesture-required',
        '--disable-background-timer-throttling',
        '--disable-renderer-backgrounding',
        '--disable-backgrounding-occluded-windows',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-quic',
        '--no-first-run',
        ...args,
    ];
    if (micWav) flags.push(`--use-file-for-fake-audio-capture=${micWav}`);
    const b = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: flags });
    browsers.push(b);
    return b;
}

// A new page whose console and errors are logged with `tag`; errors are kept in page.errors.
// Each page gets its own browser context unless `context` is given: Chromium allows 6 HTTP/1.1
// connections per host in a profile, and every Tribune page holds an SSE stream (a listener also
// its audio), so a few pages of one profile starve each other; people are separate profiles.
export async function newPage(browser, tag, { width = 1280, height = 800, context = null } = {}) {
    const ctx = context || (await browser.newContext({ viewport: { width, height } }));
    const page = await ctx.newPage();
    page.errors = [];
    page.on('console', (m) => {
        if (m.type() === 'error' || m.type() === 'warning' || process.env.BROWSER_CONSOLE === '1')
            log(`${tag} console.${m.type()}: ${m.text()}`);
    });
    page.on('response', (r) => {
        if (r.status() >= 400) log(`${tag} ${r.request().method()} ${r.url()} -> ${r.status()}`);
    });
    page.on('pageerror', (e) => {
        page.errors.push(String(e));
        log(`${tag} page error: ${e}`);
    });
    return page;
}

// ---- signals ----------------------------------------------------------------------------------

// Goertzel power of `freq` in samples (any array of numbers), normalized by length^2.
export function goertzel(samples, rate, freq) {
    const w = (2 * Math.PI * freq) / rate;
    const c = 2 * Math.cos(w);
    let s1 = 0;
    let s2 = 0;
    for (let i = 0; i < samples.length; i++) {
        const s0 = samples[i] + c * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    const p = s1 * s1 + s2 * s2 - c * s1 * s2;
    return p / (samples.length * samples.length);
}

// The same Goertzel, as source text for page.evaluate (pages get it with `new Function`).
export const GOERTZEL_SRC = `(samples, rate, freq) => {
    const w = 2 * Math.PI * freq / rate, c = 2 * Math.cos(w);
    let s1 = 0, s2 = 0;
    for (let i = 0; i < samples.length; i++) { const s0 = samples[i] + c * s1 - s2; s2 = s1; s1 = s0; }
    return (s1 * s1 + s2 * s2 - c * s1 * s2) / (samples.length * samples.length);
}`;

// Writes a 48 kHz mono 16-bit WAV: `seconds` long, a `freq` Hz tone burst at the start of every
// `periodMs`, `beepMs` long (a number, or a function of the burst's index k), with 5 ms linear
// edges, silence between. Returns the path.
export function beepWav(file, { seconds = 30, freq = 1000, beepMs = 100, periodMs = 1000, amp = 0.5, rate = 48000 } = {}) {
    const n = Math.round(seconds * rate);
    const data = Buffer.alloc(n * 2);
    const period = Math.round((periodMs * rate) / 1000);
    const edge = Math.round(0.005 * rate);
    for (let i = 0; i < n; i++) {
        const k = i % period;
        const ms = typeof beepMs === 'function' ? beepMs(Math.floor(i / period)) : beepMs;
        const beep = Math.round((ms * rate) / 1000);
        let v = 0;
        if (k < beep) {
            const env = Math.min(1, k / edge, (beep - k) / edge);
            v = amp * env * Math.sin((2 * Math.PI * freq * i) / rate);
        }
        data.writeInt16LE(Math.round(v * 32767), i * 2);
    }
    const h = Buffer.alloc(44);
    h.write('RIFF', 0);
    h.writeUInt32LE(36 + data.length, 4);
    h.write('WAVE', 8);
    h.write('fmt ', 12);
    h.writeUInt32LE(16, 16);
    h.writeUInt16LE(1, 20); // PCM
    h.writeUInt16LE(1, 22); // mono
    h.writeUInt32LE(rate, 24);
    h.writeUInt32LE(rate * 2, 28);
    h.writeUInt16LE(2, 32);
    h.writeUInt16LE(16, 34);
    h.write('data', 36);
    h.writeUInt32LE(data.length, 40);
    fs.writeFileSync(file, Buffer.concat([h, data]));
    return file;
}

// A continuous tone WAV (the fake microphone of the ffmpeg test).
export function toneWav(file, { seconds = 30, freq = 1000, amp = 0.5, rate = 48000 } = {}) {
    return beepWav(file, { seconds, freq, beepMs: seconds * 1000, periodMs: seconds * 1000 + 1000, amp, rate });
}

// Runs ffmpeg reading `url` for `seconds` of audio, decoded to 48 kHz mono s16le. Resolves with
// {samples: Int16Array, stderr}. Bounded by timeoutMs.
export function ffmpegCapture(url, { seconds = 4, timeoutMs = 20000 } = {}) {
    return new Promise((resolve, reject) => {
        const argv = ['-hide_banner', '-loglevel', 'error', '-nostdin', '-i', url, '-t', String(seconds),
            '-ac', '1', '-ar', '48000', '-f', 's16le', '-'];
        const p = spawn('ffmpeg', argv, { stdio: ['ignore', 'pipe', 'pipe'] });
        const out = [];
        let err = '';
        p.stdout.on('data', (d) => out.push(d));
        p.stderr.on('data', (d) => (err += d));
        const t = setTimeout(() => {
            p.kill('SIGKILL');
            reject(new TestFailure(`ffmpeg on ${url} did not finish within ${timeoutMs} ms: ${err.slice(-500)}`));
        }, timeoutMs);
        p.on('exit', (code) => {
            clearTimeout(t);
            const buf = Buffer.concat(out);
            const samples = new Int16Array(buf.buffer, buf.byteOffset, Math.floor(buf.length / 2));
            if (code !== 0) reject(new TestFailure(`ffmpeg exited ${code}: ${err.slice(-500)}`));
            else resolve({ samples: Int16Array.from(samples), stderr: err });
        });
    });
}

export function percentile(values, p) {
    check(values.length > 0, 'percentile of nothing');
    const v = [...values].sort((a, b) => a - b);
    const i = Math.min(v.length - 1, Math.max(0, Math.ceil((p / 100) * v.length) - 1));
    return v[i];
}

// Pairs each source onset with the first sink onset after it (within maxMs); returns the delays.
export function pairOnsets(src, sink, maxMs) {
    const delays = [];
    let j = 0;
    for (const t of src) {
        while (j < sink.length && sink[j] < t) j++;
        if (j < sink.length && sink[j] - t <= maxMs) {
            delays.push(sink[j] - t);
            j++;
        }
    }
    return delays;
}

// Parses the server log: [{t (ms since epoch), level, msg}] for text-format lines.
export function parseLog(text) {
    const out = [];
    const re = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)\s+(\w+)\s+\[\d+\]\s+(.*)$/;
    for (const line of text.split('\n')) {
        const m = re.exec(line);
        if (m) out.push({ t: Date.parse(m[1]), level: m[2], msg: m[3] });
    }
    return out;
}

// Saves a full-page screenshot (the viewport's width, the page's whole height) under build/artifacts/screenshots/NAME.png; with
// UPDATE_SCREENSHOTS=1 also copies it to docs/screenshots/NAME.png. Returns the artifact path.
export async function screenshot(page, name) {
    const dir = path.join(ARTIFACTS, 'screenshots');
    fs.mkdirSync(dir, { recursive: true });
    const file = path.join(dir, `${name}.png`);
    await page.screenshot({ path: file, fullPage: true });
    if (process.env.UPDATE_SCREENSHOTS === '1') {
        const docs = path.join(ROOT, 'docs', 'screenshots');
        fs.mkdirSync(docs, { recursive: true });
        fs.copyFileSync(file, path.join(docs, `${name}.png`));
    }
    return file;
}

// ---- main -------------------------------------------------------------------------------------

async function cleanup() {
    for (const b of browsers.splice(0)) {
        await Promise.race([b.close().catch(() => {}), sleep(5000)]);
    }
    for (const s of servers) {
        if (s.alive()) {
            s.stoppedOnPurpose = true;
            s.proc.kill('SIGKILL');
        }
    }
}

// The standard main: runs fn() under a deadline, prints PASS/FAIL, exits 0 or 1.
export async function runTest(name, fn, { timeoutMs = 60000 } = {}) {
    let timer;
    const deadline = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new TestFailure(`test did not finish within ${timeoutMs / 1000} s`)), timeoutMs);
    });
    let failure = null;
    try {
        await Promise.race([fn(), deadline]);
        // The browsers go first (their connections close), then a server still running must
        // stop cleanly.
        for (const b of browsers.splice(0)) await Promise.race([b.close().catch(() => {}), sleep(5000)]);
        for (const s of servers) if (s.alive()) await s.stop();
    } catch (e) {
        failure = e;
    }
    clearTimeout(timer);
    await cleanup();
    if (failure) {
        console.log(`FAIL ${name}: ${failure instanceof TestFailure ? failure.message : failure.stack || failure}`);
        for (const s of servers) if (s.logPath) console.log(s.logTail(30));
        if (tmpRoot) console.log(`kept temp dir: ${tmpRoot}`);
        process.exit(1);
    }
    if (tmpRoot) {
        if (KEEP) console.log(`kept temp dir: ${tmpRoot}`);
        else fs.rmSync(tmpRoot, { recursive: true, force: true });
    }
    console.log(`PASS ${name}`);
    process.exit(0);
}

export { spawnSync };

// ---- in-page probes (functions passed to page.evaluate: self-contained) -----------------------

// Installed before any page script (page.addInitScript): taps the microphone stream the page
// gets from getUserMedia with an AnalyserNode of our own (window.__micAnalyser).
export function tapMicrophone() {
    const md = navigator.mediaDevices;
    if (!md || !md.getUserMedia) return;
    const orig = md.getUserMedia.bind(md);
    md.getUserMedia = async (constraints) => {
        const stream = await orig(constraints);
        try {
            if (stream.getAudioTracks().length) {
                const ctx = new AudioContext();
                const an = ctx.createAnalyser();
                an.fftSize = 2048;
                ctx.createMediaStreamSource(stream).connect(an);
                window.__micCtx = ctx;
                window.__micAnalyser = an;
            }
        } catch (e) {
            console.warn('mic tap failed: ' + e);
        }
        return stream;
    };
}

// Starts a tone-burst detector in the page: every pollMs it reads the last 10 ms of an analyser
// ('player': window.tribune.player.analyser; 'mic': window.__micAnalyser), measures the
// amplitude at `freq` (Goertzel) and records onsets {t, dur} in window.__det[name], t on the
// clock every page of a browser shares (performance.timeOrigin + performance.now(), ms).
export function startDetector({ name, source, freq = 1000, onAmp = 0.08, offAmp = 0.03, pollMs = 5 }) {
    const st = { onsets: [], on: false, onT: 0, maxAmp: 0, polls: 0, noAnalyser: 0 };
    (window.__det = window.__det || {})[name] = st;
    let buf = null;
    const tick = () => {
        let an = source === 'mic' ? window.__micAnalyser : window.tribune && window.tribune.player && window.tribune.player.analyser;
        if (!an) {
            st.noAnalyser++;
            return;
        }
        if (source !== 'mic') {
            // our own analyser behind the page's (an AnalyserNode passes its input through), so
            // that the page's fftSize does not matter; a new one when the page makes a new graph
            if (!an.__probe) {
                an.__probe = an.context.createAnalyser();
                an.__probe.fftSize = 2048;
                an.connect(an.__probe);
            }
            an = an.__probe;
        }
        if (!buf || buf.length !== an.fftSize) buf = new Float32Array(an.fftSize);
        an.getFloatTimeDomainData(buf);
        const rate = an.context.sampleRate;
        const n = Math.min(buf.length, Math.round(rate * 0.01));
        const w = (2 * Math.PI * freq) / rate;
        const c = 2 * Math.cos(w);
        let s1 = 0;
        let s2 = 0;
        for (let i = buf.length - n; i < buf.length; i++) {
            const s0 = buf[i] + c * s1 - s2;
            s2 = s1;
            s1 = s0;
        }
        const amp = (2 * Math.sqrt(Math.max(0, s1 * s1 + s2 * s2 - c * s1 * s2))) / n;
        const t = performance.timeOrigin + performance.now();
        st.polls++;
        if (amp > st.maxAmp) st.maxAmp = amp;
        if (!st.on && amp > onAmp) {
            st.on = true;
            st.onT = t;
        } else if (st.on && amp < offAmp) {
            st.on = false;
            st.onsets.push({ t: st.onT, dur: t - st.onT });
        }
    };
    st.timer = setInterval(tick, pollMs);
    return true;
}

// Reads a detector's state (see startDetector).
export function readDetector(name) {
    const st = window.__det && window.__det[name];
    return st ? { onsets: st.onsets, maxAmp: st.maxAmp, polls: st.polls, noAnalyser: st.noAnalyser } : null;
}

// Samples the player's analyser `count` times every `everyMs` and returns, for each snapshot,
// the Goertzel power of each of `freqs` over the whole analyser window, plus its RMS.
export async function analyserSnapshots({ freqs, count = 40, everyMs = 100 }) {
    const out = [];
    for (let k = 0; k < count; k++) {
        await new Promise((r) => setTimeout(r, everyMs));
        let an = window.tribune && window.tribune.player && window.tribune.player.analyser;
        if (!an) continue;
        if (!an.__big) {
            // our own analyser behind the page's: 8192 samples (170 ms) resolve the demo's notes
            an.__big = an.context.createAnalyser();
            an.__big.fftSize = 8192;
            an.connect(an.__big);
        }
        an = an.__big;
        const buf = new Float32Array(an.fftSize);
        an.getFloatTimeDomainData(buf);
        const rate = an.context.sampleRate;
        let rms = 0;
        for (const v of buf) rms += v * v;
        rms = Math.sqrt(rms / buf.length);
        const powers = freqs.map((f) => {
            const c = 2 * Math.cos((2 * Math.PI * f) / rate);
            let s1 = 0;
            let s2 = 0;
            for (let i = 0; i < buf.length; i++) {
                const s0 = buf[i] + c * s1 - s2;
                s2 = s1;
                s1 = s0;
            }
            return (s1 * s1 + s2 * s2 - c * s1 * s2) / (buf.length * buf.length);
        });
        out.push({ rms, powers, n: buf.length, rate });
    }
    return out;
}

// The demo's notes (src/media/demo.c) and off-note bins for analyser checks.
export const DEMO_NOTES = [261.63, 329.63, 392.0, 523.25];

// Checks snapshots of the analyser (analyserSnapshots with freqs [...DEMO_NOTES, ...off bins]):
// a note dominates the off bins in at least half of them, and at least 3 notes are heard.
export function checkNotes(snaps, what) {
    check(snaps.length >= 10, `${what}: only ${snaps.length} analyser snapshots`);
    const nn = DEMO_NOTES.length;
    let dominated = 0;
    const heard = new Set();
    for (const s of snaps) {
        const notes = s.powers.slice(0, nn);
        const off = Math.max(...s.powers.slice(nn));
        const best = notes.indexOf(Math.max(...notes));
        if (notes[best] > 10 * off && s.rms > 0.01) {
            dominated++;
            heard.add(best);
        }
    }
    const rmsMax = Math.max(...snaps.map((s) => s.rms));
    log(`${what}: a note dominates in ${dominated}/${snaps.length} snapshots, notes heard ${[...heard].map((i) => DEMO_NOTES[i]).join(', ')} Hz, rms max ${rmsMax.toFixed(3)}`);
    check(dominated >= 0.5 * snaps.length, `${what}: the demo's notes dominate only ${dominated}/${snaps.length} analyser snapshots (rms max ${rmsMax.toFixed(4)})`);
    check(heard.size >= 3, `${what}: only ${heard.size} of the demo's notes heard`);
}
