// A browser speaker's microphone reaches an ffmpeg listener (issue 8).
//
// The fake microphone is a 48 kHz WAV of a steady 700 Hz tone. The speaker page
// (/speak/{id}?name=alice&key=KEY) joins: getUserMedia -> WebCodecs AudioEncoder (Opus, 20 ms)
// -> WebSocket /spaces/{id}/speak -> the mixer. The space goes live; ffmpeg reads
// /spaces/{id}/live.opus and decodes 4 s to s16le. Asserts: the speaker page says speaking and
// its counters advance (speaker.stats.sent, seq) with a level on #level; ffmpeg decodes without
// error; the audio is loud (RMS) and 700 Hz dominates its neighbours (Goertzel, 500 ... 900 Hz
// and the octave) by 20 dB in every 250 ms window after the first second (the burst a new listener gets may hold
// audio from before the space went live).
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
    const { samples } = await ffmpegCapture(`${srv.url}/spaces/${sp.id}/live.opus`, { seconds: 4 });
    check(samples.length >= 3.5 * 48000, `ffmpeg decoded only ${samples.length} samples`);
    const x = Float64Array.from(samples, (v) => v / 32768);
    const win = 12000;
    let good = 0;
    let windows = 0;
    let worst = Infinity;
    for (let off = 48000; off + win <= x.length; off += win) {
        const seg = x.subarray(off, off + win);
        const p = goertzel(seg, 48000, TONE);
        const n = Math.max(...NEIGHBOURS.map((f) => goertzel(seg, 48000, f)));
        const db = 10 * Math.log10(p / Math.max(n, 1e-20));
        worst = Math.min(worst, db);
        windows++;
        if (db >= 20) good++;
    }
    let rms = 0;
    for (let i = 48000; i < x.length; i++) rms += x[i] * x[i];
    rms = Math.sqrt(rms / (x.length - 48000));
    log(`ffmpeg: ${samples.length} samples, rms ${rms.toFixed(3)}, ${TONE} Hz over its neighbours by >= 20 dB in ${good}/${windows} windows (worst ${worst.toFixed(1)} dB)`);
    check(rms > 0.05, `the live audio is too quiet: rms ${rms.toFixed(4)} (the tone is at 0.4 of full scale)`);
    check(good === windows, `${TONE} Hz does not dominate in ${windows - good} of ${windows} windows (worst ${worst.toFixed(1)} dB)`);
    check(page.errors.length === 0, `page errors: ${page.errors.join('; ')}`);
}, { timeoutMs: 60000 });
