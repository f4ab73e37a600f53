// End-to-end test of the real `tinct` binary in headless Chromium (the Debian package, driven
// by playwright-core; no browser is downloaded).
//
//   TINCT_BIN=path/to/tinct node --test e2e.test.mjs     (tests/e2e/run.sh does this)
//
// 1. `tinct serve`: upload a B&W photo on the page and check the displayed result is coloured
//    (palette method, and hints from clicks on the photo) and that the GAN result has the
//    input's size (a tiny untrained model made with `tinct train`, whose colours are faint).
// 2. `tinct study`: answer one trial and check the CSV got the line.
// 3. `tinct serve --live`: a clip read as a live source; the page shows its gray frames and
//    the coloured ones at the source's size, with counts (needs ffmpeg).
// Screenshots go to $E2E_OUT (default: a fresh temporary folder, printed).
//
// Skips (with a message) when Chromium or node_modules/playwright-core is missing.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const BIN = process.env.TINCT_BIN || path.join(here, '..', '..', 'target', 'release', 'tinct');

let skip = false;
if (!fs.existsSync(CHROMIUM)) skip = `chromium not found at ${CHROMIUM} (apt-get install -y chromium)`;
else if (!fs.existsSync(path.join(here, 'node_modules', 'playwright-core'))) skip = 'node_modules missing (run npm ci in tests/e2e)';
else if (!fs.existsSync(BIN)) skip = false; // a missing binary is a failure, reported below
if (skip) console.log(`e2e skipped: ${skip}`);

// ---------------------------------------------------------------------------------------
// Small helpers: PNG writing, processes.

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function crc32(buf) {
  let c = 0xffffffff;
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
function chunk(type, data) {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const td = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(td));
  return Buffer.concat([len, td, crc]);
}
/** Writes an 8-bit RGB PNG; `pixel(x, y)` returns [r, g, b]. */
function writePng(file, w, h, pixel) {
  const raw = Buffer.alloc((w * 3 + 1) * h);
  for (let y = 0; y < h; y++) {
    raw[y * (w * 3 + 1)] = 0;
    for (let x = 0; x < w; x++) {
      const [r, g, b] = pixel(x, y);
      const o = y * (w * 3 + 1) + 1 + x * 3;
      raw[o] = r; raw[o + 1] = g; raw[o + 2] = b;
    }
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8; ihdr[9] = 2; ihdr[10] = 0; ihdr[11] = 0; ihdr[12] = 0;
  fs.writeFileSync(file, Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr), chunk('IDAT', zlib.deflateSync(raw)), chunk('IEND', Buffer.alloc(0)),
  ]));
}
const colourful = (seed) => (x, y) => [(x * 5 + seed * 60) % 256, (y * 4) % 256, (255 - x * 3) & 255];
const grayOf = (f) => (x, y) => { const [r, g, b] = f(x, y); const v = Math.round(0.299 * r + 0.587 * g + 0.114 * b); return [v, v, v]; };

/** Starts `tinct ARGS` and resolves with { proc, url } once it prints its address. */
function startServer(args) {
  return new Promise((resolve, reject) => {
    const proc = spawn(BIN, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    const timer = setTimeout(() => { proc.kill('SIGKILL'); reject(new Error(`tinct ${args[0]} did not start:\n${err}`)); }, 60_000);
    proc.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/listening on (http:\/\/[^\s]+)/);
      if (m) { clearTimeout(timer); resolve({ proc, url: m[1] }); }
    });
    let partial = '';
    proc.stderr.on('data', (d) => {
      err += d;
      const lines = (partial + d).split('\n');
      partial = lines.pop();
      for (const l of lines) process.stderr.write(`[tinct ${args[0]}] ${l}\n`);
    });
    proc.on('exit', (code) => { clearTimeout(timer); reject(new Error(`tinct ${args[0]} exited with ${code}:\n${err}`)); });
  });
}

function stopServer(s) {
  return new Promise((resolve) => {
    if (!s || s.proc.exitCode !== null) return resolve();
    const t = setTimeout(() => s.proc.kill('SIGKILL'), 10_000);
    s.proc.once('exit', () => { clearTimeout(t); resolve(); });
    s.proc.kill('SIGTERM');
  });
}

// ---------------------------------------------------------------------------------------

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tinct-e2e-'));
const OUT = process.env.E2E_OUT || path.join(tmp, 'output');
let context;
let serve;
let study;

before(async () => {
  if (skip) return;
  assert.ok(fs.existsSync(BIN), `${BIN} not found: run cargo build --release first (or set TINCT_BIN)`);
  fs.mkdirSync(OUT, { recursive: true });
  console.log(`# e2e screenshots -> ${OUT}`);
  const { chromium } = await import('playwright-core');
  // A fresh profile: playwright passes it to Chromium as --user-data-dir (it refuses the
  // flag in `args`).
  const userDataDir = fs.mkdtempSync(path.join(tmp, 'chromium-profile-'));
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1100, height: 900 },
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
});

after(async () => {
  await context?.close();
  await stopServer(serve);
  await stopServer(study);
  if (!process.env.E2E_OUT) console.log(`# e2e temporary files kept in ${tmp}`);
});

/** Mean chroma proxy (max - min of R, G, B) of the page's result image, and its size. */
async function resultStats(page) {
  return page.evaluate(() => {
    const img = document.getElementById('result');
    const c = document.createElement('canvas');
    c.width = img.naturalWidth;
    c.height = img.naturalHeight;
    const ctx = c.getContext('2d');
    ctx.drawImage(img, 0, 0);
    const d = ctx.getImageData(0, 0, c.width, c.height).data;
    let sum = 0;
    for (let i = 0; i < d.length; i += 4) sum += Math.max(d[i], d[i + 1], d[i + 2]) - Math.min(d[i], d[i + 1], d[i + 2]);
    return { width: c.width, height: c.height, chroma: sum / (d.length / 4) };
  });
}

/** Clicks Colourise (unless the page already started on its own) and waits for the result. */
async function runAndWait(page, click = true) {
  if (click) {
    // Mark the previous result stale first, so only the new one counts.
    await page.evaluate(() => { document.getElementById('result').dataset.state = 'pending'; });
    await page.click('#run');
  }
  await page.waitForSelector('#result[data-state="done"], #result[data-state="error"]', { timeout: 60_000 });
  const state = await page.getAttribute('#result', 'data-state');
  assert.equal(state, 'done', `the page reported: ${await page.textContent('#status')}`);
}

test('serve: upload a photo, colourise with palette, hints and the GAN', { skip, timeout: 300_000 }, async () => {
  // A tiny untrained model, trained for one epoch on synthetic images.
  const data = path.join(tmp, 'data');
  fs.mkdirSync(data, { recursive: true });
  for (let i = 0; i < 4; i++) writePng(path.join(data, `img${i}.png`), 48, 48, colourful(i));
  const run = path.join(tmp, 'run');
  const train = spawnSync(BIN, ['train', '--data', data, '--out', run, '--size', '32', '--batch-size', '2',
    '--epochs', '1', '--ngf', '4', '--ndf', '4', '--quiet'], { encoding: 'utf8', timeout: 240_000 });
  assert.equal(train.status, 0, `tinct train failed: ${train.stderr}`);

  serve = await startServer(['serve', '--model', run, '--addr', '127.0.0.1:0', '--workers', '1', '--queue', '4']);
  const photo = path.join(tmp, 'photo.png');
  const [W, H] = [160, 120];
  writePng(photo, W, H, grayOf((x, y) => [(x * 2) % 256, (y * 3) % 256, ((x + y) * 2) % 256]));

  const page = await context.newPage();
  page.on('pageerror', (e) => assert.fail(`page error: ${e}`));
  await page.goto(serve.url);
  await page.waitForSelector('#model option', { state: 'attached' });
  // The page lists the model.
  assert.match(await page.textContent('#model'), /run/);

  // Palette: the result is clearly coloured and the input's size.
  await page.selectOption('#method', 'palette');
  await page.selectOption('#palette', 'sunset');
  await page.setInputFiles('#file', photo); // picking a file colourises at once (first result)
  await runAndWait(page, false);
  let s = await resultStats(page);
  assert.deepEqual([s.width, s.height], [W, H]);
  assert.ok(s.chroma > 20, `palette result is not coloured (chroma ${s.chroma})`);
  await page.screenshot({ path: path.join(OUT, 'serve-palette.png'), fullPage: true });

  // Hints: clicks on the photo add points and switch the method to hints.
  await page.selectOption('#method', 'gan');
  const clickAt = async (fx, fy) => {
    const box = await page.locator('#before').boundingBox();
    await page.mouse.click(box.x + box.width * fx, box.y + box.height * fy);
  };
  await page.fill('#hint-color', '#1060e0');
  await clickAt(0.25, 0.5);
  await page.fill('#hint-color', '#e03010');
  await clickAt(0.75, 0.5);
  assert.equal(await page.inputValue('#method'), 'hints');
  assert.equal(await page.textContent('#hint-count'), '2 hints');
  // Both clicks were at mid-height: the page must not have moved under the pointer.
  const hints = await page.evaluate(() => state.hints);
  assert.equal(hints[0].y, hints[1].y, JSON.stringify(hints));
  assert.ok(hints[0].x < W / 2 && hints[1].x > W / 2, JSON.stringify(hints));
  await runAndWait(page);
  s = await resultStats(page);
  assert.deepEqual([s.width, s.height], [W, H]);
  assert.ok(s.chroma > 20, `hints result is not coloured (chroma ${s.chroma})`);
  assert.equal(await page.getAttribute('#result', 'data-method'), 'hints');
  await page.screenshot({ path: path.join(OUT, 'serve-hints.png'), fullPage: true });

  // GAN: an untrained model's colours are faint; check the size and the method.
  await page.selectOption('#method', 'gan');
  await runAndWait(page);
  s = await resultStats(page);
  assert.deepEqual([s.width, s.height], [W, H]);
  assert.match(await page.getAttribute('#result', 'data-method'), /^gan:/);
  assert.equal(await page.isVisible('#download'), true);
  await page.screenshot({ path: path.join(OUT, 'serve-gan.png'), fullPage: true });

  // The API answers errors in JSON, seen from the browser too.
  const err = await page.evaluate(async () => {
    const r = await fetch('/api/colorize', { method: 'POST', body: 'not an image' });
    return { status: r.status, body: await r.json() };
  });
  assert.equal(err.status, 415);
  assert.match(err.body.error, /not an image/);
  await page.close();
});

test('study: one answer is recorded in the CSV', { skip, timeout: 120_000 }, async () => {
  const real = path.join(tmp, 'study', 'real');
  const fake = path.join(tmp, 'study', 'gan');
  fs.mkdirSync(real, { recursive: true });
  fs.mkdirSync(fake, { recursive: true });
  for (let i = 0; i < 4; i++) {
    writePng(path.join(real, `p${i}.png`), 64, 48, colourful(i));
    writePng(path.join(fake, `p${i}.png`), 64, 48, grayOf(colourful(i)));
  }
  const results = path.join(tmp, 'study', 'results.csv');
  study = await startServer(['study', real, fake, '--mode', '2afc', '--addr', '127.0.0.1:0', '--results', results, '--seed', '1']);
  const page = await context.newPage();
  page.on('pageerror', (e) => assert.fail(`page error: ${e}`));
  await page.goto(`${study.url}/?p=e2e-tester`);
  await page.waitForSelector('#grid[data-state="ready"]');
  assert.equal(await page.locator('.choice').count(), 2);
  await page.screenshot({ path: path.join(OUT, 'study-trial.png'), fullPage: true });
  await page.locator('.choice').first().click();
  await page.waitForSelector('body[data-answers="1"]');
  await page.waitForSelector('#grid[data-state="ready"]'); // the next trial is shown
  const lines = fs.readFileSync(results, 'utf8').trim().split('\n');
  assert.equal(lines.length, 2, lines.join('\n'));
  assert.match(lines[0], /^timestamp,participant,mode,/);
  const f = lines[1].split(',');
  assert.equal(f[1], 'e2e-tester');
  assert.equal(f[2], '2afc');
  assert.equal(f[4], 'gan');
  assert.equal(f[7], '0');
  assert.equal(f[9], f[8] === 'real' ? '1' : '0');
  await page.screenshot({ path: path.join(OUT, 'study-answered.png'), fullPage: true });
  await page.close();

  const summary = spawnSync(BIN, ['study', '--summary', '--results', results], { encoding: 'utf8' });
  assert.equal(summary.status, 0, summary.stderr);
  assert.match(summary.stdout, /2afc\s+2\s+gan\s+1\s/);
});

/** Mean chroma proxy (max - min of R, G, B) and size of the frame an <img> shows now. */
async function imageStats(page, id) {
  return page.evaluate((id) => {
    const img = document.getElementById(id);
    const c = document.createElement('canvas');
    c.width = img.naturalWidth;
    c.height = img.naturalHeight;
    const ctx = c.getContext('2d');
    ctx.drawImage(img, 0, 0);
    const d = ctx.getImageData(0, 0, c.width, c.height).data;
    let sum = 0;
    for (let i = 0; i < d.length; i += 4) sum += Math.max(d[i], d[i + 1], d[i + 2]) - Math.min(d[i], d[i + 1], d[i + 2]);
    return { width: c.width, height: c.height, chroma: sum / (d.length / 4) };
  }, id);
}

const haveFfmpeg = !skip && spawnSync('ffmpeg', ['-version']).status === 0;
if (!skip && !haveFfmpeg) console.log('e2e live test skipped: ffmpeg is not installed');

test('serve --live: a stream coloured beside its gray frames', { skip: skip || !haveFfmpeg, timeout: 180_000 }, async () => {
  // A 320x240 clip, read by the server at its own frame rate as a camera would send it.
  const clip = path.join(tmp, 'live.mp4');
  const made = spawnSync('ffmpeg', ['-v', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=320x240:rate=25',
    '-t', '120', '-pix_fmt', 'yuv420p', clip], { encoding: 'utf8' });
  assert.equal(made.status, 0, `ffmpeg could not write the clip: ${made.stderr}`);
  const live = await startServer(['serve', '--live', clip, '--addr', '127.0.0.1:0', '--workers', '1']);
  try {
    const page = await context.newPage();
    page.on('pageerror', (e) => assert.fail(`page error: ${e}`));
    await page.goto(`${live.url}/live`);
    await page.waitForSelector('body[data-state="live"]', { timeout: 60_000 });
    // Both streams show frames of the source's size.
    await page.waitForFunction(() => ['gray', 'colour'].every((id) => document.getElementById(id).naturalWidth > 0),
      null, { timeout: 30_000 });
    await page.waitForTimeout(1500); // a few frames on
    const gray = await imageStats(page, 'gray');
    const colour = await imageStats(page, 'colour');
    assert.deepEqual([gray.width, gray.height], [320, 240]);
    assert.deepEqual([colour.width, colour.height], [320, 240]);
    assert.ok(gray.chroma < 2, `the source frame is not gray (chroma ${gray.chroma})`);
    assert.ok(colour.chroma > gray.chroma + 3, `the coloured frame has no colour (chroma ${colour.chroma})`);
    assert.match(await page.textContent('#status'), /frames\/s.*frames in/);
    await page.screenshot({ path: path.join(OUT, 'serve-live.png'), fullPage: true });
    // The status in JSON: frames flow and the server keeps up.
    const st = await page.evaluate(async () => (await fetch('/api/live')).json());
    assert.equal(st.state, 'live');
    assert.ok(st.frames_out > 10 && st.fps_out > 0, JSON.stringify(st));
    await page.close();
  } finally {
    // SIGTERM ends the streams and the server promptly, and cleanly.
    const t0 = Date.now();
    await stopServer(live);
    assert.ok(Date.now() - t0 < 9_000, `tinct serve --live took ${Date.now() - t0} ms to stop`);
    assert.equal(live.proc.exitCode, 0);
  }
});
