// Glass-to-glass latency: a browser speaker to a WebSocket listener and to a progressive listener
// (issue 8: aim below 400 ms on loopback for the WebSocket path, below 2 s for the progressive one).
//
// A 48 kHz mono WAV of 1 kHz beeps, one a second, is the fake microphone. Beep k lasts
// 60 * (1 + k % 7) ms: the length tells a beep from its six neighbours, so that a beep heard
// seconds late still pairs with the right one (up to 7 s). In one browser (one clock,
// performance.timeOrigin + performance.now() in every page):
//   - the speaker page (/speak/{id}?name=alice&key=KEY) joins; its microphone stream is tapped
//     with an AnalyserNode of ours (getUserMedia wrapped before the page's scripts run);
//   - a listener page on the WebSocket path (#lowlatency on) and one on the progressive path.
// A detector in each page polls its analyser every 5 ms and records beep onsets and lengths.
// Each heard beep is paired with the spoken beep of the same length class before it; the delays
// give p50/p99 per path, printed as
//   glass-to-glass ws p50 X ms p99 Y ms (N beeps)
// Asserts: most beeps are heard on each path, and every paired delay is within twice the aim
// (800 ms and 4 s), which a broken path (stalls, growing buffers, seconds of backlog) fails. A
// path over its aim but within the bound is said in a line "aim missed: ...", without failing.
// The server's view of the speaker (GET .../speakers: buffered_ms, jitter_ms, underruns, drift
// drops) is logged before and after the measurement: a WebSocket delay is mostly that buffer.
import path from 'node:path';

import {
    Server,
    beepWav,
    check,
    launchBrowser,
    log,
    newPage,
    percentile,
    readDetector,
    rooms,
    runTest,
    startDetector,
    tapMicrophone,
    tmpdir,
    waitUntil,
} from './lib.mjs';

const BEEP_MS = 60;
const CLASSES = 7;
const AIM = { ws: 400, progressive: 2000 };
const BOUND = { ws: 2 * AIM.ws, progressive: 2 * AIM.progressive };
const MEASURE_MS = Number(process.env.LATENCY_SECONDS || 20) * 1000;

function classOf(dur) {
    return Math.min(CLASSES, Math.max(1, Math.round(dur / BEEP_MS))) - 1;
}

// For each heard onset: the latest spoken onset of the same class before it (within 2 s x aim).
function pair(spoken, heard, maxMs) {
    const delays = [];
    for (const h of heard) {
        const c = classOf(h.dur);
        let best = null;
        for (const s of spoken) {
            if (classOf(s.dur) !== c || s.t > h.t || h.t - s.t > maxMs) continue;
            if (!best || s.t > best.t) best = s;
        }
        if (best) delays.push(h.t - best.t);
    }
    return delays;
}

runTest('test_latency', async () => {
    const wav = beepWav(path.join(tmpdir(), 'beeps.wav'), { seconds: 5 * CLASSES, beepMs: (k) => BEEP_MS * (1 + (k % CLASSES)) });
    const srv = await new Server().start();
    const sp = await rooms.create(srv, 'latency');
    const alice = await rooms.invite(srv, sp, 'alice');
    await rooms.live(srv, sp);

    const browser = await launchBrowser({ micWav: wav });
    const speaker = await newPage(browser, 'speaker');
    await speaker.addInitScript(tapMicrophone);
    await speaker.goto(`${srv.url}/speak/${sp.id}?name=alice&key=${alice.key}`);
    await speaker.click('button#join');
    await waitUntil(async () => (await speaker.getAttribute('#status', 'data-state')) === 'speaking', 10000,
        'the speaker page to say data-state=speaking');
    await waitUntil(() => speaker.evaluate(() => !!window.__micAnalyser), 5000, 'the microphone tap');
    await waitUntil(async () => (await rooms.get(srv, sp.id)).speakers.some((s) => s.name === 'alice' && s.connected), 5000,
        'alice connected according to the API');

    const listeners = {};
    for (const mode of ['ws', 'progressive']) {
        const p = await newPage(browser, `listen-${mode}`);
        await p.goto(`${srv.url}/s/${sp.id}`);
        if (mode === 'ws') await p.locator('input#lowlatency').check();
        await p.click('button#play');
        // playing = sound comes out (#status data-state), not only the intention (player.playing)
        await waitUntil(() => p.evaluate((m) => window.tribune.player.playing && window.tribune.player.mode === m &&
            document.querySelector('#status').dataset.state === 'playing', mode), 15000, `the ${mode} listener playing`);
        listeners[mode] = p;
    }

    // detectors everywhere, then MEASURE_MS of beeps
    await speaker.evaluate(startDetector, { name: 'mic', source: 'mic' });
    for (const [mode, p] of Object.entries(listeners)) await p.evaluate(startDetector, { name: mode, source: 'player' });
    const alice0 = (await rooms.speakers(srv, sp)).speakers.find((x) => x.name === 'alice');
    log(`server, alice before: ${JSON.stringify(alice0)}`);
    const t0 = Date.now();
    await waitUntil(async () => Date.now() - t0 >= MEASURE_MS && ((await speaker.evaluate(readDetector, 'mic')).onsets.length >= MEASURE_MS / 1000 - 2),
        MEASURE_MS + 10000, `${MEASURE_MS / 1000} s of beeps`, 500);
    // the last spoken beeps need their time to be heard (up to the progressive path's bound)
    const spokenAll = (await speaker.evaluate(readDetector, 'mic')).onsets;
    const lastSpoken = spokenAll[spokenAll.length - 1].t;
    await waitUntil(async () => {
        const d = await listeners.progressive.evaluate(readDetector, 'progressive');
        const w = await listeners.ws.evaluate(readDetector, 'ws');
        const now = await speaker.evaluate(() => performance.timeOrigin + performance.now());
        return now - lastSpoken > BOUND.progressive || (d.onsets.some((o) => o.t > lastSpoken) && w.onsets.some((o) => o.t > lastSpoken));
    }, BOUND.progressive + 2000, 'the last beep on both listeners', 100);

    log(`server, alice after: ${JSON.stringify((await rooms.speakers(srv, sp)).speakers.find((x) => x.name === 'alice'))}`);
    const mic = await speaker.evaluate(readDetector, 'mic');
    log(`speaker microphone: ${mic.onsets.length} beeps, peak amplitude ${mic.maxAmp.toFixed(3)}, ${mic.polls} polls`);
    check(mic.onsets.length >= MEASURE_MS / 1000 - 2, `only ${mic.onsets.length} beeps detected on the microphone`);
    const spoken = mic.onsets.filter((o) => o.t <= lastSpoken);
    const lines = [];
    for (const [mode, p] of Object.entries(listeners)) {
        const d = await p.evaluate(readDetector, mode);
        const heard = d.onsets.filter((o) => o.t >= spoken[0].t);
        const delays = pair(spoken, heard, BOUND[mode]);
        // for the diagnosis of a failure: the pairing as far as the length classes allow
        const wide = pair(spoken, heard, CLASSES * 1000 - 100);
        if (wide.length > delays.length) log(`${mode}: delays up to ${CLASSES - 0.1} s: ${wide.map((x) => Math.round(x)).join(' ')}`);
        log(`${mode}: ${d.onsets.length} onsets heard, peak amplitude ${d.maxAmp.toFixed(3)}; delays ${delays.map((x) => Math.round(x)).join(' ')}`);
        check(delays.length >= 0.8 * spoken.length - 2,
            `${mode}: only ${delays.length} of ${spoken.length} beeps heard within ${BOUND[mode]} ms (peak amplitude ${d.maxAmp.toFixed(3)})`);
        const p50 = percentile(delays, 50);
        const p99 = percentile(delays, 99);
        const line = `glass-to-glass ${mode} p50 ${Math.round(p50)} ms p99 ${Math.round(p99)} ms (${delays.length} beeps)`;
        console.log(line);
        lines.push(line);
        check(Math.max(...delays) <= BOUND[mode], `${mode}: a beep took ${Math.round(Math.max(...delays))} ms (bound ${BOUND[mode]} ms)`);
        if (p50 > AIM[mode]) console.log(`aim missed: ${mode} p50 ${Math.round(p50)} ms, aim below ${AIM[mode]} ms`);
        const stats = await p.evaluate(() => window.tribune.player.stats);
        log(`${mode} player stats ${JSON.stringify(stats)}`);
    }
    for (const p of [speaker, ...Object.values(listeners)]) check(p.errors.length === 0, `page errors: ${p.errors.join('; ')}`);
    log(lines.join('; '));
}, { timeoutMs: 60000 + Number(process.env.LATENCY_SECONDS || 20) * 1000 - 20000 });
