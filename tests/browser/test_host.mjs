// The host console drives a room; each action shows on a listener's page (issue 8).
//
// One browser (the fake microphone a steady 500 Hz tone), one space:
//   - the host page (/host/{id}?key=HOSTKEY) keeps the key out of the address bar; it invites
//     alice and bob through form#invite, and their copyable links (#invites input.link) open the
//     speak pages, which join from the microphone;
//   - a listener page (/s/{id}) shows the speakers (li[data-name]), with .talking for a speaker
//     the API says is talking;
//   - go live (#go-live): the listener's #state says live, and it plays;
//   - mute bob (button.mute): li.muted on the listener page, #server-muted on bob's page, the
//     button says Unmute with aria-pressed=true, the API agrees; unmute undoes it;
//   - remove alice (button.remove): her li leaves the listener page, her page says removed;
//   - a request to speak from the listener page (#request-name, #request) appears on the host's
//     queue (#requests li); approve: the listener page shows a#speak-link to the speak page, and
//     carol joins through it;
//   - #hearing on the host page equals the API's hearing count; canvas#chart is drawn;
//   - end (#end): the listener page says ended and offers the replay (#replay); the speak pages
//     still on stage say ended.
import path from 'node:path';

import { Server, check, launchBrowser, log, newPage, rooms, runTest, tmpdir, toneWav, waitUntil } from './lib.mjs';

runTest('test_host', async () => {
    const wav = toneWav(path.join(tmpdir(), 'tone.wav'), { seconds: 30, freq: 500, amp: 0.3 });
    const srv = await new Server().start();
    const sp = await rooms.create(srv, 'host console');
    const browser = await launchBrowser({ micWav: wav });

    const host = await newPage(browser, 'host');
    host.on('dialog', (d) => d.accept());
    await host.goto(`${srv.url}/host/${sp.id}?key=${sp.host_key}`);
    await host.waitForSelector('form#invite', { timeout: 10000 });
    await waitUntil(() => !host.url().includes(sp.host_key), 5000, 'the host key to leave the address bar');

    const listener = await newPage(browser, 'listener');
    await listener.goto(`${srv.url}/s/${sp.id}`);
    await listener.waitForSelector('button#play', { timeout: 10000 });

    // invite alice and bob from the console; their links open the speak pages
    const speakers = {};
    for (const name of ['alice', 'bob']) {
        await host.fill('input#invite-name', name);
        await host.press('input#invite-name', 'Enter'); // the form submits from the keyboard
        const link = await waitUntil(async () => {
            const v = await host.locator(`#invites li[data-name="${name}"] input.link`).inputValue({ timeout: 500 });
            return v || null;
        }, 5000, `${name}'s invite link on the host page`);
        check(link.startsWith(srv.url) && link.includes(`/speak/${sp.id}`) && /[?&]key=[0-9a-f]+/.test(link),
            `${name}'s link is not an absolute speak URL with a key: ${link}`);
        check(await host.locator(`#invites li[data-name="${name}"] button.copy`).count() === 1, `${name}'s invite has no copy button`);
        const p = await newPage(browser, name);
        p.on('dialog', (d) => d.accept());
        await p.goto(link);
        await p.click('button#join');
        await waitUntil(async () => (await p.getAttribute('#status', 'data-state')) === 'speaking', 10000, `${name} speaking`);
        speakers[name] = p;
    }
    await waitUntil(async () => (await rooms.get(srv, sp.id)).speakers.filter((s) => s.connected).length === 2, 5000,
        'both speakers connected according to the API');
    for (const name of ['alice', 'bob'])
        await listener.waitForSelector(`#speakers li[data-name="${name}"]`, { timeout: 5000 });
    // talking: the API and the page agree for a speaker with a tone on the microphone
    await waitUntil(async () => {
        const api = (await rooms.get(srv, sp.id)).speakers.find((s) => s.name === 'alice');
        const cls = await listener.getAttribute('#speakers li[data-name="alice"]', 'class');
        return api && api.talking === true && (cls || '').split(/\s+/).includes('talking');
    }, 8000, 'alice talking in the API and li.talking on the listener page');

    // go live
    await host.click('button#go-live');
    await waitUntil(async () => (await rooms.get(srv, sp.id)).state === 'live', 5000, 'the API to say live');
    await waitUntil(async () => ((await listener.textContent('#state')) || '').toLowerCase().includes('live'), 5000,
        'the listener page\'s #state to say live');
    await listener.click('button#play');
    await waitUntil(() => listener.evaluate(() => window.tribune.player.playing), 10000, 'the listener playing');

    // mute bob
    const bobLi = host.locator('#speakers li[data-name="bob"]');
    await bobLi.locator('button.mute').click();
    await waitUntil(async () => ((await listener.getAttribute('#speakers li[data-name="bob"]', 'class')) || '').split(/\s+/).includes('muted'),
        5000, 'li.muted for bob on the listener page');
    await waitUntil(() => speakers.bob.isVisible('#server-muted'), 5000, '#server-muted on bob\'s page');
    check((await bobLi.locator('button.mute').getAttribute('aria-pressed')) === 'true', 'bob\'s mute button is not aria-pressed');
    check(/unmute/i.test(await bobLi.locator('button.mute').textContent()), 'bob\'s mute button does not say Unmute');
    check((await rooms.get(srv, sp.id)).speakers.find((s) => s.name === 'bob').muted === true, 'the API does not say bob is muted');
    await bobLi.locator('button.mute').click();
    await waitUntil(async () => !((await listener.getAttribute('#speakers li[data-name="bob"]', 'class')) || '').split(/\s+/).includes('muted'),
        5000, 'bob unmuted on the listener page');
    await waitUntil(async () => !(await speakers.bob.isVisible('#server-muted')), 5000, '#server-muted hidden on bob\'s page');

    // remove alice
    await host.locator('#speakers li[data-name="alice"] button.remove').click();
    await waitUntil(async () => (await listener.locator('#speakers li[data-name="alice"]').count()) === 0, 5000,
        'alice gone from the listener page');
    await waitUntil(async () => (await speakers.alice.getAttribute('#status', 'data-state')) === 'removed', 5000,
        'alice\'s page to say removed');
    check(!(await rooms.get(srv, sp.id)).speakers.some((s) => s.name === 'alice'), 'the API still lists alice');

    // a request to speak, approved
    await listener.fill('input#request-name', 'carol');
    await listener.click('button#request');
    const rid = await waitUntil(async () => {
        const li = host.locator('#requests li[data-id]');
        if ((await li.count()) !== 1 || !(await li.textContent()).includes('carol')) return null;
        return li.getAttribute('data-id');
    }, 5000, 'carol\'s request on the host page');
    await host.locator(`#requests li[data-id="${rid}"] button.approve`).click();
    const href = await waitUntil(async () => {
        if (!(await listener.isVisible('a#speak-link'))) return null;
        return listener.getAttribute('a#speak-link', 'href');
    }, 8000, 'a#speak-link on the requester\'s page');
    const speakUrl = new URL(href, srv.url);
    check(speakUrl.pathname === `/speak/${sp.id}` && speakUrl.searchParams.get('key'), `speak link ${href}`);
    log(`carol's speak link: ${href.replace(/key=[0-9a-f]+/, 'key=...')}`);
    const carol = await newPage(browser, 'carol');
    await carol.goto(speakUrl.href);
    await carol.click('button#join');
    await waitUntil(async () => (await carol.getAttribute('#status', 'data-state')) === 'speaking', 10000,
        'carol\'s page to say speaking', 100).catch(async (e) => {
        throw new Error(`${e.message}; her page says: ${await carol.textContent('#status')}`);
    });
    await waitUntil(async () => (await rooms.get(srv, sp.id)).speakers.some((s) => s.name === 'carol' && s.connected), 10000,
        'carol connected through the approved link');
    await listener.waitForSelector('#speakers li[data-name="carol"]', { timeout: 5000 });

    // counts on the host page
    await waitUntil(async () => {
        const shown = ((await host.textContent('#hearing')) || '').trim();
        return /^\d+$/.test(shown) && Number(shown) === (await rooms.get(srv, sp.id)).listeners.hearing && Number(shown) >= 1;
    }, 8000, '#hearing on the host page to equal the API\'s hearing count (>= 1)');
    const drawn = await host.evaluate(() => {
        const c = document.querySelector('canvas#chart');
        if (!c || !c.width || !c.height) return false;
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        for (let i = 3; i < d.length; i += 4) if (d[i] !== 0) return true;
        return false;
    });
    check(drawn, 'canvas#chart is empty');

    // end
    await host.click('button#end');
    await waitUntil(async () => ((await listener.textContent('#state')) || '').toLowerCase().includes('ended'), 5000,
        'the listener page\'s #state to say ended');
    await waitUntil(() => listener.isVisible('#replay'), 5000, '#replay visible once ended');
    // the speakers still on stage are told, and stop (no retries against an ended space)
    for (const [name, p] of [['bob', speakers.bob], ['carol', carol]]) {
        await waitUntil(async () => (await p.getAttribute('#status', 'data-state')) === 'ended', 5000,
            `${name}'s page to say ended`).catch(async (e) => {
            throw new Error(`${e.message}; it says: ${await p.getAttribute('#status', 'data-state')}: ${await p.textContent('#status')}`);
        });
    }
    for (const p of [host, listener, ...Object.values(speakers), carol]) check(p.errors.length === 0, `page errors: ${p.errors.join('; ')}`);
    log('host console: invite, go live, mute, unmute, remove, approve, end: each seen by the listener');
}, { timeoutMs: 60000 });
