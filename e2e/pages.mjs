// Browser checks of the finished client flows and the error pages (issue #12 item 6):
// an EDITOR (here the ADMIN) adds, renames and deletes a client by hand; the delete asks for the
// name and says what goes; an unknown page is an HTML 404 inside the layout; the integrations
// page says which providers are not set up on this server. Screenshots `pages-*.png` at 1280 and
// 375 px. Called once from run.mjs with its signed-in page and helpers.
import assert from "node:assert/strict";

export async function pagesChecks({ page, base, log, shot, assertLabelled, assertNoHorizontalScroll }) {
  const name = "E2E Added Client";
  const renamed = "E2E Renamed Client";

  log("pages: an EDITOR adds a client on the clients page");
  await page.setViewportSize({ width: 1280, height: 900 });
  await page.goto(`${base}/clients`);
  await page.locator("[data-add-client] summary").click();
  await page.getByLabel("Name", { exact: true }).fill(name);
  await page.getByLabel("Client ID", { exact: true }).fill("E2E-ADD-1");
  await page.getByLabel("Industry (optional)").fill("Testing");
  await assertLabelled(page);
  await shot(page, "pages-clients");
  await Promise.all([page.waitForURL(/\/clients\/[0-9a-f-]+\?done=created/), page.getByRole("button", { name: "Add client" }).click()]);
  await page.getByRole("heading", { name, exact: true }).waitFor();
  await page.getByText("Client added.").waitFor();
  const clientUrl = new URL(page.url()).pathname;

  log("pages: the client is renamed on its page");
  await page.getByLabel("Client name", { exact: true }).fill(renamed);
  await Promise.all([page.waitForURL(/done=renamed/), page.getByRole("button", { name: "Rename" }).click()]);
  await page.getByRole("heading", { name: renamed, exact: true }).waitFor();
  await page.getByText("Client renamed.").waitFor();
  await assertLabelled(page);
  await shot(page, "pages-client");

  log("pages: deleting asks for the name and says what goes");
  await page.getByRole("link", { name: "Delete client…" }).click();
  await page.getByRole("heading", { name: "Delete client", exact: true }).waitFor();
  const counts = await page.locator("[data-delete-counts]").innerText();
  assert.match(counts, /0 days of financials/, counts);
  assert.match(counts, /0 lead events/, counts);
  await page.getByLabel(/Type the client's name/).fill("not the name");
  await page.getByRole("button", { name: "Delete client" }).click();
  await page.getByText("Nothing was deleted.").waitFor();
  await assertLabelled(page);
  await shot(page, "pages-delete");
  await page.getByLabel(/Type the client's name/).fill(renamed);
  await Promise.all([page.waitForURL(/\/clients\?done=deleted/), page.getByRole("button", { name: "Delete client" }).click()]);
  await page.getByText("Client deleted, with its financials").waitFor();
  assert.equal(await page.locator("table[data-table=clients] tbody tr", { hasText: renamed }).count(), 0, "the deleted client is gone from the list");
  const gone = await page.goto(`${base}${clientUrl}`);
  assert.equal(gone.status(), 404, "the deleted client's page is a 404");

  log("pages: an unknown page is an HTML 404 with the navigation");
  const resp = await page.goto(`${base}/no-such-page`);
  assert.equal(resp.status(), 404);
  assert.match(resp.headers()["content-type"], /text\/html/);
  await page.getByRole("heading", { name: "Page not found" }).waitFor();
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Clients", exact: true }).waitFor();
  await page.getByRole("button", { name: "Log out" }).waitFor();
  await shot(page, "pages-notfound");

  log("pages: providers that are not set up on this server say what to configure");
  await page.goto(`${base}/integrations`);
  const myob = page.locator('[data-provider="MYOB"]');
  assert.equal((await myob.locator(".status").innerText()).trim(), "Not set up");
  assert.match(await myob.locator("[data-not-set-up]").innerText(), /ZIXLY_ENCRYPTION_KEY|ZIXLY_MYOB_CLIENT_ID/);
  assert.equal(await myob.getByRole("button", { name: /Connect/ }).count(), 0, "no Connect button that would fail");
  await shot(page, "pages-integrations");

  log("pages: 375 px wide, nothing overflows sideways");
  await page.setViewportSize({ width: 375, height: 812 });
  for (const [path, shotName] of [["/clients", "pages-clients-375"], ["/no-such-page", "pages-notfound-375"], ["/integrations", "pages-integrations-375"]]) {
    await page.goto(`${base}${path}`);
    if (path === "/clients") await page.locator("[data-add-client] summary").click();
    await assertNoHorizontalScroll(page);
    await shot(page, shotName);
  }
  await page.goto(`${base}/clients`);
  const firstClient = await page.locator("table[data-table=clients] tbody tr a").first().getAttribute("href");
  await page.goto(`${base}${firstClient}`);
  await page.locator("[data-manage-client]").waitFor();
  await assertNoHorizontalScroll(page);
  await shot(page, "pages-client-375");
  await page.setViewportSize({ width: 1280, height: 900 });
}
