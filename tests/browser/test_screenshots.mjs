// Screenshots of every page at desktop (1280x800) and phone (375x667) sizes (issue 8).
//
// `tribune demo` (the demo space is live) plus a space "Tribune weekly" that is live with a
// browser speaker (alice, a tone on the fake microphone) and a pending request to speak (carol),
// and a scheduled space an hour ahead. For each size, the pages are opened in their working
// state (the listen page playing on the low-latency path, the host console with its speaker and request, the speak page
// speaking) and saved to build/artifacts/screenshots/{index,listen,host,speak}-{desktop,phone}.png;
// with UPDATE_SCREENSHOTS=1 they are copied to docs/screenshots/ (linked from the README).
// Asserts on each page and size: <html lang="en"> and a viewport meta; every visible control
// has an accessible name; nothing is wider than the window (readable on a phone).
import path from 'node:path';

import { Server, check, launchBrowser, log, newPage, rooms, runTest, screenshot, tmpdir, toneWav, waitUntil } from './lib.mjs';

const SIZES = { desktop: { width: 1280, height: 800 }, phone: { width: 375, height: 667 } };

// In the page: the visible controls without an accessible name, the page's overflow, lang, viewport.
function audit() {
    const unnamed = [];
    for (const el of document.querySelectorAll('button, input, select, textarea, meter, a[href]')) {
        const r = el.getBoundingClientRect();
        if (!r.width || !r.height || getComputedStyle(el).visibility === 'hidden') continue;
        if (el.type === 'hidden') continue;
        const named =
            (el.getAttribute('aria-label') || '').trim() ||
            (el.getAttribute('aria-labelledby') || '').trim() ||
            (el.getAttribute('title') || '').trim() ||
            (el.labels && el.labels.length > 0) ||
            (['button', 'a'].includes(el.tagName.toLowerCase()) && el.textContent.trim()) ||
            (el.tagName === 'INPUT' && ['submit', 'button'].includes(el.type) && el.value);
        if (!named) unnamed.push(el.outerHTML.slice(0, 120));
    }
    return {
        unnamed,
        lang: document.documentElement.getAttribute('lang'),
        viewport: !!document.querySelector('meta[name="viewport"]'),
        scrollWidth: document.documentElement.scrollWidth,
        innerWidth: window.innerWidth,
    };
}

runTest('test_screenshots', async () => {
    const wav = toneWav(path.join(tmpdir(), 'tone.wav'), { seconds: 30, freq: 440, amp: 0.3 });
    const srv = await new Server({ cmd: 'demo' }).start();
    const sp = await rooms.create(srv, 'Tribune weekly');
    await rooms.create(srv, 'Office hours', Math.floor(Date.now() / 1000) + 3600);
    const alice = await rooms.invite(srv, sp, 'alice');
    await rooms.live(srv, sp);
    await rooms.request(srv, sp.id, 'carol');

    const browser = await launchBrowser({ micWav: wav });
    const speakUrl = `${srv.url}/speak/${sp.id}?name=alice&key=${alice.key}`;
    let shots = 0;
    for (const [size, viewport] of Object.entries(SIZES)) {
        const pages = {};
        // the speaker first: the others show her
        const speak = await newPage(browser, `speak-${size}`, viewport);
        await speak.goto(speakUrl);
        await speak.click('button#join');
        await waitUntil(async () => (await speak.getAttribute('#status', 'data-state')) === 'speaking', 10000, 'alice speaking');
        await waitUntil(() => speak.evaluate(() => Number(document.querySelector('#level').value) > 0.05), 5000, 'a level on #level');
        pages.speak = speak;

        const listen = await newPage(browser, `listen-${size}`, viewport);
        await listen.goto(`${srv.url}/s/${sp.id}`);
        // the low-latency path: it starts at once (see test_latency for the progressive one)
        await listen.locator('input#lowlatency').check();
        await listen.click('button#play');
        await waitUntil(async () => (await listen.getAttribute('#status', 'data-state')) === 'playing' &&
            (await listen.evaluate(() => window.tribune.player.stats.packets)) > 50, 10000, 'the listen page playing (50 packets)');
        await listen.waitForSelector('#speakers li[data-name="alice"]', { timeout: 5000 });
        await waitUntil(async () => /^[1-9]\d*$/.test(((await listen.textContent('#count')) || '').trim()), 5000, 'a hearing count');
        pages.listen = listen;

        const host = await newPage(browser, `host-${size}`, viewport);
        await host.goto(`${srv.url}/host/${sp.id}?key=${sp.host_key}`);
        await host.waitForSelector('#speakers li[data-name="alice"]', { timeout: 5000 });
        await host.waitForSelector('#requests li[data-id]', { timeout: 5000 });
        await waitUntil(async () => /^[1-9]\d*$/.test(((await host.textContent('#hearing')) || '').trim()), 5000, 'the host page\'s hearing count');
        pages.host = host;

        const index = await newPage(browser, `index-${size}`, viewport);
        await index.goto(`${srv.url}/`);
        await index.waitForSelector(`#live li[data-id="${sp.id}"]`, { timeout: 5000 });
        await index.waitForSelector('#live li[data-id="demo"]', { timeout: 5000 });
        await index.waitForSelector('#scheduled li[data-id]', { timeout: 5000 });
        pages.index = index;

        for (const name of ['index', 'listen', 'host', 'speak']) {
            const p = pages[name];
            const a = await p.evaluate(audit);
            check(a.lang === 'en', `${name}: <html lang="${a.lang}">`);
            check(a.viewport, `${name}: no viewport meta`);
            check(a.unnamed.length === 0, `${name}: controls without an accessible name: ${a.unnamed.join(' | ')}`);
            check(a.scrollWidth <= a.innerWidth + 1, `${name} at ${size}: the page is ${a.scrollWidth} px wide in a ${a.innerWidth} px window`);
            const file = await screenshot(p, `${name}-${size}`);
            log(`saved ${file}`);
            shots++;
            check(p.errors.length === 0, `${name}: page errors: ${p.errors.join('; ')}`);
        }
        for (const p of Object.values(pages)) await p.context().close();
    }
    check(shots === 8, `${shots} screenshots`);
}, { timeoutMs: 60000 });
