// Browser checks of the imports page (issue 12 item 5), called from run.mjs with the signed-in
// page: a 500,000-line file (about 30 MB) uploaded through the page, with exact copies reported
// as ignored; "Check file" offering "Load this file" for the very file checked; the stated upload
// limit, the templates and the import history. Screenshots imports-*.png at 1280 and 375 px.
import assert from "node:assert/strict";
import { mkdtempSync, openSync, writeSync, closeSync, statSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const HEADER = "client_id,client_name,record_date,revenue,expenses,cash_flow\n";

// 500,000 distinct rows (500 clients x 1,000 days) plus one exact copy of line 2, written in
// pieces so that the test does not hold 30 MB of strings either.
function writeBigFile(path, rows) {
  const fd = openSync(path, "w");
  writeSync(fd, HEADER);
  const day0 = Date.UTC(2021, 0, 1);
  let chunk = "";
  const first = [];
  for (let i = 0; i < rows; i++) {
    const client = i % 500;
    const day = new Date(day0 + Math.floor(i / 500) * 86400000).toISOString().slice(0, 10);
    const cents = (i % 9000) + 1000;
    const line = `BIG-${String(client).padStart(3, "0")},Big Client ${client},${day},${(cents / 10).toFixed(2)},${(cents / 40).toFixed(2)},${(cents / 20).toFixed(2)}\n`;
    if (i === 0) first.push(line);
    chunk += line;
    if (chunk.length > 1 << 20) { writeSync(fd, chunk); chunk = ""; }
  }
  chunk += first[0]; // the exact copy
  writeSync(fd, chunk);
  closeSync(fd);
  return statSync(path).size;
}

export async function importsChecks(page, { base, log, shot, assertLabelled, assertNoHorizontalScroll }) {
  log("imports: the page states its upload limit and offers a template per dataset");
  await page.goto(`${base}/imports`);
  await page.getByRole("heading", { name: "Imports" }).waitFor();
  assert.match(await page.locator("#file-limit").innerText(), /Files up to \d+ MiB/);
  for (const d of ["financials", "lead_events", "custom_metrics"]) {
    assert.equal(await page.locator(`a[data-template="${d}"]`).count(), 1, `a ${d} template link`);
  }
  const template = await page.evaluate(async (b) => (await fetch(`${b}/imports/template/financials`)).text(), base);
  assert.equal(template.trim().split("\n").length, 2, "header and one example row");

  log("imports: a clean check keeps the file and \"Load this file\" loads it");
  const small = HEADER + "E2E-CHK,Check Client,2025-02-01,10.00,4.00,6.00\nE2E-CHK,Check Client,2025-02-01,10.00,4.00,6.00\n";
  await page.getByLabel("Dataset", { exact: true }).selectOption("financials");
  await page.getByLabel("CSV file", { exact: true }).setInputFiles({ name: "checked.csv", mimeType: "text/csv", buffer: Buffer.from(small) });
  await page.getByRole("button", { name: "Check file" }).click();
  await page.getByRole("button", { name: "Load this file" }).waitFor();
  assert.match(await page.locator("[data-check-summary]").innerText(), /2 lines read: 1 valid, 0 with errors\. 1 duplicate row ignored/);
  await assertLabelled(page);
  await shot(page, "imports-check");
  await page.setViewportSize({ width: 375, height: 812 });
  await assertNoHorizontalScroll(page);
  await shot(page, "imports-check-375");
  await page.setViewportSize({ width: 1280, height: 900 });
  await page.getByRole("button", { name: "Load this file" }).click();
  await page.locator('[data-load-status="succeeded"]').waitFor();
  assert.equal(await page.locator('[data-count="inserted"]').innerText(), "1");

  log("imports: a 500,000-line file uploads through the page and loads, its copy ignored");
  const dir = mkdtempSync(join(tmpdir(), "zixly-e2e-"));
  const path = join(dir, "big.csv");
  try {
    const size = writeBigFile(path, 500_000);
    assert.ok(size > 25_000_000, `the file is ${size} bytes`);
    await page.getByLabel("Dataset", { exact: true }).selectOption("financials");
    await page.getByLabel("CSV file", { exact: true }).setInputFiles(path);
    const started = Date.now();
    // The click waits for the answer (upload, parse, COPY, upsert): give it the load's time.
    await page.getByRole("button", { name: "Load file" }).click({ timeout: 240_000 });
    await page.locator('[data-load-status="succeeded"]').waitFor({ timeout: 240_000 });
    log(`imports: 500,000 lines loaded in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    assert.equal(await page.locator('[data-count="inserted"]').innerText(), "500000");
    assert.equal(await page.locator('[data-count="duplicates"]').innerText(), "1");
    assert.match(await page.locator('[data-load-status="succeeded"]').innerText(), /Loaded 500000 lines: 500000 inserted.*1 duplicate row ignored\./s);
    assert.match(await page.locator("[data-check-summary]").innerText(), /500001 lines read: 500000 valid, 0 with errors\. 1 duplicate row ignored/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }

  log("imports: the history lists the big import with who and its counts");
  const first = page.locator("table[data-table=import-history] tbody tr").first();
  assert.match(await first.innerText(), /big\.csv/);
  assert.match(await first.innerText(), /500001/);
  await assertLabelled(page);
  await shot(page, "imports-big");
  await page.setViewportSize({ width: 375, height: 812 });
  await assertNoHorizontalScroll(page);
  await shot(page, "imports-big-375");
  await page.setViewportSize({ width: 1280, height: 900 });
}
