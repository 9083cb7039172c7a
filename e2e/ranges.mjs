// Ranges (issue 12, item 2): comparisons against days without data say so, "Last 12 months" is
// the 12 months ending today, and an invalid custom range is explained next to the picker.
// Called from run.mjs with the signed-in page; the seed has daily financials for the last 800 days.
import assert from "node:assert/strict";

const DAY = 86400000;
const iso = (daysAgo) => new Date(Date.now() - daysAgo * DAY).toISOString().slice(0, 10);

export async function rangeChecks(page, { base, shot, log }) {
  log("ranges: a comparison period the data does not cover says 'no data for …'");
  // 21 days starting 790 days ago: the 21 days before start 811 days ago (before the data), and
  // the same dates a year earlier have none at all.
  await page.goto(`${base}/?from=${iso(790)}&to=${iso(770)}`);
  for (const compare of ["previous", "last-year"]) {
    const span = page.locator(`[data-kpi="revenue"] [data-compare="${compare}"]`);
    const text = (await span.innerText()).trim();
    assert.match(text, /^vs (previous period|last year): no data for \d{1,2}( \w{3}( \d{4})?)?–\d{1,2} \w{3} \d{4}$/, `revenue ${compare}: ${text}`);
    assert.ok(!text.includes("%"), `no percentage against missing days: ${text}`);
  }
  await page.locator('[data-kpi="margin"] [data-no-data]').first().waitFor();
  await shot(page, "ranges-no-data");

  log("ranges: a covered comparison shows a change");
  await page.goto(`${base}/?from=${iso(60)}&to=${iso(31)}`);
  const covered = (await page.locator('[data-kpi="revenue"] [data-compare="previous"]').innerText()).trim();
  assert.match(covered, /^[▲▼→] [+−]?\d+\.\d% vs previous period$/, `a real change: ${covered}`);

  log("ranges: Last 12 months is the 12 months ending today, not the year to date");
  await page.goto(`${base}/?range=last_12_months`);
  const subtitle = await page.locator(".page-head p.muted").innerText();
  const m = subtitle.match(/(\d{1,2} \w{3} \d{4}) – (\d{1,2} \w{3} \d{4})/);
  assert.ok(m, `the subtitle names the range: ${subtitle}`);
  const months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
  const utc = (s) => { const [d, mon, y] = s.split(" "); return Date.UTC(Number(y), months.indexOf(mon), Number(d)); };
  const [from, to] = [utc(m[1]), utc(m[2])];
  const days = Math.round((to - from) / DAY) + 1;
  assert.ok(days === 365 || days === 366, `Last 12 months spans ${days} days (${m[1]} – ${m[2]})`);
  assert.ok(Math.abs(to - Date.now()) < 2 * DAY, `Last 12 months ends today: ${m[2]}`);

  log("ranges: an invalid custom range is explained next to the picker");
  await page.goto(`${base}/?range=custom&from=2025-11-30&to=2025-11-01`);
  const notice = page.locator('.page-head [data-range-error="from"]');
  await notice.waitFor();
  assert.match(await notice.innerText(), /^From: 30 Nov 2025 is after the To date, 1 Nov 2025\. Showing last 12 months instead\.$/);
  await shot(page, "ranges-invalid");
  await page.goto(`${base}/reports?from=2025-11-01&to=not-a-date`);
  assert.match(await page.locator('[data-range-error="to"]').innerText(), /To: “not-a-date” is not a date/);

  log("ranges: 375 px");
  const size = page.viewportSize();
  await page.setViewportSize({ width: 375, height: 812 });
  await page.goto(`${base}/?range=custom&from=2025-11-30&to=2025-11-01`);
  await page.locator('[data-range-error="from"]').waitFor();
  await shot(page, "ranges-invalid-375");
  await page.goto(`${base}/?from=${iso(790)}&to=${iso(770)}`);
  await page.locator('[data-kpi="revenue"] [data-no-data]').first().waitFor();
  await shot(page, "ranges-no-data-375");
  await page.setViewportSize(size);
}
