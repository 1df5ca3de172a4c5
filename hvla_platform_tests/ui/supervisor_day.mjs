// A data supervisor's day in the Dagster UI (issue 13 "Done when"), in headless Chromium
// (playwright-core), in two phases the test runs around its CLI steps:
//
//   --phase qa       the Runs list: the partition's ingest run (Success) and its hvla/qa tag;
//                    episodes_hdf5: the Overview's latest check results (a failed check in red), the
//                    partition's panel (status tag, hvla/qa_summary table), the hvla/qa_report link
//                    (a new tab: the QA report over HTTP), the Checks tab (the gate check Failed, its
//                    hvla/failing_episodes table), the flagged episode's review link from that table →
//                    the review page at the finding's time: play the videos, reject with a reason.
//   --phase flagged  lerobot_dataset after a consent revocation: the Checks tab's rights_standing
//                    (Failed, with the consent and reason) and the Overview's latest check results.
//
// Prints one JSON object (what the pages showed) on stdout; progress goes to stderr; screenshots
// (numbered from --first-shot) land in --artifacts. Run by hvla_platform_tests/ui/test_supervisor_day.py.
//
//   node supervisor_day.mjs --phase qa|flagged --base-url URL --web-url URL --partition DAY|ROBOT
//        --artifacts DIR [--episode ID] [--reason TEXT] [--check camera_frozen] [--first-shot 1]
//        [--chromium PATH]

import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { launchChromium, stepRecorder, closeChromium } from './chromium.mjs';

const { values: opt } = parseArgs({
  options: {
    phase: { type: 'string' },
    'base-url': { type: 'string' },
    'web-url': { type: 'string' },
    partition: { type: 'string' },
    artifacts: { type: 'string' },
    episode: { type: 'string', default: '' },
    check: { type: 'string', default: 'camera_frozen' },
    reason: { type: 'string', default: 'head camera frozen' },
    'first-shot': { type: 'string', default: '1' },
    chromium: { type: 'string', default: process.env.HVLA_CHROMIUM || '/usr/bin/chromium' },
  },
});
if (!['qa', 'flagged'].includes(opt.phase) || !opt['base-url'] || !opt['web-url'] || !opt.partition || !opt.artifacts) {
  console.error('usage: node supervisor_day.mjs --phase qa|flagged --base-url URL --web-url URL --partition P --artifacts DIR');
  process.exit(2);
}
const BASE = opt['base-url'].replace(/\/$/, '');
const WEB = opt['web-url'].replace(/\/$/, '');
const OUT = path.resolve(opt.artifacts);
const { log } = stepRecorder(OUT, `supervisor-${opt.phase}`);
// the two phases write into one folder: this phase numbers its screenshots on from --first-shot
let shot = Number(opt['first-shot']) - 1;
async function screenshot(page, name) {
  shot += 1;
  const file = path.join(OUT, `${String(shot).padStart(2, '0')}-${name}.png`);
  await page.screenshot({ path: file });
  log(`screenshot ${path.basename(file)}`);
}

/** Key → cell element of the metadata table that holds `key` in its first column. */
function metadataCell(page, key) {
  return page.getByRole('row').filter({ has: page.getByRole('cell', { name: key, exact: true }) }).getByRole('cell').nth(1);
}

/** Rows (arrays of cell texts) of a rendered markdown table (header row included). */
async function tableRows(table) {
  return table.locator('tr').evaluateAll((rs) => rs.map((r) => [...r.cells].map((c) => c.innerText.trim())));
}

/** The "Latest check results" tags of an asset's Overview: `{ failed, warned, passed }` (null if absent). */
async function latestCheckResults(page) {
  const box = page.getByText('Latest check results', { exact: true }).locator('xpath=..');
  await box.locator('[role=img]').first().waitFor();
  const count = async (icon) => {
    const tag = box.locator('.BaseTag, [class*="BaseTag"]').filter({ has: page.locator(`[aria-label="${icon}"]`) });
    return (await tag.count()) ? Number((await tag.first().innerText()).trim()) : null;
  };
  return { failed: await count('cancel'), warned: await count('warning_outline'), passed: await count('check_circle') };
}

/** The Checks tab's row of `check`: its status text in the list, then its detail (evaluation
 * result, partition and metadata table as key → text). */
async function openCheck(page, check) {
  await page.getByRole('tab', { name: 'Checks' }).click();
  const list = page.locator('[class*="checkRow"]').filter({ has: page.locator(`[title="${check}"]`) }).first();
  await list.waitFor();
  const listStatus = (await list.innerText()).split('\n').map((s) => s.trim()).filter(Boolean).pop();
  await list.click();
  await page.waitForURL(new RegExp(`checkDetail=${check}`));
  await page.getByRole('img', { name: 'asset_check', exact: true }).locator('xpath=following-sibling::span[1]')
    .filter({ hasText: new RegExp(`^${check}$`) }).waitFor();
  const evaluation = page.getByText('Evaluation result', { exact: true }).locator('xpath=..');
  const result = evaluation.getByText(/^(Passed|Failed|Skipped|Errored|Executing)$/).first();
  await result.waitFor();
  const partition = page.getByText('Partition', { exact: true }).locator('xpath=..');
  const metadata = {};
  const table = page.getByRole('table').filter({ hasText: 'hvla/' }).first();
  for (const row of await table.getByRole('row').all()) {
    const cells = await row.getByRole('cell').allInnerTexts();
    if (cells.length >= 2) metadata[cells[0].trim()] = cells[1].trim();
  }
  return {
    check, list_status: listStatus, evaluation: (await result.innerText()).trim(),
    partition: (await partition.innerText()).replace('Partition', '').trim(),
    non_blocking: (await page.getByText('non-blocking', { exact: true }).count()) > 0, metadata,
  };
}

const { context, page, consoleErrors, userDataDir } = await launchChromium(opt.chromium, {
  viewport: { width: 1600, height: 1100 }, timeoutMs: 60_000, profilePrefix: 'hvla-supervisor-chromium-',
  extraArgs: ['--autoplay-policy=no-user-gesture-required'],
});
// Dagster OSS's "Join the Dagster community" dialog comes once per profile at a time of its own
await page.addLocatorHandler(page.getByRole('dialog').filter({ hasText: 'Join the Dagster community' }),
  async (dialog) => { log('dismissing the community dialog'); await dialog.getByRole('button', { name: 'Skip' }).click(); });

const seen = { phase: opt.phase, web_http_errors: [] };
// every answer of the lake web service that is not a success (a link that does not open)
context.on('response', (r) => {
  if (r.url().startsWith(WEB) && r.status() >= 400) seen.web_http_errors.push(`${r.status()} ${r.url()}`);
});
try {
  if (opt.phase === 'qa') {
    // ---- the Runs list: the ingest run of the partition says Success, its tag hvla/qa: failed --
    log(`open ${BASE}/runs`);
    await page.goto(`${BASE}/runs`);
    const runRow = page.locator('[class*="RunsFeedRow_rowGrid"]')
      .filter({ has: page.locator(`[data-tooltip="partition: ${opt.partition}"]`) }).first();
    await runRow.waitFor();
    seen.run_row = {
      tags: await runRow.locator('[class*="RunRowTags_runTagsWrapper"] [data-tooltip]')
        .evaluateAll((ts) => ts.map((t) => t.getAttribute('data-tooltip'))),
      status: (await runRow.getByText(/^(Success|Failure|Canceled|Started|Queued)$/).first().innerText()).trim(),
      job: (await runRow.getByText(/_job$/).first().innerText()).trim(),
    };
    await screenshot(page, 'runs-list-qa-tag');

    // ---- the asset's Overview: its latest check results, a failed one in red ------------------
    log(`open ${BASE}/assets/episodes_hdf5`);
    await page.goto(`${BASE}/assets/episodes_hdf5`);
    seen.overview_checks = await latestCheckResults(page);
    await page.getByRole('tab', { name: 'Overview' }).hover(); // lets the community dialog come and go
    await screenshot(page, 'hdf5-overview-check-results');

    // ---- Partitions → the partition: status, hvla/qa_summary -----------------------------------
    log(`Partitions → ${opt.partition}`);
    await page.getByRole('tab', { name: 'Partitions' }).click();
    await page.locator(`[title="${opt.partition}"]`).last().click();
    const mdTable = page.getByRole('table').filter({ hasText: 'dagster/uri' });
    await mdTable.waitFor();
    const statusTag = page.locator('.BaseTag, [class*="BaseTag"]')
      .filter({ hasText: /^(Materialized|Failed|Missing|Materializing)$/ }).first();
    seen.partition_status = {
      text: (await statusTag.innerText()).trim(),
      fill: await statusTag.evaluate((e) => e.style.getPropertyValue('--tag-fill-color')),
    };
    const summary = metadataCell(page, 'hvla/qa_summary');
    await summary.scrollIntoViewIfNeeded();
    seen.qa_summary = {
      headline: (await summary.locator('strong').first().innerText()).trim(),
      rows: await tableRows(summary.locator('table').first()),
      review_links: await summary.locator('a').evaluateAll((as) => as.map((a) => ({ text: a.innerText, href: a.href }))),
    };
    await screenshot(page, 'partition-qa-summary');

    // ---- hvla/qa_report: opens in a new tab, over HTTP -----------------------------------------
    log('click hvla/qa_report');
    const reportLink = metadataCell(page, 'hvla/qa_report').locator('a').filter({ hasText: /qa_report\.html/ }).first();
    seen.qa_report_href = await reportLink.getAttribute('href');
    const [report] = await Promise.all([context.waitForEvent('page'), reportLink.click()]);
    const reportErrors = [];
    report.on('console', (m) => { if (m.type() === 'error') reportErrors.push(m.text().slice(0, 300)); });
    await report.waitForLoadState('load');
    seen.qa_report = { url: report.url(), title: await report.title(),
                       text: (await report.locator('body').innerText()).slice(0, 2000), console_errors: reportErrors };
    await screenshot(report, 'qa-report-over-http');
    await report.close();
    await page.bringToFront();

    // ---- Checks tab: the gate check failed; its failing episodes with review links -------------
    log(`Checks → ${opt.check}`);
    seen.gate_check = await openCheck(page, opt.check);
    await screenshot(page, `check-${opt.check}-failed`);
    const failingRow = page.getByRole('row').filter({ has: page.getByText('hvla/failing_episodes', { exact: true }) });
    await failingRow.getByText('[Show Markdown]').click();
    const dialog = page.getByRole('dialog').filter({ hasText: 'hvla/failing_episodes' });
    await dialog.locator('table').waitFor();
    seen.failing_episodes = await tableRows(dialog.locator('table').first());
    await screenshot(page, 'failing-episodes-table');

    // ---- the flagged episode's review link → the review page at the finding --------------------
    const review = dialog.locator('tr').filter({ hasText: opt.episode }).locator('a').first();
    seen.review_href = await review.getAttribute('href');
    log(`follow ${seen.review_href}`);
    await Promise.all([page.waitForURL((u) => u.href.startsWith(`${WEB}/review/`)), review.click()]);
    await page.waitForLoadState('load');
    seen.review_url = page.url();
    await page.waitForFunction(() => [...document.querySelectorAll('video[data-camera]')]
      .every((v) => v.readyState >= 1 && Number.isFinite(v.duration)));
    seen.review_episode = await page.locator('#episode-id').textContent();
    seen.review_at_open = {
      scrub: Number(await page.locator('#scrub').inputValue()),
      videos: await page.$$eval('video[data-camera]', (vs) => vs.map((v) => ({
        camera: v.dataset.camera, t: v.currentTime, duration: v.duration, error: v.error && v.error.message }))),
      marks: await page.$$eval('#marks .mark', (ms) => ms.map((m) => ({ check: m.dataset.check, t: Number(m.dataset.t) }))),
    };
    await screenshot(page, 'review-page-at-finding');
    // play: the first video's time advances past the finding (times read while playing), then pause
    const t0 = await page.evaluate(() => document.querySelector('video[data-camera]').currentTime);
    await page.locator('#play').click();
    const advanced = await page.waitForFunction((t) => {
      const ts = [...document.querySelectorAll('video[data-camera]')].map((v) => v.currentTime);
      return ts[0] > t + 0.3 ? ts : null;
    }, t0);
    seen.played = { from: t0, to: await advanced.jsonValue() };
    await page.locator('#play').click(); // pause
    await page.waitForFunction(() => [...document.querySelectorAll('video[data-camera]')].every((v) => v.paused));
    await screenshot(page, 'review-video-played');
    log('reject');
    seen.reviewer = (await page.locator('#reviewer').textContent()).trim();
    await page.locator('#reason').fill(opt.reason);
    await page.locator('#reject').click();
    await page.locator('#decision-status.ok').waitFor();
    seen.decision_status = (await page.locator('#decision-status').textContent()).trim();
    await page.locator('#decision').scrollIntoViewIfNeeded();
    await screenshot(page, 'review-rejected');
  } else {
    // ---- lerobot_dataset after the revocation: rights_standing failed --------------------------
    log(`open ${BASE}/assets/lerobot_dataset`);
    await page.goto(`${BASE}/assets/lerobot_dataset`);
    seen.overview_checks = await latestCheckResults(page);
    await page.getByRole('tab', { name: 'Overview' }).hover();
    await screenshot(page, 'release-overview-check-results');
    seen.rights_check = await openCheck(page, 'rights_standing');
    await screenshot(page, 'release-rights-standing-failed');
  }
} catch (err) {
  seen.error = String(err && err.stack || err).slice(0, 4000);
  seen.failed_at_url = page.url();
  log(`FAILED: ${String(err).split('\n')[0]}`);
  try {
    seen.page_text = (await page.locator('body').innerText({ timeout: 5_000 })).slice(0, 1500);
    await screenshot(page, 'error');
    fs.writeFileSync(path.join(OUT, `error-page-${opt.phase}.html`), await page.content());
  } catch (e) { log(`could not capture the failing page: ${e}`); }
} finally {
  seen.console_errors = consoleErrors.slice(0, 20);
  await closeChromium(context, userDataDir);
}
fs.writeFileSync(path.join(OUT, `supervisor-${opt.phase}.json`), JSON.stringify(seen, null, 2));
process.stdout.write(JSON.stringify(seen) + '\n');
process.exit(seen.error ? 1 : 0);
