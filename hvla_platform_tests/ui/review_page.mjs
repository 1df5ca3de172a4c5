// Drives the episode review page (hvla_platform/lib/web/review_page.py) the way a supervisor does, in
// headless Chromium (playwright-core): open the page of a flagged episode at the time of its finding
// (?t=), check the finding is marked on the timeline and the plots, play the synced videos, reject
// the episode with a reason, then open the release's review queue and filter it.
//
// Prints one JSON object (what the page showed) on stdout; progress goes to stderr; screenshots land
// in --artifacts. Run by hvla_platform_tests/ui/test_review_page.py, which serves a small real lake.
//
//   node review_page.mjs --page-url URL --artifacts DIR --reason TEXT [--queue-url URL] [--chromium PATH]

import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { launchChromium, stepRecorder, closeChromium } from './chromium.mjs';

const { values: opt } = parseArgs({
  options: {
    'page-url': { type: 'string' },
    'queue-url': { type: 'string' },
    artifacts: { type: 'string' },
    reason: { type: 'string', default: 'head camera frozen' },
    chromium: { type: 'string', default: process.env.HVLA_CHROMIUM || '/usr/bin/chromium' },
  },
});
if (!opt['page-url'] || !opt.artifacts) {
  console.error('usage: node review_page.mjs --page-url URL --artifacts DIR [--queue-url URL] [--reason TEXT]');
  process.exit(2);
}
const OUT = path.resolve(opt.artifacts);
const { log, screenshot } = stepRecorder(OUT, 'review', { fullPage: true });

const seen = {};
const { context, page, consoleErrors, userDataDir } = await launchChromium(opt.chromium, {
  viewport: { width: 1280, height: 1000 }, timeoutMs: 15_000, profilePrefix: 'hvla-review-chromium-',
  extraArgs: ['--autoplay-policy=no-user-gesture-required'],
});
try {
  log(`open ${opt['page-url']}`);
  await page.goto(opt['page-url'], { waitUntil: 'load' });
  await page.locator('#plot-state .main-svg').first().waitFor();
  await page.locator('#plot-action .main-svg').first().waitFor();
  // every video has its metadata (duration) and sits at ?t=
  await page.waitForFunction(() => [...document.querySelectorAll('video[data-camera]')]
    .every((v) => v.readyState >= 1 && Number.isFinite(v.duration)));
  seen.title = await page.title();
  seen.episode_id = await page.locator('#episode-id').textContent();
  seen.videos = await page.$$eval('video[data-camera]', (vs) => vs.map((v) => ({
    camera: v.dataset.camera, duration: v.duration, currentTime: v.currentTime, videoWidth: v.videoWidth,
    error: v.error && v.error.message })));
  seen.scrub_at_open = Number(await page.locator('#scrub').inputValue());
  seen.clock_at_open = await page.locator('#clock').textContent();
  seen.marks = await page.$$eval('#marks .mark', (ms) => ms.map((m) => ({
    check: m.dataset.check, t: Number(m.dataset.t), end: Number(m.dataset.end), title: m.title,
    active: m.classList.contains('active'), width: m.getBoundingClientRect().width })));
  // the plots: the failed finding shaded + labelled, the cursor (shapes[0]) at ?t=
  seen.plots = await page.$$eval('.plot', (ps) => ps.map((p) => ({
    id: p.id, traces: p.data.length, cursor_x: p.layout.shapes[0].x0,
    shaded: p.layout.shapes.slice(1).map((s) => [s.x0, s.x1]),
    labels: [...p.querySelectorAll('.annotation-text')].map((a) => a.textContent) })));
  seen.failed_findings = await page.$$eval('#findings tr.failed', (rs) => rs.map((r) => ({
    check: r.dataset.check, text: r.textContent })));
  await screenshot(page, 'review-opened-at-finding');

  // play: the first video's currentTime advances, the others follow, the cursor moves
  const t0 = await page.evaluate(() => document.querySelector('video[data-camera]').currentTime);
  await page.locator('#play').click();
  // every video past t0 + 0.3 s (waiting on the first alone, another may be read a few ms behind it)
  await page.waitForFunction((t) => [...document.querySelectorAll('video[data-camera]')].every((v) => v.currentTime > t + 0.3), t0);
  await page.locator('#play').click(); // pause
  seen.after_play = await page.evaluate(() => ({
    videos: [...document.querySelectorAll('video[data-camera]')].map((v) => ({ camera: v.dataset.camera, t: v.currentTime, paused: v.paused })),
    scrub: Number(document.getElementById('scrub').value),
    cursors: [...document.querySelectorAll('.plot')].map((p) => p.layout.shapes[0].x0),
    status: document.getElementById('player-status').textContent,
  }));
  seen.played_from = t0;
  await screenshot(page, 'review-played');

  // clicking the finding's mark seeks every video to the finding's start
  await page.locator('#marks .mark').first().click();
  await page.waitForFunction(() => {
    const m = document.querySelector('#marks .mark');
    return [...document.querySelectorAll('video[data-camera]')].every((v) => Math.abs(v.currentTime - Number(m.dataset.t)) < 0.06);
  });
  seen.after_mark_click = await page.$$eval('video[data-camera]', (vs) => vs.map((v) => v.currentTime));

  // reject with a reason
  seen.reviewer = await page.locator('#reviewer').textContent();
  await page.locator('#reason').fill(opt.reason);
  await page.locator('#reject').click();
  await page.locator('#decision-status.ok').waitFor();
  seen.decision_status = await page.locator('#decision-status').textContent();
  seen.history = await page.$$eval('#history tbody tr', (rs) => rs.map((r) => [...r.cells].map((c) => c.textContent)));
  seen.latest_decision = await page.locator('#latest-decision').textContent();
  await page.locator('#decision').scrollIntoViewIfNeeded();
  await screenshot(page, 'review-rejected');

  // after a reload the decision is still there (it is in the lake, not the page)
  await page.reload({ waitUntil: 'load' });
  seen.history_after_reload = await page.$$eval('#history tbody tr', (rs) => rs.map((r) => [...r.cells].map((c) => c.textContent)));

  if (opt['queue-url']) {
    log(`open ${opt['queue-url']}`);
    await page.goto(opt['queue-url'], { waitUntil: 'load' });
    seen.queue_rows = await page.$$eval('#queue tbody tr', (rs) => rs.map((r) => ({
      episode: r.dataset.episode, decision: r.dataset.decision, in_release: r.dataset.inRelease, hidden: r.hidden })));
    await page.locator('#decision-filter').selectOption('reject');
    seen.queue_rejected = await page.$$eval('#queue tbody tr:not([hidden])', (rs) => rs.map((r) => r.dataset.episode));
    seen.queue_count = await page.locator('#count').textContent();
    await screenshot(page, 'queue-filtered-rejected');
    await page.locator('#decision-filter').selectOption('all');
    await page.locator('#filter').fill(seen.queue_rejected[0] || 'x');
    seen.queue_text_filtered = await page.$$eval('#queue tbody tr:not([hidden])', (rs) => rs.map((r) => r.dataset.episode));
    await page.locator(`#queue tbody tr:not([hidden]) a`).first().click();
    await page.waitForLoadState('load');
    seen.queue_link_opened = new URL(page.url()).pathname;
  }
  seen.console_errors = consoleErrors;
} catch (err) {
  seen.error = String(err && err.stack || err);
  seen.failed_at_url = page.url();
  seen.console_errors = consoleErrors;
  try {
    await screenshot(page, 'error');
    fs.writeFileSync(path.join(OUT, 'error-page.html'), await page.content());
  } catch { /* the page is gone: the error above says why */ }
} finally {
  await closeChromium(context, userDataDir);
}
fs.writeFileSync(path.join(OUT, 'review-result.json'), JSON.stringify(seen, null, 2));
console.log(JSON.stringify(seen));
process.exit(seen.error ? 1 : 0);
