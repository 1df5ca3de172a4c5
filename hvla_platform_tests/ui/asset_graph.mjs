// Drives the Dagster 1.13 UI the way a person does, in headless Chromium (playwright-core):
// asset graph → raw_mcap → "Materialize selected…" → one capture_day_robot partition (day|robot) →
// "Launch 1 run" → the run page until the run ends → its check evaluations → the asset page
// (owners, the partition's metadata, the Checks tab).
//
// Prints one JSON object (what the pages showed) on stdout; progress goes to stderr; a
// screenshot of every step lands in --artifacts. Run by hvla_platform_tests/ui/test_browser.py,
// which starts dagster-webserver + dagster-daemon on a fresh instance; docs/ui_testing.md.
//
//   node asset_graph.mjs --base-url http://127.0.0.1:PORT --artifacts DIR \
//        [--asset raw_mcap] [--partition 2026-11-10|g1-001] [--run-timeout-s 150] [--chromium /usr/bin/chromium]

import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { launchChromium, stepRecorder, closeChromium } from './chromium.mjs';

const { values: opt } = parseArgs({
  options: {
    'base-url': { type: 'string' },
    artifacts: { type: 'string' },
    asset: { type: 'string', default: 'raw_mcap' },
    partition: { type: 'string', default: '2026-11-10|g1-001' },
    'run-timeout-s': { type: 'string', default: '150' },
    chromium: { type: 'string', default: process.env.HVLA_CHROMIUM || '/usr/bin/chromium' },
  },
});
if (!opt['base-url'] || !opt.artifacts) {
  console.error('usage: node asset_graph.mjs --base-url URL --artifacts DIR [--asset A] [--partition DAY|ROBOT]');
  process.exit(2);
}
const BASE = opt['base-url'].replace(/\/$/, '');
const ASSET = opt.asset;
const PARTITION = opt.partition;
const RUN_TIMEOUT_MS = Number(opt['run-timeout-s']) * 1000;
const OUT = path.resolve(opt.artifacts);
const { log, screenshot } = stepRecorder(OUT, 'ui');

/** The innermost element that contains every one of `locators` (document order puts it last). */
function innermost(page, ...locators) {
  let l = page.locator('div');
  for (const inner of locators) l = l.filter({ has: inner });
  return l.last();
}

/** Wait until `locator` matches at least `n` elements (lists render in pieces). */
async function waitForCount(locator, n, what, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  let count = await locator.count();
  while (count < n) {
    if (Date.now() > deadline) throw new Error(`expected ${n} ${what}, the page shows ${count}`);
    await new Promise((r) => setTimeout(r, 250));
    count = await locator.count();
  }
  return count;
}

/** Wait until the number of elements `locator` matches is non-zero and stays put for 0.5 s. */
async function settledCount(locator, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  let last = -1;
  for (;;) {
    const count = await locator.count();
    if (count > 0 && count === last) return count;
    if (Date.now() > deadline) throw new Error(`${locator} did not settle (last count ${count})`);
    last = count;
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** Key → value of an un-headed two-column metadata table (first two cells of each row). */
async function readMetadataTable(table) {
  const out = {};
  for (const row of await table.getByRole('row').all()) {
    const cells = await row.getByRole('cell').allInnerTexts();
    if (cells.length >= 2 && cells[0].trim()) out[cells[0].trim()] = cells[1].trim();
  }
  return out;
}

const { context, page, consoleErrors, userDataDir } = await launchChromium(opt.chromium, {
  viewport: { width: 1600, height: 1100 }, timeoutMs: 60_000, profilePrefix: 'hvla-ui-chromium-',
});

// Dagster OSS shows a "Join the Dagster community" dialog once per browser profile, at a moment
// of its choosing; a person clicks "Skip" whenever it appears.
await page.addLocatorHandler(
  page.getByRole('dialog').filter({ hasText: 'Join the Dagster community' }),
  async (dialog) => {
    log('dismissing the "Join the Dagster community" dialog');
    await dialog.getByRole('button', { name: 'Skip' }).click();
  },
);

const result = { base_url: BASE, asset: ASSET, partition: PARTITION, screenshots_dir: OUT };
let failed = null;
try {
  // ---- 1. the global asset graph, every group expanded -------------------------------------
  log(`open ${BASE}/asset-groups`);
  await page.goto(`${BASE}/asset-groups`);
  await page.getByText('Global asset lineage', { exact: true }).waitFor();
  const assetNodes = page.locator('[class*="AssetNode_assetNodeContainer"]');
  const groupNodes = page.locator('[class*="CollapsedGroupNode_collapsedGroupNodeBox"]');
  try {
    await assetNodes.or(groupNodes).first().waitFor();
  } catch (e) {
    // Seen once in CI, never here (~2 s alone or after the whole suite): no node within 60 s.
    // Keep what the page showed, then reload once, as a person would; a second miss fails.
    result.graph_reloaded = (await page.locator('body').innerText({ timeout: 5_000 }).catch(() => '')).slice(0, 1500);
    log(`no graph node after 60 s; the page showed: ${JSON.stringify(result.graph_reloaded.slice(0, 300))}; reloading once`);
    await screenshot(page, 'asset-graph-not-drawn');
    await page.reload();
    await assetNodes.or(groupNodes).first().waitFor();
  }
  if (await groupNodes.count()) {
    log('graph settings → "Expand all groups"');
    // the gear among the graph's zoom controls (the navigation has a "Settings" entry too)
    const gear = page.getByRole('img', { name: 'settings', exact: true });
    const controls = innermost(page, page.getByRole('img', { name: 'zoom_in', exact: true }), gear);
    // The community dialog can pop up while the menu is open; dismissing it closes the menu and
    // detaches the item, so a click would wait for it forever: open the menu again in that case.
    for (let attempt = 1; ; attempt++) {
      try {
        await controls.getByRole('button').filter({ has: gear }).click();
        await page.getByRole('menuitem', { name: /Expand all groups/ }).click({ timeout: 8_000 });
        break;
      } catch (e) {
        if (attempt >= 3) throw e;
        log(`the settings menu closed before "Expand all groups" was clicked (attempt ${attempt}); opening it again`);
        await page.keyboard.press('Escape');
      }
    }
    // The layout changes under the old viewport; reload so that the graph is fitted to the
    // screen again (the expansion is remembered by the browser).
    await page.reload();
  }
  await assetNodes.filter({ hasText: new RegExp(`^${ASSET}$`) }).waitFor();
  await settledCount(assetNodes); // also lets the fit-to-screen animation end before the screenshot
  result.graph_assets = (await assetNodes.allInnerTexts()).map((t) => t.trim()).sort();
  result.graph_groups = (await page.locator('[class*="ExpandedGroupNode_groupNodeHeaderBox"]').allInnerTexts())
    .map((t) => t.split('\n')[0].trim()).filter(Boolean);
  await screenshot(page, 'asset-graph');

  // ---- 2. select the asset, open the launch dialog, pick one partition ----------------------
  log(`select ${ASSET} in the graph`);
  await assetNodes.filter({ hasText: new RegExp(`^${ASSET}$`) }).click();
  await page.getByRole('link', { name: /View in Asset Catalog/ }).waitFor();
  await screenshot(page, 'asset-selected');
  await page.getByRole('button', { name: /Materialize selected/ }).click();
  const dialog = page.getByRole('dialog').filter({ hasText: `Launch runs to materialize ${ASSET}` });
  await dialog.waitFor();
  // one dynamic dimension (capture_day_robot, keys day|robot): only combinations with data exist
  log(`launch dialog: partition = ${PARTITION}`);
  await dialog.getByText('Select a partition or create one').click();
  const filter = page.getByPlaceholder('Filter partitions');
  await filter.fill(PARTITION);
  await page.getByRole('menuitem').filter({ has: page.locator(`[title="${PARTITION}"]`) }).click();
  // close the dropdown by clicking the dialog's title (Escape would close the whole dialog)
  await dialog.getByText(`Launch runs to materialize ${ASSET}`).click();
  await filter.waitFor({ state: 'hidden' });
  result.launch_dialog = {
    partition_count: (await dialog.getByText(/^\d+ partitions?$/).innerText()).trim(),
    launch_button: (await dialog.getByRole('button', { name: /^Launch/ }).innerText()).trim(),
  };
  await screenshot(page, 'launch-dialog');
  await dialog.getByRole('button', { name: 'Launch 1 run' }).click();

  // ---- 3. the run: follow the toast's "View" link, wait for the run to end -------------------
  const toast = page.getByText(/^Launched run [0-9a-f]{8}$/);
  await toast.waitFor();
  result.toast = (await toast.innerText()).trim();
  log(result.toast);
  const shortId = result.toast.slice(-8);
  try {
    await page.getByRole('link', { name: 'View', exact: true }).first().click({ timeout: 10_000 });
  } catch {
    // the toast went away before the click (a slow machine): the Runs page lists the run too
    log('toast gone; opening the run from the Runs page');
    await page.goto(`${BASE}/runs`);
    await page.locator(`a[href^="/runs/${shortId}"]`).first().click();
  }
  await page.waitForURL(/\/runs\/[0-9a-f-]{36}/);
  result.run_id = page.url().match(/\/runs\/([0-9a-f-]{36})/)[1];
  if (!result.run_id.startsWith(shortId)) throw new Error(`opened run ${result.run_id}, launched ${shortId}`);
  const header = page.locator('[class*="PageHeader_container"]').first();
  await header.getByText(`partition: ${PARTITION}`).waitFor();
  await screenshot(page, 'run-started');
  log(`waiting up to ${RUN_TIMEOUT_MS / 1000} s for run ${result.run_id} to end`);
  const terminal = header.getByText(/^(Success|Failure|Canceled)$/);
  await terminal.waitFor({ timeout: RUN_TIMEOUT_MS });
  result.run_status = (await terminal.innerText()).trim();
  result.run_header = (await header.innerText()).split('\n').map((s) => s.trim()).filter(Boolean);
  log(`run ${result.run_id.slice(0, 8)}: ${result.run_status}`);
  await screenshot(page, 'run-finished');

  // the run's own check evaluations, from its event log filtered to that event type
  await page.getByPlaceholder('Filter…').fill('type:ASSET_CHECK_EVALUATION');
  await page.keyboard.press('Enter');
  const checkLine = /^Check (\w+) (succeeded|failed) for materialization of (\w+)\.$/;
  const checkEvents = page.getByText(checkLine);
  const runChecks = Number((await header.getByText(/^\d+ checks?$/).innerText()).split(' ')[0]);
  await waitForCount(checkEvents, runChecks, 'check evaluations in the run\'s event log');
  result.run_check_events = (await checkEvents.allInnerTexts()).map((t) => {
    const [, check, outcome, asset] = t.trim().match(checkLine);
    return { asset, check, outcome };
  });
  await screenshot(page, 'run-check-events');

  // ---- 4. the asset page: owners (Overview) ---------------------------------------------------
  log(`open the ${ASSET} asset from the run's event log`);
  await page.getByRole('link', { name: ASSET, exact: true }).first().click();
  await page.waitForURL(new RegExp(`/assets/${ASSET}`));
  await page.getByRole('tab', { name: 'Overview' }).click();
  const owners = innermost(page, page.getByText('Owners', { exact: true }), page.locator('[data-tooltip]'));
  await owners.waitFor();
  result.owners = [];
  for (const tag of await owners.locator('[data-tooltip]').all()) {
    const icon = await tag.locator('xpath=..').getByRole('img').first().getAttribute('aria-label').catch(() => null);
    result.owners.push({ name: (await tag.innerText()).trim(), icon });
  }
  const kinds = innermost(page, page.getByText('Kinds', { exact: true }), page.locator('[class*="OpTags"]'));
  result.kinds = (await kinds.locator('[class*="OpTags"]').allInnerTexts()).map((t) => t.trim());
  const group = innermost(page, page.getByText('Group', { exact: true }), page.getByRole('link'));
  result.group = (await group.getByRole('link').first().innerText()).trim();
  await screenshot(page, 'asset-overview');

  // ---- 5. the partition: status, run and materialization metadata (Partitions tab) -----------
  log(`Partitions tab → ${PARTITION}`);
  await page.getByRole('tab', { name: 'Partitions' }).click();
  // the partition list's row (the filter chip above the list carries the same title, first)
  await page.locator(`[title="${PARTITION}"]`).last().click();
  const panelTitle = page.locator(`[title="${PARTITION}"]`);
  const mdTable = page.getByRole('table').filter({ hasText: 'dagster/uri' });
  await mdTable.waitFor();
  const panel = innermost(page, panelTitle, mdTable);
  result.partition_panel = {
    status: (await panel.locator('[data-tooltip]').filter({ hasText: /^(Materialized|Failed|Missing|Materializing)$/ })
      .first().innerText()).trim(),
    run: (await panel.locator('a[href^="/runs/"]').first().innerText()).trim(),
    metadata: await readMetadataTable(mdTable),
  };
  await screenshot(page, 'partition');
  await mdTable.getByText('hvla/license', { exact: true }).scrollIntoViewIfNeeded();
  await screenshot(page, 'partition-rights-metadata');

  // ---- 6. the Checks tab: each check's status and latest evaluation --------------------------
  log('Checks tab');
  await page.getByRole('tab', { name: 'Checks' }).click();
  const checksHeading = page.getByText(/^Checks \(\d+\)$/);
  await checksHeading.waitFor();
  const checkCount = Number((await checksHeading.innerText()).match(/\d+/)[0]);
  const checkList = innermost(page, page.getByPlaceholder('Filter checks'), page.locator('[class*="VirtualizedTable"]'));
  await waitForCount(checkList.locator('[title]'), checkCount, 'checks in the Checks tab list');
  const names = await checkList.locator('[title]').evaluateAll((els) => els.map((e) => e.getAttribute('title')));
  result.checks_tab = [];
  for (const name of names) {
    const row = innermost(page, page.getByPlaceholder('Filter checks'), page.locator(`[title="${name}"]`))
      .locator(`[title="${name}"]`).locator('xpath=ancestor::*[contains(@class, "checkRow")][1]');
    const listStatus = (await row.innerText()).split('\n').map((s) => s.trim()).filter(Boolean).pop();
    await row.click();
    await page.waitForURL(new RegExp(`checkDetail=${name}`));
    // the detail panel's title (asset-check icon + name) shows the selected check
    await page.getByRole('img', { name: 'asset_check', exact: true }).locator('xpath=following-sibling::span[1]')
      .filter({ hasText: new RegExp(`^${name}$`) }).waitFor();
    const evaluation = innermost(page, page.getByText('Evaluation result', { exact: true }),
                                 page.getByText(/^(Passed|Failed|Skipped|Errored|Executing)$/));
    await evaluation.waitFor();
    const evalResult = (await evaluation.getByText(/^(Passed|Failed|Skipped|Errored|Executing)$/).first()
      .innerText()).trim();
    const blocking = (await page.getByText('This is a blocking asset check.').count()) > 0;
    const metadata = await readMetadataTable(
      page.getByRole('table').filter({ hasText: 'hvla/num_failing' }).first());
    result.checks_tab.push({ check: name, list_status: listStatus, evaluation: evalResult, blocking, metadata });
    await screenshot(page, `check-${name}`);
  }
} catch (err) {
  failed = err;
  result.error = String(err && err.stack || err).slice(0, 4000);
  result.failed_at_url = page.url();
  log(`FAILED: ${String(err).split('\n')[0]}`);
  try {
    // what the page showed (a spinner, an error box, an empty graph), for a failure seen only in CI
    result.page_text = (await page.locator('body').innerText({ timeout: 5_000 })).slice(0, 1500);
    await screenshot(page, 'error');
    fs.writeFileSync(path.join(OUT, 'error-page.html'), await page.content());
  } catch (e) { log(`could not capture the failing page: ${e}`); }
} finally {
  result.console_errors = consoleErrors.slice(0, 20);
  await closeChromium(context, userDataDir);
}
fs.writeFileSync(path.join(OUT, 'ui-result.json'), JSON.stringify(result, null, 2));
process.stdout.write(JSON.stringify(result) + '\n');
process.exit(failed ? 1 : 0);
