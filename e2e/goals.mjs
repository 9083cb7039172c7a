// Goals (issue 13, item 1): an ADMIN creates a goal through the Goals page, sees its progress
// (bar, status, past periods) there and on the overview, changes its target through the page,
// and archives it. Screenshots at 1280 and 375 px. Called from run.mjs with the signed-in page;
// the seed has daily financials for the last 800 days, so a revenue goal is paced by last year.
import assert from "node:assert/strict";

const STATUSES = ["On track", "At risk", "Off track", "Achieved", "Missed", "No data yet"];

export async function goalChecks(page, { base, shot, log, assertLabelled, assertNoHorizontalScroll }) {
  log("goals: create a monthly revenue goal through the page");
  await page.goto(`${base}/goals`);
  await page.getByRole("heading", { name: "Goals", exact: true }).waitFor();
  await assertLabelled(page);
  await page.getByLabel("Name (optional)").fill("E2E monthly revenue");
  await page.getByLabel("KPI", { exact: true }).selectOption("revenue");
  await page.getByLabel("Client", { exact: true }).selectOption("");
  await page.getByLabel("Period", { exact: true }).selectOption("month");
  await page.getByLabel("Kind", { exact: true }).selectOption("reach");
  await page.getByLabel("Target", { exact: true }).fill("100000000");
  await page.getByRole("button", { name: "Create goal" }).click();
  await page.getByText("The goal was created.").waitFor();
  const card = page.locator("section.goal").filter({ hasText: "E2E monthly revenue" });
  await card.waitFor();

  log("goals: progress, pacing and past periods are shown");
  const goals = await (await page.request.get(`${base}/api/v1/goals`)).json();
  const goal = goals.data.find((g) => g.name === "E2E monthly revenue");
  assert.ok(goal, "the API lists the goal made on the page");
  assert.equal(goal.current.pacing, "seasonal", "800 days of data: paced by last year's shape");
  assert.ok(goal.expected_to_date && goal.projected, `expected and projected: ${JSON.stringify(goal)}`);
  // A target of 100 million is far out of reach of the seed.
  assert.equal(goal.status, "off_track");
  assert.equal((await card.locator(".status[data-status]").innerText()).trim(), "Off track");
  await card.locator(".goal-bar .fill").waitFor();
  await card.locator(".goal-bar .expected").waitFor();
  assert.match(await card.locator(".goal-figures").innerText(), /So far \$[\d,]+.*Expected by today \$[\d,]+.*Target \$100,000,000.*Projected \$[\d,]+/s);
  assert.match(await card.innerText(), /Paced by last year's shape/);
  assert.equal(await card.locator(".history li").count(), 12, "a year of past months");

  log("goals: change the target to last month's revenue through the page");
  const hist = await (await page.request.get(`${base}/api/v1/goals/${goal.id}/history?periods=1`)).json();
  const lastMonth = Number(hist.periods[0].actual);
  assert.ok(lastMonth > 0, `last month had revenue: ${JSON.stringify(hist)}`);
  await card.getByText("Change or archive").click();
  await card.getByLabel("Target", { exact: true }).fill(String(Math.round(lastMonth)));
  await card.getByRole("button", { name: "Save" }).click();
  await page.getByText("The goal was saved.").waitFor();
  const changed = page.locator("section.goal").filter({ hasText: "E2E monthly revenue" });
  const status = (await changed.locator(".status[data-status]").innerText()).trim();
  assert.ok(STATUSES.includes(status), `a status a person can read: ${status}`);
  const history = await changed.locator(".history li").allInnerTexts();
  assert.ok(history.some((h) => h.includes("✓")) || history.some((h) => h.includes("✗")), `past months are judged: ${history}`);
  await shot(page, "goals");

  log("goals: the overview shows the tenant-wide goal's progress");
  await page.goto(`${base}/`);
  const compact = page.locator("section.goals-compact");
  await compact.waitFor();
  assert.match(await compact.innerText(), /E2E monthly revenue/);
  await compact.locator(".goal-bar .fill").waitFor();
  await shot(page, "overview-goals");

  log("goals: 375 px");
  const size = page.viewportSize();
  await page.setViewportSize({ width: 375, height: 812 });
  await page.goto(`${base}/goals`);
  await page.locator("section.goal .goal-bar").first().waitFor();
  await assertNoHorizontalScroll(page);
  await shot(page, "goals-375");
  await page.setViewportSize(size);

  log("goals: archive it");
  await page.goto(`${base}/goals`);
  const again = page.locator("section.goal").filter({ hasText: "E2E monthly revenue" });
  await again.getByText("Change or archive").click();
  await again.getByRole("button", { name: "Archive E2E monthly revenue" }).click();
  await page.getByText("The goal was archived.").waitFor();
  assert.equal(await page.locator("section.goal").filter({ hasText: "E2E monthly revenue" }).count(), 0);
  // Back where the caller's next step starts.
  await page.goto(`${base}/`);
}
