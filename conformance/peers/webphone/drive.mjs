// node drive.mjs CONFIG_JSON — runs phone.html in headless Chromium for the
// Go WebPhone (conformance/peers/webphone.go; docs/peers.md).
// stdout: one JSON object per line from the page (ready, dialed, call,
// fatal, disconnected) plus {"type":"log"} lines of the page console.
// stdin: one command per line: {"op":"dial",...}, {"op":"answer",...},
// {"op":"hold","on":true}, {"op":"dtmf","tones":"123"}, {"op":"close"}.
// EOF on stdin closes the browser and exits.
import puppeteer from 'puppeteer-core';
import readline from 'node:readline';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const cfg = JSON.parse(process.argv[2]);
const out = m => process.stdout.write(JSON.stringify(m) + '\n');
const here = path.dirname(fileURLToPath(import.meta.url));

const browser = await puppeteer.launch({
  executablePath: cfg.chromium || '/usr/bin/chromium',
  headless: true,
  pipe: true,                       // DevTools over a pipe: no TCP port opened
  userDataDir: cfg.profile,
  ignoreDefaultArgs: ['--mute-audio'],
  args: [
    '--no-sandbox',                 // runs as root in CI
    '--use-fake-ui-for-media-stream',        // grants getUserMedia; also real IPs, not mDNS, in candidates
    '--use-fake-device-for-media-stream',
    `--use-file-for-fake-audio-capture=${cfg.toneWAV}`,
    '--allow-loopback-in-peer-connection',   // else no candidate at all on 127.0.0.1
    '--autoplay-policy=no-user-gesture-required',
    '--disable-component-update', '--no-first-run', '--no-default-browser-check',
  ],
});
let closing = false;
const close = async code => {
  if (closing) return; closing = true;
  await browser.close().catch(() => {});
  process.exit(code);
};
browser.on('disconnected', () => { if (!closing) { out({ type: 'fatal', err: 'chromium exited' }); process.exit(1); } });

// The tab Chromium opens at start: a new one costs seconds on a busy machine.
const page = (await browser.pages())[0] || await browser.newPage();
page.on('console', m => out({ type: 'log', text: m.text() }));
page.on('pageerror', e => out({ type: 'log', text: 'PAGEERROR ' + e.message }));
await page.exposeFunction('emit', m => out(m));
const url = pathToFileURL(path.join(here, 'phone.html'));
url.search = 'cfg=' + encodeURIComponent(JSON.stringify({ ws: cfg.ws, jid: cfg.jid, password: cfg.password, resource: cfg.resource }));
await page.goto(url.href);

const rl = readline.createInterface({ input: process.stdin });
rl.on('line', async line => {
  let c;
  try { c = JSON.parse(line); } catch { return; }
  try {
    if (c.op === 'dial') await page.evaluate(o => { window.phone.dial(o); }, c);
    else if (c.op === 'answer') await page.evaluate(o => { window.phone.answer(o); }, c);
    else if (c.op === 'hold') await page.evaluate(o => { window.phone.hold(o); }, c);
    else if (c.op === 'dtmf') await page.evaluate(o => { window.phone.dtmf(o); }, c);
    else if (c.op === 'close') await close(0);
  } catch (e) { out({ type: 'log', text: 'DRIVE ' + e.message }); }
  if (c.ack) out({ type: 'ack', id: c.ack });   // the page has taken the command
});
rl.on('close', () => close(0));
process.on('SIGTERM', () => close(0));
