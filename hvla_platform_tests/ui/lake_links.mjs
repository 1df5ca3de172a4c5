// The lake web service in headless Chromium (playwright-core), the way a person follows a report
// link from the Dagster UI: open the service once with ?key= (the cookie then goes with every
// link), click a QA report on the index page, see the report, and seek its episode video.
//
// Prints one JSON object (what the pages showed) on stdout; screenshots land in --artifacts. Run by
// hvla_platform_tests/ui/test_lake_web_browser.py, which starts `hvla web` on a small lake.
//
//   node lake_links.mjs --base-url http://127.0.0.1:PORT --key KEY --artifacts DIR [--chromium /usr/bin/chromium]

import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { launchChromium, closeChromium } from './chromium.mjs';

const { values: opt } = parseArgs({
  options: {
    'base-url': { type: 'string' },
    key: { type: 'string' },
    artifacts: { type: 'string' },
    chromium: { type: 'string', default: process.env.HVLA_CHROMIUM || '/usr/bin/chromium' },
  },
});
if (!opt['base-url'] || !opt.key || !opt.artifacts) {
  console.error('usage: node lake_links.mjs --base-url URL --key KEY --artifacts DIR');
  process.exit(2);
}
const BASE = opt['base-url'].replace(/\/$/, '');
const OUT = path.resolve(opt.artifacts);
fs.mkdirSync(OUT, { recursive: true });

const { context, page, consoleErrors, userDataDir } = await launchChromium(opt.chromium, {
  viewport: { width: 1200, height: 800 }, timeoutMs: 15_000, profilePrefix: 'hvla-lake-chromium-',
});

const result = { base_url: BASE };
let failed = null;
try {
  // without the key: the one-line refusal
  const refused = await page.goto(`${BASE}/`);
  result.without_key = { status: refused.status(), text: (await page.locator('body').innerText()).trim() };
  // with ?key= once: a redirect to the same page without the key, and a cookie
  await page.goto(`${BASE}/?key=${encodeURIComponent(opt.key)}`);
  result.index_url = page.url();
  result.index_title = await page.locator('h1').first().innerText();
  await page.screenshot({ path: path.join(OUT, 'lake-01-index.png') });
  const link = page.getByRole('link', { name: /qa_report|episodes-hdf5\// }).first();
  result.qa_link_href = await link.getAttribute('href');
  await link.click();
  await page.locator('h1').first().waitFor();
  result.report_url = page.url();
  result.report_h1 = await page.locator('h1').first().innerText();
  result.report_body = (await page.locator('body').innerText()).slice(0, 500);
  // the episode's video: its metadata loads and seeking lands where asked (HTTP Range requests)
  const video = page.locator('video').first();
  result.video = await video.evaluate(async (v) => {
    if (v.readyState < 1) await new Promise((ok, bad) => { v.onloadedmetadata = ok; v.onerror = () => bad(new Error(`video error ${v.error && v.error.code}`)); });
    const duration = v.duration;
    const target = duration / 2;
    await new Promise((ok) => { v.onseeked = ok; v.currentTime = target; });
    return { duration, target, current_time: v.currentTime, error: v.error ? v.error.code : null };
  });
  await page.screenshot({ path: path.join(OUT, 'lake-02-qa-report.png') });
} catch (e) {
  failed = String(e && e.stack || e);
  try { await page.screenshot({ path: path.join(OUT, 'lake-failure.png') }); } catch { /* page gone */ }
} finally {
  result.console_errors = consoleErrors;
  result.failed = failed;
  await closeChromium(context, userDataDir);
}
console.log(JSON.stringify(result));
process.exit(failed ? 1 : 0);
