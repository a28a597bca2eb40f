// The listen page plays the demo space, on both paths (issue 8).
//
// `tribune demo`; Chromium opens /s/demo and, with the keyboard only (Tab, Enter, Space),
// starts the player:
//   - progressive (the default): window.tribune.player.mode is 'progressive', the <audio>
//     element's currentTime advances about as fast as the wall clock, and the player's
//     AnalyserNode hears the demo's notes (src/media/demo.c: C4 E4 G4 C5 G4 E4, half a second
//     each): in most snapshots one of the four notes dominates the off-note frequencies by
//     10 dB or more, and at least three different notes are heard;
//   - #count shows the API's listeners.hearing (the page itself is one of them);
//   - the low-latency switch (#lowlatency, Space): mode becomes 'ws', packets arrive in sequence with
//     few losses, and the analyser hears the same notes.
import { Server, analyserSnapshots, check, launchBrowser, log, newPage, rooms, runTest, waitUntil, DEMO_NOTES, checkNotes } from './lib.mjs';

const NOTES = DEMO_NOTES;
const OFF = [200, 295, 361, 450, 600, 700];

runTest('test_listen', async () => {
    const srv = await new Server({ cmd: 'demo' }).start();
    const browser = await launchBrowser();
    const page = await newPage(browser, 'listen');
    await page.goto(`${srv.url}/s/demo`);
    await page.waitForSelector('button#play', { timeout: 10000 });
    check((await page.getAttribute('html', 'lang')) === 'en', '<html lang="en"> missing');
    // keyboard only: Tab to the play button, Enter
    await waitUntil(async () => {
        await page.keyboard.press('Tab');
        return page.evaluate(() => document.activeElement && document.activeElement.id === 'play');
    }, 5000, 'Tab to reach button#play', 10);
    await page.keyboard.press('Enter');
    await waitUntil(() => page.evaluate(() => window.tribune && window.tribune.player && window.tribune.player.playing), 10000,
        'window.tribune.player.playing after pressing Enter on #play');
    check((await page.getAttribute('button#play', 'aria-pressed')) === 'true', '#play aria-pressed is not "true" while playing');
    const mode = await page.evaluate(() => window.tribune.player.mode);
    check(mode === 'progressive', `default mode is ${mode}, not progressive`);
    await waitUntil(async () => (await page.getAttribute('#status', 'data-state')) === 'playing', 5000, '#status data-state=playing');

    // currentTime advances with the wall clock
    await waitUntil(async () => (await page.evaluate(() => window.tribune.player.audio.currentTime)) > 0.5, 8000,
        'the <audio> element to start (currentTime > 0.5 s)');
    const t0 = await page.evaluate(() => [window.tribune.player.audio.currentTime, performance.now()]);
    await waitUntil(async () => (await page.evaluate(() => window.tribune.player.audio.currentTime)) > t0[0] + 3, 8000,
        'the <audio> element\'s currentTime to advance by 3 s');
    const t1 = await page.evaluate(() => [window.tribune.player.audio.currentTime, performance.now()]);
    const rate = (t1[0] - t0[0]) / ((t1[1] - t0[1]) / 1000);
    log(`progressive: currentTime ${t0[0].toFixed(2)} -> ${t1[0].toFixed(2)} s, ${rate.toFixed(2)}x the wall clock`);
    check(rate > 0.8 && rate < 1.25, `currentTime advances at ${rate.toFixed(2)}x the wall clock`);
    const err = await page.evaluate(() => (window.tribune.player.audio.error ? window.tribune.player.audio.error.code : 0));
    check(err === 0, `<audio> error code ${err}`);

    checkNotes(await page.evaluate(analyserSnapshots, { freqs: [...NOTES, ...OFF], count: 40, everyMs: 100 }), 'progressive');

    // the count shown is the API's hearing count
    const shown = await waitUntil(async () => {
        const text = ((await page.textContent('#count')) || '').trim();
        const api = (await rooms.get(srv, 'demo')).listeners.hearing;
        return /^\d+$/.test(text) && Number(text) === api && api >= 1 ? [text, api] : null;
    }, 8000, '#count to show the API\'s listeners.hearing (>= 1)');
    log(`#count shows ${shown[0]}, the API says hearing ${shown[1]}`);

    // the low-latency path
    const sw = page.locator('input#lowlatency');
    check((await sw.getAttribute('role')) === 'switch', '#lowlatency lacks role=switch');
    check(!(await sw.isChecked()), '#lowlatency is on by default');
    await sw.focus();
    await page.keyboard.press('Space');
    check(await sw.isChecked(), 'Space on #lowlatency does not switch it on');
    await waitUntil(() => page.evaluate(() => window.tribune.player.mode === 'ws' && window.tribune.player.playing), 10000,
        'mode ws and playing after the low-latency switch');
    const s0 = await page.evaluate(() => ({ ...window.tribune.player.stats }));
    await waitUntil(async () => (await page.evaluate(() => window.tribune.player.stats.packets)) >= s0.packets + 100, 8000,
        '100 more WebSocket packets (2 s of audio)');
    checkNotes(await page.evaluate(analyserSnapshots, { freqs: [...NOTES, ...OFF], count: 30, everyMs: 100 }), 'ws');
    const s1 = await page.evaluate(() => ({ ...window.tribune.player.stats }));
    log(`ws: stats ${JSON.stringify(s1)}`);
    check(s1.packets - s0.packets >= 150, `only ${s1.packets - s0.packets} packets in about 5 s`);
    check(s1.lost - s0.lost <= 5, `${s1.lost - s0.lost} packets lost on loopback`);
    check(s1.lastSeq > s0.lastSeq && s1.lastTimestamp > s0.lastTimestamp, 'sequence and timestamp do not advance');
    check(s1.bufferMs >= 0 && s1.bufferMs < 1000, `buffer ${s1.bufferMs} ms`);
    // the server counts the WebSocket listener as hearing too
    await waitUntil(async () => {
        const text = ((await page.textContent('#count')) || '').trim();
        return Number(text) === (await rooms.get(srv, 'demo')).listeners.hearing && Number(text) >= 1;
    }, 8000, '#count to equal the API\'s hearing count on the WebSocket path');

    // stop
    await page.focus('button#play');
    await page.keyboard.press('Space');
    await waitUntil(() => page.evaluate(() => !window.tribune.player.playing), 5000, 'playing false after Space on #play');
    check((await page.getAttribute('button#play', 'aria-pressed')) === 'false', '#play aria-pressed is not "false" once stopped');
    check(page.errors.length === 0, `page errors: ${page.errors.join('; ')}`);
}, { timeoutMs: 60000 });
