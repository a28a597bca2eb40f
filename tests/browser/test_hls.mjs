// The listen page's HLS mode plays the demo space through hls.js in Chromium (issue 9).
//
// `tribune demo`; Chromium opens /s/demo, switches on #hls (Space) and presses Play:
//   - window.tribune.player.mode is 'hls', the <audio> element's currentTime advances by 3 s or
//     more, and the AnalyserNode hears the demo's notes (C4 E4 G4 C5, as in test_listen);
//   - the page's beacons arrive: /metrics shows tribune_format_listeners{format="hls",
//     state="hearing"} >= 1 and the page's stats count the beacons sent;
//   - the HLS latency is printed: the play position's PROGRAM-DATE-TIME (hls.js `playingDate`,
//     from the origin's #EXT-X-PROGRAM-DATE-TIME, wall clock at the sample) against Date.now(),
//     read by the page every 250 ms (stats.latencyMs), sampled here over a few seconds.
// The vendor file (web/node_modules/hls.js, `npm ci` by scripts/deps.sh) must be in the build.
import { Server, analyserSnapshots, check, http, launchBrowser, log, newPage, percentile, runTest, waitUntil, DEMO_NOTES, checkNotes } from './lib.mjs';

const NOTES = DEMO_NOTES;
const OFF = [200, 295, 361, 450, 600, 700];

// tribune_format_listeners{space="demo",format="hls",state=STATE} from /metrics (0 when absent).
async function hlsListeners(srv, state) {
    const r = await http(srv, 'GET', '/metrics');
    check(r.status === 200, `/metrics answered ${r.status}`);
    const re = new RegExp(`^tribune_format_listeners\\{(?=[^}]*space="demo")(?=[^}]*format="hls")(?=[^}]*state="${state}")[^}]*\\} (\\d+)`, 'm');
    const m = r.text.match(re);
    return m ? Number(m[1]) : 0;
}

runTest('test_hls', async () => {
    const srv = await new Server({ cmd: 'demo' }).start();
    const vendor = await http(srv, 'HEAD', '/web/vendor/hls.min.js');
    check(vendor.status === 200, `/web/vendor/hls.min.js answered ${vendor.status}: build after scripts/deps.sh (npm ci in web/)`);
    const browser = await launchBrowser();
    const page = await newPage(browser, 'hls');
    await page.goto(`${srv.url}/s/demo`);
    await page.waitForSelector('button#play', { timeout: 10000 });

    const sw = page.locator('input#hls');
    check((await sw.getAttribute('role')) === 'switch', '#hls lacks role=switch');
    check(!(await sw.isChecked()), '#hls is on by default');
    await sw.focus();
    await page.keyboard.press('Space');
    check(await sw.isChecked(), 'Space on #hls does not switch it on');
    check(!(await page.locator('input#lowlatency').isChecked()), '#lowlatency on together with #hls');
    await page.focus('button#play');
    await page.keyboard.press('Enter');
    const t00 = Date.now();
    await waitUntil(() => page.evaluate(() => window.tribune.player.mode === 'hls' && window.tribune.player.playing), 5000,
        'mode hls and playing after Enter on #play');
    await waitUntil(async () => (await page.getAttribute('#status', 'data-state')) === 'playing', 15000, '#status data-state=playing (HLS)');
    log(`hls: playing ${Date.now() - t00} ms after Play`);

    const t0 = await page.evaluate(() => [window.tribune.player.audio.currentTime, performance.now()]);
    await waitUntil(async () => (await page.evaluate(() => window.tribune.player.audio.currentTime)) >= t0[0] + 3, 8000,
        'the <audio> element\'s currentTime to advance by 3 s');
    const t1 = await page.evaluate(() => [window.tribune.player.audio.currentTime, performance.now()]);
    const rate = (t1[0] - t0[0]) / ((t1[1] - t0[1]) / 1000);
    log(`hls: currentTime ${t0[0].toFixed(2)} -> ${t1[0].toFixed(2)} s, ${rate.toFixed(2)}x the wall clock`);
    check(rate > 0.8 && rate < 1.25, `currentTime advances at ${rate.toFixed(2)}x the wall clock`);

    checkNotes(await page.evaluate(analyserSnapshots, { freqs: [...NOTES, ...OFF], count: 30, everyMs: 100 }), 'hls');

    // beacons: one at start, one once audible (then every 10 s)
    const hearing = await waitUntil(async () => {
        const n = await hlsListeners(srv, 'hearing');
        return n >= 1 ? n : null;
    }, 8000, 'tribune_format_listeners{format="hls",state="hearing"} >= 1 (beacons)');
    const st = await page.evaluate(() => ({ ...window.tribune.player.stats }));
    log(`hls: /metrics hls hearing ${hearing}; stats ${JSON.stringify(st)}`);
    check(st.beacons >= 2, `only ${st.beacons} beacons sent`);

    // latency: the play position's PROGRAM-DATE-TIME against the clock
    const lat = await page.evaluate(async () => {
        const out = [];
        for (let i = 0; i < 10; i++) {
            await new Promise((r) => setTimeout(r, 300)); // the sampling period
            out.push(window.tribune.player.stats.latencyMs);
        }
        return out;
    });
    log(`hls: latency (PROGRAM-DATE-TIME at the play position vs now) p50 ${percentile(lat, 50)} ms, min ${Math.min(...lat)}, max ${Math.max(...lat)} ms (${lat.length} samples)`);
    check(lat.every((v) => v > 0 && v < 30000), `latency samples out of range: ${lat.join(', ')}`);

    await page.focus('button#play');
    await page.keyboard.press('Space');
    await waitUntil(() => page.evaluate(() => !window.tribune.player.playing), 5000, 'playing false after Space on #play');
    check(page.errors.length === 0, `page errors: ${page.errors.join('; ')}`);
}, { timeoutMs: 40000 });
