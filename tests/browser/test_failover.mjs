// The listen page fails over to another edge when its edge dies (issue 9, item 4).
//
// An origin (`tribune demo`) with `edges` = E1,E2 and two edges (`tribune relay --origin`), each a
// process on loopback. For each mode (progressive <audio>, low-latency WebSocket, and HLS unless
// FAILOVER_MODES leaves it out), Chromium opens /s/demo on one edge (the victim) and plays:
//   - before: the page has learnt the space's "nodes" (the other edge, then the origin), its
//     player plays from the victim (currentTime or the packet count advances) and the
//     AnalyserNode hears the demo's notes (as test_listen);
//   - the victim is killed (SIGKILL); within DEADLINE_MS the page plays again from the other edge
//     (window.tribune.nodes.current is it, the player's stream URL is on it, #status is playing,
//     currentTime or the packet count advances again), #node says "Switched to <host>", the
//     analyser hears the notes again, and the origin's hearing count is 1 (this page, through the
//     other edge) with the other edge reporting it; the page's #count follows its new node;
//   - the time from the kill to playing again is printed;
//   - the victim starts again on its port (the next mode uses the other edge as its victim).
import { Server, analyserSnapshots, check, freePort, http, launchBrowser, log, newPage, rooms, runTest, waitUntil, DEMO_NOTES, checkNotes } from './lib.mjs';

const NOTES = DEMO_NOTES;
const OFF = [200, 295, 361, 450, 600, 700];
const DEADLINE_MS = 15000;
const MODES = (process.env.FAILOVER_MODES || 'progressive,ws,hls').split(','); // HLS last (see below)

// What the page plays: its node, the player's stream URL, state, clock and packet count.
function pageState() {
    const p = window.tribune.player;
    const impl = p.impl;
    return {
        node: window.tribune.nodes.current,
        known: window.tribune.nodes.known,
        base: impl ? impl.base : null,
        src: p.audio ? p.audio.currentSrc : '',
        state: document.querySelector('#status').dataset.state,
        playing: p.playing,
        audible: impl ? impl.isAudible !== false : false,
        t: p.audio ? p.audio.currentTime : 0,
        n: p.stats.packets,
        reconnects: p.stats.reconnects,
        said: document.querySelector('#node').hidden ? '' : document.querySelector('#node').textContent,
        count: document.querySelector('#count').textContent.trim(),
    };
}

// The player advances on `srv`: its stream comes from there, and its clock (or packets) moves.
async function advancing(page, mode, srv, what, timeoutMs) {
    let base = null;
    return waitUntil(async () => {
        const s = await page.evaluate(pageState);
        // (the HLS element's source is a blob: URL of hls.js's MediaSource)
        const onIt = s.base === srv.url && (mode !== 'progressive' || s.src.startsWith(srv.url));
        if (!onIt || !s.playing || s.state !== 'playing') return false;
        if (!base) base = s;
        return (mode === 'ws' ? s.n > base.n + 25 : s.t > base.t + 0.5) ? s : false;
    }, timeoutMs, what, 100);
}

async function hearing(srv) {
    return (await rooms.get(srv, 'demo')).listeners;
}

runTest('test_failover', async () => {
    const ports = [await freePort(), await freePort()];
    const edgesCsv = ports.map((p) => `http://127.0.0.1:${p}`).join(',');
    const origin = await new Server({ cmd: 'demo', name: 'origin', extra: ['--workers', '1', '--edges', edgesCsv] }).start();
    const edges = [];
    for (const [i, port] of ports.entries()) {
        const e = new Server({ cmd: 'relay', name: `e${i + 1}`, extra: ['--origin', origin.url, '--workers', '1'] });
        edges.push(await e.start({ port }));
    }
    const vendor = await http(origin, 'HEAD', '/web/vendor/hls.min.js');
    const modes = MODES.filter((m) => m !== 'hls' || vendor.status === 200);
    if (modes.length < MODES.length) log('no hls.min.js in this build: HLS left out');

    // both edges pull the demo (an edge reports, and so is listed, once it serves a space)
    for (const e of edges) check((await rooms.get(e, 'demo')).state === 'live', `the demo is not live on ${e.name}`);
    const browser = await launchBrowser();

    const resumed = {};
    for (const [k, mode] of modes.entries()) {
        const victim = edges[k % 2], other = edges[(k + 1) % 2];
        // the victim lists the other edge first, then the origin (its origin's list, itself left out)
        const listed = await waitUntil(async () => {
            const n = (await rooms.get(victim, 'demo')).nodes;
            return n && n.length === 2 && n[0] === other.url && n[1] === origin.url ? n : null;
        }, 10000, `${victim.name}'s space JSON to list nodes [${other.url}, ${origin.url}]`);
        log(`${mode}: ${victim.name} lists nodes ${JSON.stringify(listed)}`);

        const page = await newPage(browser, `${mode}@${victim.name}`);
        await page.goto(`${victim.url}/s/demo`);
        await page.waitForSelector('button#play', { timeout: 10000 });
        if (mode === 'ws') await page.locator('input#lowlatency').check();
        if (mode === 'hls') await page.locator('input#hls').check();
        await page.click('button#play');
        await waitUntil(async () => {
            const s = await page.evaluate(pageState);
            return s.known.includes(other.url) && s.known.includes(origin.url);
        }, 5000, 'the page to learn the other edge and the origin from "nodes"');
        await advancing(page, mode, victim, `${mode}: playing from ${victim.name}`, 20000);
        checkNotes(await page.evaluate(analyserSnapshots, { freqs: [...NOTES, ...OFF], count: 20, everyMs: 100 }), `${mode} from ${victim.name}`);
        await waitUntil(async () => (await hearing(origin)).hearing === 1, 8000, 'the origin to count the page hearing (1)');

        const killedAt = Date.now();
        await victim.kill();
        log(`${mode}: ${victim.name} killed`);
        const back = await advancing(page, mode, other, `${mode}: playing again from ${other.name} within ${DEADLINE_MS / 1000} s of the kill`, DEADLINE_MS);
        const ms = Date.now() - killedAt;
        resumed[mode] = ms;
        log(`${mode}: playing again from ${other.name} ${ms} ms after the kill (${back.reconnects} reconnects); the page says: ${back.said}`);
        check(back.node === other.url, `nodes.current is ${back.node}, not ${other.url}`);
        check(back.said.includes(`Switched to ${new URL(other.url).host}`), `#node says ${JSON.stringify(back.said)}`);
        checkNotes(await page.evaluate(analyserSnapshots, { freqs: [...NOTES, ...OFF], count: 20, everyMs: 100 }), `${mode} from ${other.name}`);
        const after = await advancing(page, mode, other, `${mode}: still advancing on ${other.name}`, 8000);
        check(after.base === other.url, `${mode}: the player went back to ${after.base}`);

        // counted: at the other edge (which serves it) and, through its report, at the origin
        const counted = await waitUntil(async () => {
            const o = await hearing(origin), e = await hearing(other);
            return o.hearing === 1 && o.edges.hearing === 1 && e.hearing === 1 ? { o, e } : null;
        }, 10000, 'the origin to count the page hearing through the other edge (hearing 1, edges.hearing 1)');
        log(`${mode}: origin hearing ${counted.o.hearing} (edges ${counted.o.edges.edges}, their hearing ${counted.o.edges.hearing}), ${other.name} hearing ${counted.e.hearing}`);
        await waitUntil(async () => (await page.evaluate(pageState)).count === '1', 8000, "#count to show the new node's hearing count (1)");
        check(page.errors.length === 0, `page errors: ${page.errors.join('; ')}`);

        await page.context().close();
        await victim.start({ port: victim.port });
        check((await rooms.get(victim, 'demo')).state === 'live', `the demo is not live on ${victim.name} after its restart`);
        // (an HLS session is forgotten 30 s after its last beacon: HLS runs last)
        if (mode !== 'hls')
            await waitUntil(async () => (await hearing(origin)).hearing === 0, 8000, 'the origin to count nobody once the page closed');
    }
    log(`resumed after the kill (ms): ${JSON.stringify(resumed)}`);
}, { timeoutMs: 110000 }); // under run.sh's BROWSER_TIMEOUT (120 s); a pass takes 50 to 60 s
