// Charts that tell the truth (issue #12 item 1): reads the chart JSON the server embeds in the
// overview and a client page and checks it against buckets computed here, independently of the
// server: every bucket of the range present, gaps (null) where the seed has no records, `partial`
// on the incomplete buckets. Called once from run.mjs, logged in as ADMIN.
//
// The seed (crates/zixly_web/tests/browser/main.rs) gives every client daily financials over the
// last 800 days, and `clientName` extra records in 2020 on the 10th and 20th of Jan, Feb, Apr, May
// and Jul only (see GAP_MONTHS_2020).
import assert from "node:assert/strict";

const DAY = 86400;
const GAP_MONTHS_2020 = [0, 1, 3, 4, 6]; // months (0-based) of 2020 with records
const GAP_DAYS_2020 = GAP_MONTHS_2020.flatMap((m) => [Date.UTC(2020, m, 10) / 1000, Date.UTC(2020, m, 20) / 1000]);

const unix = (iso) => Date.parse(`${iso}T00:00:00Z`) / 1000;
const isoOf = (ts) => new Date(ts * 1000).toISOString().slice(0, 10);

// Today in the tenant's time zone (the seed tenant's default).
function tenantToday(timeZone = "Australia/Sydney") {
  return new Intl.DateTimeFormat("en-CA", { timeZone }).format(new Date());
}

// The buckets of [from, to] (ISO dates): first days in range and partial flags.
function expectedBuckets(from, to, bucket, today) {
  const out = [];
  let start = unix(from);
  const end = unix(to), now = unix(today);
  while (start <= end) {
    const d = new Date(start * 1000);
    let wholeStart, next;
    if (bucket === "day") { wholeStart = start; next = start + DAY; }
    else if (bucket === "week") {
      wholeStart = start - ((d.getUTCDay() + 6) % 7) * DAY;
      next = wholeStart + 7 * DAY;
    } else {
      wholeStart = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1) / 1000;
      next = Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1) / 1000;
    }
    const wholeEnd = next - DAY;
    out.push({ x: start, partial: wholeStart < start || wholeEnd > end || wholeEnd >= now });
    start = next;
  }
  return out;
}

async function chartSpec(page, id) {
  const raw = await page.locator(`script[type="application/json"]#${id}`).textContent();
  return JSON.parse(raw);
}

// The range the page resolved (the custom-range form shows it).
async function shownRange(page) {
  return { from: await page.locator("#from").inputValue(), to: await page.locator("#to").inputValue() };
}

function assertBuckets(spec, range, bucket, today, what) {
  assert.equal(spec.bucket, bucket, `${what}: bucket`);
  const want = expectedBuckets(range.from, range.to, bucket, today);
  assert.deepEqual(spec.x.map(isoOf), want.map((b) => isoOf(b.x)), `${what}: one x per bucket of ${range.from}..${range.to}`);
  assert.deepEqual(spec.partial, want.map((b) => b.partial), `${what}: partial flags`);
  assert.equal(spec.from, unix(range.from), `${what}: the axis starts on the range's first day`);
  assert.equal(spec.to, unix(range.to) + DAY, `${what}: the axis ends after the range's last day`);
  for (const s of spec.series) assert.equal(s.values.length, want.length, `${what}: ${s.label} has a value or null per bucket`);
}

// Buckets with a value, as indexes.
const present = (spec, k = 0) => spec.series[k].values.flatMap((v, i) => (v === null ? [] : [i]));

async function drawn(page, id) {
  await page.locator(`figure[data-chart="${id}"] canvas`).waitFor();
}

async function shots(page, shot, name) {
  await shot(page, `charts-${name}`);
  await page.setViewportSize({ width: 375, height: 812 });
  await page.waitForTimeout(150); // the ResizeObserver redraws the chart
  await shot(page, `charts-${name}-375`);
  await page.setViewportSize({ width: 1280, height: 900 });
}

export async function chartChecks({ page, base, cfg, log, shot }) {
  const today = tenantToday();

  log("charts: This month has a bucket per day up to today, today partial");
  await page.goto(`${base}/?range=this_month`);
  await drawn(page, "overview-chart");
  {
    const spec = await chartSpec(page, "overview-chart");
    const range = await shownRange(page);
    assert.equal(range.to, today, "This month ends today (tenant time)");
    assert.equal(range.from, `${today.slice(0, 8)}01`, "This month starts on the 1st");
    assertBuckets(spec, range, "day", today, "overview, This month");
    assert.equal(spec.partial.at(-1), true, "today is an incomplete bucket");
    assert.equal(spec.bars, true, "daily sums of flows are bars");
    // Every day before today has records in the seed (today may not yet, west of Sydney).
    for (let i = 0; i + 1 < spec.x.length; i++) assert.notEqual(spec.series[0].values[i], null, `revenue on ${isoOf(spec.x[i])}`);
    const u = await page.locator('figure[data-chart="overview-chart"]').evaluate((el) => {
      const s = el._uplot.scales.x;
      return { min: s.min, max: s.max };
    });
    assert.deepEqual(u, { min: 0, max: spec.x.length }, "the drawn axis spans exactly the range's buckets");
    await shots(page, shot, "overview-this-month");
  }

  log("charts: Last 12 months is month buckets, the current month partial, no gaps");
  await page.goto(`${base}/?range=last_12_months`);
  await drawn(page, "overview-chart");
  {
    const spec = await chartSpec(page, "overview-chart");
    const range = await shownRange(page);
    assert.equal(range.to, today, "Last 12 months ends today");
    assertBuckets(spec, range, "month", today, "overview, Last 12 months");
    assert.ok(spec.x.length >= 12 && spec.x.length <= 13, `12 months are ${spec.x.length} month buckets`);
    assert.equal(spec.partial.at(-1), true, "the current month is incomplete");
    assert.deepEqual(present(spec), spec.x.map((_, i) => i), "every month of the seed has records");
    // Axis labels are AU month labels on month boundaries.
    const labels = await page.locator('figure[data-chart="overview-chart"]').evaluate((el) =>
      [...el.querySelectorAll(".u-axis")].length ? el._uplot.axes[0]._values : null);
    assert.ok(Array.isArray(labels) && labels.length >= 2, `x-axis labels: ${labels}`);
    for (const l of labels) assert.match(l, /^(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4}$/, `month label ${l}`);
    await shots(page, shot, "overview-12-months");
  }

  log("charts: a custom range over months without records shows gaps, not zeros");
  const year2020 = { from: "2020-01-01", to: "2020-12-31" };
  await page.goto(`${base}/?range=custom&from=${year2020.from}&to=${year2020.to}`);
  await drawn(page, "overview-chart");
  {
    const spec = await chartSpec(page, "overview-chart");
    assertBuckets(spec, await shownRange(page), "month", today, "overview, 2020");
    assert.deepEqual(spec.partial, Array(12).fill(false), "a past year has no incomplete month");
    for (let k = 0; k < 3; k++) assert.deepEqual(present(spec, k), GAP_MONTHS_2020, `${spec.series[k].label}: months without records are null`);
  }

  log("charts: the client page uses the same buckets (months with gaps, partial first and last weeks)");
  await page.goto(`${base}/clients?q=${encodeURIComponent(cfg.clientName)}`);
  const href = await page.locator("table[data-table=clients] tbody tr a").filter({ hasText: cfg.clientName }).first().getAttribute("href");
  const clientPath = href.split("?")[0];
  await page.goto(`${base}${clientPath}?range=custom&from=${year2020.from}&to=${year2020.to}`);
  await drawn(page, "client-fin");
  {
    const spec = await chartSpec(page, "client-fin");
    assertBuckets(spec, await shownRange(page), "month", today, "client, 2020");
    assert.deepEqual(present(spec), GAP_MONTHS_2020, "client months without records are null");
    assert.equal(spec.series[0].values[1], "800", "February 2020 revenue is the exact sum of the seeded 400 + 400");
    await shots(page, shot, "client-gaps");
  }
  // Wed 8 Jan to Wed 15 Apr 2020: 99 days, weekly buckets; both ends cut mid-week.
  const weeks = { from: "2020-01-08", to: "2020-04-15" };
  await page.goto(`${base}${clientPath}?range=custom&from=${weeks.from}&to=${weeks.to}`);
  await drawn(page, "client-fin");
  {
    const spec = await chartSpec(page, "client-fin");
    assertBuckets(spec, await shownRange(page), "week", today, "client, weeks");
    assert.equal(spec.partial[0], true, "the first week (from Wednesday) is partial");
    assert.equal(spec.partial.at(-1), true, "the last week (to Wednesday) is partial");
    assert.equal(spec.partial.filter(Boolean).length, 2, "only the cut weeks are partial");
    const want = spec.x.flatMap((t, i) => {
      const end = i + 1 < spec.x.length ? spec.x[i + 1] : spec.to;
      return GAP_DAYS_2020.some((d) => d >= t && d < end) ? [i] : [];
    });
    assert.deepEqual(present(spec), want, "weeks with records have values, the rest are null");
    await shots(page, shot, "client-weeks");
  }

  log("charts: the client's metric chart covers the same range; sparklines mark the current month");
  await page.goto(`${base}${clientPath}?range=this_month`);
  await drawn(page, "metric-0");
  {
    const fin = await chartSpec(page, "client-fin");
    const metric = await chartSpec(page, "metric-0");
    assert.deepEqual(metric.x, fin.x, "metric buckets are the range's days");
    assert.deepEqual(metric.partial, fin.partial);
    // Drawn by the metric's definition: a summed metric (a flow) as bars, any other as a line.
    const heading = await page.locator('figure[data-chart="metric-0"]').locator("xpath=ancestor::div[1]/h3").innerText();
    assert.equal(metric.bars, /\(total per /.test(heading), `bars exactly for a summed metric: ${heading}`);
  }
  await page.goto(`${base}/clients?range=last_12_months`);
  {
    const spark = page.locator("table[data-table=clients] tbody tr", { hasText: cfg.clientName }).locator("svg.spark");
    const flags = await spark.getAttribute("data-partial");
    // Last 12 months ends today and starts a year before tomorrow: the month it starts in is cut
    // (partial) unless that is the 1st, and the current month is partial.
    assert.match(flags, /^[01]?0{11}1$/, `only the edge months of the sparkline are partial: ${flags}`);
    const edges = (flags.match(/1/g) ?? []).length;
    // One dashed path holds every segment touching a partial month.
    assert.equal(await spark.locator("path.partial").count(), 1, "the segments into partial months are dashed");
    const hollow = await spark.locator("circle.partial").count();
    assert.ok(hollow >= 1 && hollow <= edges, `each partial month with a value has a hollow point: ${hollow} of ${edges}`);
    await shot(page, "charts-clients");
  }
}
