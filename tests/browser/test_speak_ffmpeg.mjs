// A browser speaker's microphone reaches an ffmpeg listener (issue 8).
//
// The fake microphone is a 48 kHz WAV of a steady 700 Hz tone. The speaker page
// (/speak/{id}?name=alice&key=KEY) joins: getUserMedia -> WebCodecs AudioEncoder (Opus, 20 ms)
// -> WebSocket /spaces/{id}/speak -> the mixer. The space goes live; ffmpeg reads
// /spaces/{id}/live.opus and decodes 5 s to s16le. Asserts: the speaker page says speaking and
// its counters advance (speaker.stats.sent, seq) with a level on #level; ffmpeg decodes without
// error; from the first audible 250 ms window on (a new listener's burst may hold silence from
// before the space went live), 700 Hz dominates its neighbours (Goertzel, 500 ... 900 Hz and the
// octave) by 20 dB in every window but at most two (a hiccup of a loaded machine), and the audio
// is well above silence.
import path from 'node:path';

import { Server, check, ffmpegCapture, goertzel, launchBrowser, log, newPage, rooms, runTest, tmpdir, toneWav, waitUntil } from './lib.mjs';

const TONE = 700;
const NEIGHBOURS = [500, 600, 650, 750, 800, 900, 1400];

runTest('test_speak_ffmpeg', async () => {
    const wav = toneWav(path.join(tmpdir(), 'tone.wav'), { seconds: 30, freq: TONE, amp: 0.4 });
    const srv = await new Server().start();
    const sp = await rooms.create(srv, 'speak to ffmpeg');
    const alice = await rooms.invite(srv, sp, 'alice');

    const browser = await launchBrowser({ micWav: wav });
    const page = await newPage(browser, 'speaker');
    await page.goto(`${srv.url}/speak/${sp.id}?name=alice&key=${alice.key}`);
    await page.click('button#join');
    await waitUntil(async () => (await page.getAttribute('#status', 'data-state')) === 'speaking', 10000,
        'the speaker page to say data-state=speaking');
    await waitUntil(async () => (await rooms.get(srv, sp.id)).speakers.some((s) => s.name === 'alice' && s.connected), 5000,
        'alice connected according to the API');
    const st0 = await page.evaluate(() => ({ ...window.tribune.speaker.stats }));
    await waitUntil(async () => (await page.evaluate(() => window.tribune.speaker.stats.sent)) >= st0.sent + 50, 5000,
        '50 more packets sent (1 s of audio)');
    const st1 = await page.evaluate(() => ({ ...window.tribune.speaker.stats }));
    log(`speaker stats ${JSON.stringify(st1)}`);
    check(st1.seq > st0.seq, 'the speaker\'s sequence does not advance');
    check(st1.level > 0.05, `speaker.stats.level ${st1.level} for a tone at 0.4 of full scale`);
    const meter = await page.evaluate(() => Number(document.querySelector('#level').value));
    check(meter > 0.05, `#level shows ${meter}`);
    const det = await waitUntil(async () => {
        const l = await api_speakers();
        return l && l.peak_dbfs > -30 ? l : null;
    }, 5000, 'the server to see alice\'s audio (peak_dbfs > -30 dBFS)');
    log(`server: alice ${JSON.stringify(det)}`);
    async function api_speakers() {
        const r = await rooms.speakers(srv, sp);
        return (r.speakers || []).find((s) => s.name === 'alice');
    }

    await rooms.live(srv, sp);
    const { samples } = await ffmpegCapture(`${srv.url}/spaces/${sp.id}/live.opus`, { seconds: 5 });
    check(samples.length >= 4.5 * 48000, `ffmpeg decoded only ${samples.length} samples`);
    log(`after the capture: server ${JSON.stringify(await api_speakers())}; page ${JSON.stringify(await page.evaluate(() => window.tribune.speaker.stats))}`);
    const x = Float64Array.from(samples, (v) => v / 32768);
    // 250 ms windows; the first ones may be silence from before the space went live (a new
    // listener's burst): the analysis starts after the first audible window and must then find the
    // tone in every window (no gap) for at least 2.5 s.
    const win = 12000;
    const windows = [];
    for (let off = 0; off + win <= x.length; off += win) {
        const seg = x.subarray(off, off + win);
        let r = 0;
        for (const v of seg) r += v * v;
        const p = goertzel(seg, 48000, TONE);
        const n = Math.max(...NEIGHBOURS.map((f) => goertzel(seg, 48000, f)));
        windows.push({ at: off / 48000, rms: Math.sqrt(r / seg.length), db: 10 * Math.log10(p / Math.max(n, 1e-20)) });
    }
    log(`windows: ${windows.map((w) => `${w.at.toFixed(2)}s rms ${w.rms.toFixed(3)} ${w.db.toFixed(0)} dB`).join('; ')}`);
    const first = windows.findIndex((w) => w.rms > 0.003);
    check(first >= 0 && first <= 8, `no audible window in the first 2 s of ffmpeg's capture (first: ${first})`);
    const heard = windows.slice(first + 1); // the first audible window holds the start
    check(heard.length >= 10, `only ${heard.length} audible windows`);
    const bad = heard.filter((w) => !(w.db >= 20 && w.rms > 0.003));
    const rms = Math.sqrt(heard.reduce((a, w) => a + w.rms * w.rms, 0) / heard.length);
    log(`ffmpeg: ${samples.length} samples; from ${heard[0].at.toFixed(2)} s: rms ${rms.toFixed(3)}, ${TONE} Hz over its neighbours by >= 20 dB in ${heard.length - bad.length}/${heard.length} windows`);
    // the speak page asks for the browser's speech processing (noise suppression, AGC), which
    // turns a steady tone down: -40 dBFS is the floor here, silence is far below
    check(rms > 0.01, `the live audio is too quiet: rms ${rms.toFixed(4)} (the tone is at 0.4 of full scale)`);
    // at most 2 windows (500 ms) may miss it: on a loaded machine the browser's audio thread can
    // hiccup (seen once with a load average of 7 on 2 cores); more is a broken path
    if (bad.length) log(`${TONE} Hz missing in ${bad.map((w) => w.at.toFixed(2) + 's').join(' ')}`);
    check(bad.length <= 2, `${TONE} Hz does not dominate (or a gap) in ${bad.length} of ${heard.length} windows: ${bad.map((w) => w.at.toFixed(2) + 's').join(' ')}`);
    check(page.errors.length === 0, `page errors: ${page.errors.join('; ')}`);
}, { timeoutMs: 60000 });
