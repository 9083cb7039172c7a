// Browser checks of the account page (`/account`) and the team page's reset links and invitation
// revocation. Called by run.mjs with the signed-in ADMIN's page; leaves it signed in with the
// same password.
import assert from "node:assert/strict";

export async function accountChecks({ page, base, cfg, log, shot, assertLabelled, assertNoHorizontalScroll }) {
  log("team: ADMIN issues a password-reset link for a user (no mail server: shown once)");
  await page.goto(`${base}/team`);
  const viewerRow = page.locator("table[data-table=users] tbody tr").filter({ hasText: cfg.viewer.email });
  await viewerRow.getByRole("button", { name: `Password-reset link for ${cfg.viewer.email}` }).click();
  const reset = page.locator("[data-reset-link]");
  await reset.waitFor();
  assert.match(await reset.innerText(), /\/reset-password#token=zxr_/, "a reset link is shown");
  await shot(page, "team-reset-link");

  log("team: ADMIN revokes a pending invitation");
  await page.goto(`${base}/team`);
  await page.getByLabel("Email to invite").fill("revoke.me@example.com");
  await page.getByRole("button", { name: "Send invitation" }).click();
  await page.locator("[data-invitation-link]").waitFor();
  page.once("dialog", (d) => d.accept());
  await page.getByRole("button", { name: "Revoke the invitation of revoke.me@example.com" }).click();
  await page.getByText("The invitation was revoked.").waitFor();
  assert.equal(await page.getByText("revoke.me@example.com").count(), 0, "the revoked invitation is gone");

  log("account: the top bar's email leads to the account page");
  await page.locator(".who a.email").click();
  await page.getByRole("heading", { name: "Your account" }).waitFor();
  await assertLabelled(page);

  log("account: create a personal API token, see it once, use it, revoke it");
  await page.getByLabel("What the token is for").fill("e2e export");
  await page.getByLabel("Valid for").selectOption("30");
  await page.getByRole("button", { name: "Create token" }).click();
  const shown = page.locator("[data-new-token]");
  await shown.waitFor();
  const token = (await shown.innerText()).trim();
  assert.match(token, /^zxp_/, `a personal token is shown: ${token}`);
  const me = await page.request.get(`${base}/api/v1/me`, { headers: { authorization: `Bearer ${token}` }, failOnStatusCode: false });
  assert.equal(me.status(), 200, "the token works");
  await shot(page, "account");
  await page.goto(`${base}/account`);
  assert.equal(await page.locator("[data-new-token]").count(), 0, "the token is not shown again");
  page.once("dialog", (d) => d.accept());
  await page.getByRole("button", { name: "Revoke e2e export" }).click();
  await page.getByText("The token was revoked").waitFor();
  const after = await page.request.get(`${base}/api/v1/me`, { headers: { authorization: `Bearer ${token}` }, failOnStatusCode: false });
  assert.equal(after.status(), 401, "a revoked token no longer works");

  log("account: change the password (and back): this session stays signed in");
  const change = async (from, to) => {
    await page.getByLabel("Current password").fill(from);
    await page.getByLabel("New password", { exact: true }).fill(to);
    await page.getByLabel("New password again").fill(to);
    await page.getByRole("button", { name: "Change password" }).click();
    await page.getByText("Your password was changed.").waitFor();
  };
  await page.getByLabel("Current password").fill("not the password");
  await page.getByLabel("New password", { exact: true }).fill("another long password");
  await page.getByLabel("New password again").fill("another long password");
  await page.getByRole("button", { name: "Change password" }).click();
  await page.getByText("Current password: does not match.").waitFor();
  await change(cfg.admin.password, "a temporary password 7");
  await change("a temporary password 7", cfg.admin.password);

  log("metric catalogue: custom metrics editable by an ADMIN, built-in KPIs listed");
  await page.goto(`${base}/catalogue`);
  await page.getByRole("heading", { name: "Metric catalogue" }).waitFor();
  assert.ok((await page.locator("table[data-table=builtin-kpis] tbody tr").count()) >= 6, "the built-in KPIs are listed");
  await assertLabelled(page);
  await shot(page, "catalogue");

  log("custom metrics across clients: the report page charts one metric over every client");
  await page.goto(`${base}/reports`);
  await page.getByRole("link", { name: "custom metrics across clients" }).click();
  await page.getByRole("heading", { name: "Custom metrics across clients" }).waitFor();
  await page.locator('figure[data-chart="metric-report"] canvas').waitFor();
  const spec = JSON.parse(await page.locator("script#metric-report").textContent());
  assert.equal(spec.series[0].values.length, spec.x.length, "one value (or gap) per bucket");
  assert.ok((await page.locator("table[data-table=metric-report] tbody tr").count()) >= 1, "the values are listed");
  await assertLabelled(page);
  await shot(page, "metric-report");

  log("account at 375 px");
  await page.setViewportSize({ width: 375, height: 812 });
  await page.goto(`${base}/account`);
  await assertNoHorizontalScroll(page);
  await shot(page, "account-375");

  log("phone: the navigation folds into a menu that opens and leads on");
  const menu = page.getByRole("button", { name: "Menu" });
  await menu.waitFor();
  assert.equal(await page.getByRole("link", { name: "Clients", exact: true }).isVisible(), false, "links are folded away");
  await menu.click();
  assert.equal(await menu.getAttribute("aria-expanded"), "true");
  await page.getByRole("link", { name: "Your account" }).waitFor();
  await shot(page, "menu-open-375");
  await page.getByRole("link", { name: "Clients", exact: true }).click();
  await page.getByRole("heading", { name: "Clients" }).waitFor();
  await page.setViewportSize({ width: 1280, height: 900 });
}
