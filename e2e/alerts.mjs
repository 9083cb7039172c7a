// Alerts (issue 13, items 2, 3 and 5): an ADMIN loads a client's month through the Imports page,
// creates a threshold rule on it through the Alerts page (nothing fires: the month is below),
// loads a correction that crosses the threshold, and sees the rule fire on the Alerts page — the
// evaluation job runs in the browser test's worker after the import, as in `zixly worker`. Then
// snoozes and deletes the rule through the page. Screenshots at 1280 and 375 px.
import assert from "node:assert/strict";

function lastMonthStart() {
  const now = new Date();
  const d = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - 1, 1));
  return d.toISOString().slice(0, 10);
}

async function loadFile(page, base, csv) {
  await page.goto(`${base}/imports`);
  await page.getByLabel("Dataset", { exact: true }).selectOption("financials");
  await page.getByLabel("CSV file", { exact: true }).setInputFiles({ name: "alert-month.csv", mimeType: "text/csv", buffer: Buffer.from(csv) });
  await page.getByRole("button", { name: "Load file" }).click();
  await page.locator('[data-load-status="succeeded"]').waitFor();
}

async function alertsOf(page, base, ruleId) {
  const r = await page.request.get(`${base}/api/v1/alerts?rule_id=${ruleId}`);
  assert.equal(r.status(), 200);
  return (await r.json()).data;
}

export async function alertChecks(page, { base, shot, log, assertLabelled, assertNoHorizontalScroll }) {
  const month = lastMonthStart();
  const file = (revenue) => "client_id,client_name,record_date,revenue,expenses,cash_flow\n" +
    `E2E-ALERT,E2E Alert Studio,${month},${revenue},100.00,0\n`;

  log("alerts: a client's last month (800) loaded through the Imports page");
  await loadFile(page, base, file("800.00"));

  log("alerts: create a threshold rule through the Alerts page");
  await page.getByRole("link", { name: "Alerts", exact: true }).click();
  await page.getByRole("heading", { name: "Alerts", exact: true }).waitFor();
  await assertLabelled(page);
  await page.getByLabel("Name", { exact: true }).fill("E2E studio revenue over 1,000");
  // The form shows the fields the chosen kind reads, and only those.
  await page.getByLabel("Kind", { exact: true }).selectOption("stale");
  assert.equal(await page.getByLabel("Value", { exact: true }).isVisible(), false, "a stale rule has no value");
  assert.equal(await page.getByLabel("Days without new data", { exact: true }).isVisible(), true);
  await page.getByLabel("Kind", { exact: true }).selectOption("change");
  assert.equal(await page.getByLabel("Compared with", { exact: true }).isVisible(), true);
  assert.equal(await page.getByLabel("Days without new data", { exact: true }).isVisible(), false);
  await page.getByLabel("Kind", { exact: true }).selectOption("threshold");
  assert.equal(await page.getByLabel("Compared with", { exact: true }).isVisible(), false);
  await page.getByLabel("KPI", { exact: true }).selectOption("revenue");
  // "Some clients" shows the clients' checkboxes; another choice hides them again.
  const someClients = page.locator(".some-clients");
  assert.equal(await someClients.isVisible(), false, "no client boxes for all clients together");
  await page.getByLabel("Clients", { exact: true }).selectOption("some");
  assert.equal(await someClients.isVisible(), true, "client boxes for some clients");
  assert.equal(await someClients.getByRole("checkbox", { name: "E2E Alert Studio" }).isVisible(), true);
  await shot(page, "alerts-some-clients");
  await page.getByLabel("Clients", { exact: true }).selectOption({ label: "E2E Alert Studio" });
  assert.equal(await someClients.isVisible(), false);
  await page.getByLabel("Per", { exact: true }).selectOption("month");
  await page.getByLabel("Condition", { exact: true }).selectOption("above");
  await page.getByLabel("Value", { exact: true }).fill("1000");
  await page.getByRole("button", { name: "Create rule" }).click();
  await page.getByText("The rule was created").waitFor();
  const rule = page.locator("[data-rule]").filter({ hasText: "E2E studio revenue over 1,000" });
  await rule.waitFor();
  assert.match(await rule.innerText(), /Revenue per month of E2E Alert Studio above \$1,000/);
  const rules = await (await page.request.get(`${base}/api/v1/alert-rules`)).json();
  const made = rules.data.find((r) => r.name === "E2E studio revenue over 1,000");
  assert.ok(made, "the API lists the rule made on the page");
  assert.equal(made.kind, "threshold");
  assert.equal(made.value, "1000");
  // The creation asked for an evaluation: give the worker a moment, then nothing has fired.
  await page.waitForTimeout(1500);
  assert.deepEqual((await alertsOf(page, base, made.id)).filter((a) => a.state === "firing"), [], "800 is below 1,000");

  log("alerts: a correction to 1,250 loaded through the Imports page fires the rule");
  await loadFile(page, base, file("1250.00"));
  let firing = [];
  for (let i = 0; i < 50 && firing.length === 0; i++) {
    await page.waitForTimeout(200);
    firing = (await alertsOf(page, base, made.id)).filter((a) => a.state === "firing");
  }
  assert.equal(firing.length, 1, "exactly one firing alert after the import");
  assert.equal(firing[0].value, "1250");
  assert.equal(firing[0].bucket_start, month);
  await page.goto(`${base}/alerts`);
  const row = page.locator(`tr[data-alert="${firing[0].id}"]`);
  await row.waitFor();
  const text = await row.innerText();
  assert.match(text, /Firing/);
  assert.match(text, /E2E Alert Studio/);
  assert.match(text, /\$1,250\.00/);
  assert.match(text, /threshold \$1,000\.00/);
  assert.match(text, /Revenue \$1,250\.00 is above \$1,000\.00/, "the reason writes figures as the page does");
  assert.match(await page.locator("#alerts-title").locator("..").innerText(), /\d+ firing/);
  await assertNoHorizontalScroll(page);
  await shot(page, "alerts");
  const size = page.viewportSize();
  await page.setViewportSize({ width: 375, height: 812 });
  await page.goto(`${base}/alerts`);
  await row.waitFor();
  await assertNoHorizontalScroll(page);
  await shot(page, "alerts-375");
  await page.setViewportSize(size);

  log("alerts: the alert's own page shows its history");
  await page.goto(`${base}/alerts`);
  await row.getByRole("link", { name: "E2E studio revenue over 1,000" }).click();
  await page.getByRole("heading", { name: "History" }).waitFor();
  const history = page.locator("tr[data-transition]");
  assert.equal(await history.count(), 1, "one change of state: it fired");
  assert.match(await history.first().innerText(), /Firing[\s\S]*\$1,250\.00[\s\S]*Yes/);
  assert.match(await page.locator("main").innerText(), /Revenue \$1,250\.00 is above \$1,000\.00/);
  await assertNoHorizontalScroll(page);
  await shot(page, "alert-history");

  log("alerts: snooze, then delete the rule through the page");
  await page.goto(`${base}/alerts`);
  await rule.getByRole("button", { name: "Snooze" }).click();
  await page.getByText("The rule was snoozed").waitFor();
  assert.match(await rule.innerText(), /Snoozed until/);
  page.once("dialog", (d) => d.accept());
  await rule.getByRole("button", { name: "Delete E2E studio revenue over 1,000" }).click();
  await page.getByText("The rule was deleted").waitFor();
  assert.equal(await page.locator("[data-rule]").filter({ hasText: "E2E studio revenue over 1,000" }).count(), 0);
  assert.deepEqual(await alertsOf(page, base, made.id), [], "its alerts went with it");
}
