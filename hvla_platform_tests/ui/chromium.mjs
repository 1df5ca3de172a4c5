// Headless Debian Chromium driven by playwright-core, as every browser test here starts it
// (docs/ui_testing.md): a fresh profile in a temporary directory and the flags this closed network
// needs (without the background-networking ones Chromium keeps opening connections to Google hosts
// that are refused). The caller closes the context and removes `userDataDir`.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

export const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/** Launch Chromium at `executablePath` with a fresh profile and one page whose console errors and
 * uncaught exceptions are collected in `consoleErrors`; `{ context, page, consoleErrors, userDataDir }`. */
export async function launchChromium(executablePath, { viewport, timeoutMs = 30_000, extraArgs = [],
  profilePrefix = 'hvla-chromium-' } = {}) {
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), profilePrefix));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath, headless: true, viewport, args: [...CHROMIUM_ARGS, ...extraArgs],
  });
  context.setDefaultTimeout(timeoutMs);
  const page = context.pages()[0] ?? await context.newPage();
  const consoleErrors = [];
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text().slice(0, 300)); });
  page.on('pageerror', (e) => consoleErrors.push(`pageerror: ${String(e).slice(0, 300)}`));
  return { context, page, consoleErrors, userDataDir };
}

/** A browser script's step log (stderr, prefixed with `tag` and the time) and numbered screenshots
 * in `outDir` (created): `{ log, screenshot }`, `screenshot(page, name)` writing `NN-name.png`. */
export function stepRecorder(outDir, tag, { fullPage = false } = {}) {
  fs.mkdirSync(outDir, { recursive: true });
  const log = (msg) => console.error(`[${tag} ${new Date().toISOString().slice(11, 19)}] ${msg}`);
  let shot = 0;
  async function screenshot(page, name) {
    shot += 1;
    const file = path.join(outDir, `${String(shot).padStart(2, '0')}-${name}.png`);
    await page.screenshot({ path: file, fullPage });
    log(`screenshot ${path.basename(file)}`);
  }
  return { log, screenshot };
}

/** Close the browser and remove its profile, waiting at most `timeoutMs` for Chromium to close
 * (a browser busy decoding video has been seen to spin in `close()`); the Python side kills
 * whatever of the run is left (browser_script.py). */
export async function closeChromium(context, userDataDir, timeoutMs = 15_000) {
  let timer;
  const gaveUp = new Promise((resolve) => { timer = setTimeout(() => resolve('timeout'), timeoutMs); });
  const outcome = await Promise.race([context.close().then(() => 'closed', () => 'closed'), gaveUp]);
  clearTimeout(timer);
  if (outcome === 'timeout') console.error(`[chromium] close() did not return in ${timeoutMs / 1000} s; leaving the kill to the caller`);
  fs.rmSync(userDataDir, { recursive: true, force: true });
}
