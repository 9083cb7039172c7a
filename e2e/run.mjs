// Browser tests of Zixly's pages in Debian's headless Chromium, driven by playwright-core.
//
// Started by the Rust test `browser::pages_work_in_headless_chromium` (crates/zixly_web/tests/it),
// which spawns the application on a fresh database, seeds two tenants and passes everything here
// through the environment:
//   ZIXLY_E2E = JSON {base, admin:{email,password}, viewer:{email,password}, otherTenantClientId,
//                     clientName, screenshots, shortBase, shortSessionSeconds}
// `shortBase` is a second server on the same database whose sessions expire after
// `shortSessionSeconds`.
// Exits non-zero on the first failed check, printing what failed. Screenshots of the main pages go
// to `screenshots` (target/screenshots/), desktop (1280 px) and phone (375 px) widths.
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";
import assert from "node:assert/strict";
import { accountChecks } from "./account.mjs";
import { pagesChecks } from "./pages.mjs";
import { chartChecks } from "./charts.mjs";
import { rangeChecks } from "./ranges.mjs";
import { importsChecks } from "./imports.mjs";
import { notifyChecks } from "./notify.mjs";
import { goalChecks } from "./goals.mjs";
import { alertChecks } from "./alerts.mjs";

const cfg = JSON.parse(process.env.ZIXLY_E2E ?? "{}");
const base = cfg.base;
assert.ok(base, "ZIXLY_E2E.base is required");
mkdirSync(cfg.screenshots, { recursive: true });

const executablePath = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const browser = await chromium.launch({
  executablePath,
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage",
  ],
});

let step = "start";
let current = null; // the page in use, for a screenshot and its text when a check fails
const log = (s) => { step = s; console.log(`• ${s}`); };

async function shot(page, name) {
  await page.screenshot({ path: `${cfg.screenshots}/${name}.png`, fullPage: true });
}

async function login(page, who, at = base) {
  await page.goto(`${at}/login`);
  await page.getByLabel("Email").fill(who.email);
  await page.getByLabel("Password").fill(who.password);
  await Promise.all([page.waitForURL((u) => !u.pathname.startsWith("/login")), page.getByRole("button", { name: "Log in" }).click()]);
}

// Every visible form control has an accessible name (label, aria-label or aria-labelledby).
async function assertLabelled(page) {
  const unlabelled = await page.evaluate(() =>
    [...document.querySelectorAll("input, select, textarea")]
      .filter((el) => el.type !== "hidden" && el.offsetParent !== null)
      .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute("aria-label") && !el.getAttribute("aria-labelledby"))
      .map((el) => el.outerHTML));
  assert.deepEqual(unlabelled, [], `unlabelled controls on ${page.url()}`);
}

// Nothing sticks out sideways at the current viewport width.
async function assertNoHorizontalScroll(page) {
  const { sw, cw, culprit } = await page.evaluate(() => {
    const cw = document.documentElement.clientWidth;
    const clipped = (el) => {
      for (let a = el.parentElement; a && a !== document.body; a = a.parentElement) {
        if (["auto", "scroll", "hidden"].includes(getComputedStyle(a).overflowX)) return true;
      }
      return false;
    };
    const wide = [...document.querySelectorAll("body *")].filter((el) => el.getBoundingClientRect().right > cw + 1 && !clipped(el));
    const culprit = wide.length ? wide[wide.length - 1].outerHTML.slice(0, 200) : "";
    return { sw: document.documentElement.scrollWidth, cw, culprit };
  });
  assert.ok(sw <= cw + 1, `page ${page.url()} is ${sw}px wide in a ${cw}px viewport; e.g. ${culprit}`);
}

// Forms that post something other than logout (edit and admin controls).
async function editForms(page) {
  return page.evaluate(() =>
    [...document.querySelectorAll("form")]
      .filter((f) => (f.method || "get").toLowerCase() === "post" && !f.action.endsWith("/logout"))
      .map((f) => f.action));
}

try {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await ctx.newPage();
  current = page;
  page.on("pageerror", (e) => { throw new Error(`JavaScript error on ${page.url()}: ${e.message}`); });

  log("login page renders and refuses a wrong password");
  await page.goto(`${base}/login`);
  await assertLabelled(page);
  await shot(page, "login");
  await page.getByLabel("Email").fill(cfg.admin.email);
  await page.getByLabel("Password").fill("not-the-password");
  await page.getByRole("button", { name: "Log in" }).click();
  await page.getByText("Email or password is wrong").waitFor();

  log("ADMIN logs in through the form");
  await login(page, cfg.admin);
  assert.equal(new URL(page.url()).pathname, "/");
  await page.getByRole("heading", { name: "Overview" }).waitFor();
  const cookies = await ctx.cookies();
  const session = cookies.find((c) => c.name === "zixly_session");
  assert.ok(session && session.httpOnly, "an HttpOnly session cookie is set");

  log("overview chart is drawn with data points and shows exact values on hover");
  const chart = page.locator('figure[data-chart="overview-chart"]');
  await chart.locator("canvas").waitFor();
  const points = Number(await chart.getAttribute("data-points"));
  assert.ok(points >= 6, `the overview chart has ${points} points`);
  const drawn = await chart.evaluate((el) => el._uplot && el._uplot.data[1].filter((v) => v !== null && v !== 0).length);
  assert.ok(drawn >= 6, `the revenue series has ${drawn} non-zero points`);
  const box = await chart.locator(".u-over").boundingBox();
  await page.mouse.move(box.x + box.width * 0.5, box.y + box.height * 0.5);
  const tip = chart.locator(".tip");
  await tip.waitFor({ state: "visible" });
  const tipText = await tip.innerText();
  assert.match(tipText, /Revenue\s*\$[\d,]+\.\d{2}/, `tooltip shows an exact revenue: ${tipText}`);
  for (const kpi of ["revenue", "expenses", "net-profit", "margin", "cash-flow", "pipeline", "win-rate"]) {
    const text = await page.locator(`[data-kpi="${kpi}"]`).innerText();
    assert.match(text, /vs previous period/, `KPI ${kpi} has a change vs previous period`);
    assert.match(text, /vs last year/, `KPI ${kpi} has a change vs last year`);
  }
  assert.match(await page.locator('[data-kpi="revenue"] .value').innerText(), /^\$[\d,]+$/);
  await page.locator('[data-list="best"] li').first().waitFor();
  await assertLabelled(page);
  await shot(page, "overview");

  await rangeChecks(page, { base, shot, log });
  await goalChecks(page, { base, shot, log, assertLabelled, assertNoHorizontalScroll });

  log("date-range presets change the period");
  await page.getByRole("link", { name: "Last month" }).click();
  await page.waitForURL(/range=last_month/);
  await page.locator('figure[data-chart="overview-chart"] canvas').waitFor();
  await page.goto(`${base}/`);

  log("clients: search, sort, sparklines, open one");
  await page.getByRole("link", { name: "Clients", exact: true }).click();
  await page.getByRole("heading", { name: "Clients" }).waitFor();
  assert.ok((await page.locator("table[data-table=clients] svg.spark").count()) >= 2, "sparklines are drawn");
  await page.getByLabel("Search clients").fill(cfg.clientName.slice(0, 5));
  await page.getByRole("button", { name: "Search" }).click();
  await page.waitForURL(/q=/);
  assert.equal(await page.locator("table[data-table=clients] tbody tr").count(), 1, "search narrows the list to one client");
  await page.goto(`${base}/clients?sort=profit&dir=desc`);
  await shot(page, "clients");
  await page.locator("table[data-table=clients] tbody tr a").filter({ hasText: cfg.clientName }).click();
  await page.getByRole("heading", { name: cfg.clientName }).waitFor();
  await page.locator('figure[data-chart="client-fin"] canvas').waitFor();
  assert.ok((await page.locator(".funnel li").count()) >= 2, "the funnel has stages");
  await page.locator('figure[data-chart="metric-0"] canvas').waitFor();
  await page.getByRole("link", { name: "week", exact: true }).click();
  await page.waitForURL(/bucket=week/);
  await page.locator('figure[data-chart="metric-0"] canvas').waitFor();
  assert.ok((await page.locator("#events-title + * tbody tr, #events-title ~ .table-wrap tbody tr").count()) >= 1, "recent lead events are listed");
  await assertLabelled(page);
  await shot(page, "client");

  log("reports: profitability table and CSV download");
  await page.getByRole("link", { name: "Reports", exact: true }).click();
  await page.getByRole("heading", { name: "Reports" }).waitFor();
  assert.ok((await page.locator("table[data-table=profitability] tbody tr").count()) >= 2);
  const [download] = await Promise.all([page.waitForEvent("download"), page.getByRole("link", { name: "Download CSV" }).click()]);
  const csvPath = await download.path();
  const { readFileSync } = await import("node:fs");
  const csv = readFileSync(csvPath, "utf8");
  assert.match(csv.split("\n")[0], /client_id,client_name,revenue,expenses,net_profit,margin/);
  await shot(page, "reports");

  log("imports: a CSV with a bad line shows that line's error");
  await page.getByRole("link", { name: "Imports", exact: true }).click();
  await page.getByRole("heading", { name: "Imports" }).waitFor();
  const csvText = "client_id,client_name,record_date,revenue,expenses,cash_flow\n" +
    "E2E-1,E2E Client,2025-01-01,100.00,40.00,60.00\n" +
    "E2E-1,E2E Client,2025-01-02,12.345,1.00,1.00\n" +
    "E2E-1,E2E Client,2025-01-03,90.00,10.00,80.00\n";
  await page.getByLabel("Dataset", { exact: true }).selectOption("financials");
  await page.getByLabel("CSV file", { exact: true }).setInputFiles({ name: "bad.csv", mimeType: "text/csv", buffer: Buffer.from(csvText) });
  await page.getByRole("button", { name: "Check file" }).click();
  const bad = page.locator('tr[data-line="3"]');
  await bad.waitFor();
  assert.match(await bad.innerText(), /revenue/i, "line 3's error names the revenue column");
  assert.match(await page.locator('tr[data-line="2"]').innerText(), /OK|valid/i);
  await assertLabelled(page);
  await shot(page, "imports");

  log("imports: loading a file with a bad line loads nothing and shows the error");
  await page.getByLabel("Dataset", { exact: true }).selectOption("financials");
  await page.getByLabel("CSV file", { exact: true }).setInputFiles({ name: "bad.csv", mimeType: "text/csv", buffer: Buffer.from(csvText) });
  await page.getByRole("button", { name: "Load file" }).click();
  await page.getByText("Nothing was loaded").waitFor();
  assert.match(await page.locator('tr[data-line="3"]').innerText(), /revenue/i);
  assert.equal(await page.locator("[data-load-status]").count(), 0, "no load was attempted");

  log("imports: a good file loads, with inserted / updated / unchanged counts");
  const goodCsv = csvText.replace("12.345", "12.34");
  const loadGood = async () => {
    await page.getByLabel("Dataset", { exact: true }).selectOption("financials");
    await page.getByLabel("CSV file", { exact: true }).setInputFiles({ name: "good.csv", mimeType: "text/csv", buffer: Buffer.from(goodCsv) });
    await page.getByRole("button", { name: "Load file" }).click();
    await page.locator('[data-load-status="succeeded"]').waitFor();
  };
  await loadGood();
  const count = async (k) => Number(await page.locator(`[data-count="${k}"]`).innerText());
  assert.deepEqual([await count("inserted"), await count("updated"), await count("unchanged")], [3, 0, 0]);
  assert.match(await page.locator('tr[data-line="3"]').innerText(), /OK|valid/i, "the line-by-line result is shown after loading too");
  await assertLabelled(page);
  await shot(page, "imports-loaded");
  await loadGood();
  assert.deepEqual([await count("inserted"), await count("updated"), await count("unchanged")], [0, 0, 3], "loading the same file again changes nothing");
  await importsChecks(page, { base, log, shot, assertLabelled, assertNoHorizontalScroll });

  log("team: ADMIN invites a user");
  await page.getByRole("link", { name: "Team", exact: true }).click();
  await page.getByRole("heading", { name: "Team" }).waitFor();
  await page.getByLabel("Email to invite").fill("new.person@example.com");
  await page.getByLabel("Role", { exact: true }).selectOption("EDITOR");
  await page.getByRole("button", { name: "Send invitation" }).click();
  await page.getByText("new.person@example.com").first().waitFor();
  await page.locator('[data-invitation-link]').waitFor();
  await assertLabelled(page);
  await shot(page, "team");

  log("the invitation link: choose a password and land signed in");
  const link = (await page.locator("[data-invitation-link]").innerText()).trim();
  const ictx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const ipage = await ictx.newPage();
  current = ipage;
  await ipage.goto(link);
  await ipage.getByRole("heading", { name: "Join your team" }).waitFor();
  await assertLabelled(ipage);
  await ipage.getByLabel("Your name").fill("Nina Newcomer");
  await ipage.getByLabel("New password").fill("a brand new password 42");
  await shot(ipage, "accept-invitation");
  await Promise.all([ipage.waitForURL((u) => u.pathname === "/"), ipage.getByRole("button", { name: "Join your team" }).click()]);
  await ipage.getByRole("heading", { name: "Overview" }).waitFor();
  assert.match(await ipage.locator("body").innerText(), /new\.person@example\.com/, "the top bar shows the new user");
  assert.equal(await ipage.getByRole("link", { name: "Imports", exact: true }).count(), 1, "an EDITOR sees Imports");
  current = page;

  log("team: ADMIN changes the new user's role, then deactivates them (signed out at once)");
  await page.goto(`${base}/team`);
  const row = () => page.locator("table[data-table=users] tbody tr").filter({ hasText: "new.person@example.com" });
  await row().getByLabel("Role of new.person@example.com").selectOption("VIEWER");
  await Promise.all([page.waitForLoadState("load"), row().getByRole("button", { name: "Change" }).click()]);
  await page.getByRole("heading", { name: "Team" }).waitFor();
  assert.equal(await row().getByLabel("Role of new.person@example.com").inputValue(), "VIEWER");
  await ipage.goto(`${base}/`);
  assert.equal(await ipage.getByRole("link", { name: "Imports", exact: true }).count(), 0, "as a VIEWER now, no Imports link");
  page.once("dialog", (d) => d.accept());
  await row().getByRole("button", { name: "Deactivate" }).click();
  await row().getByText("Deactivated").waitFor();
  await row().getByRole("button", { name: "Reactivate" }).waitFor();
  await shot(page, "team-changed");
  await ipage.goto(`${base}/clients`);
  assert.ok(new URL(ipage.url()).pathname.startsWith("/login"), `the deactivated user is signed out (at ${ipage.url()})`);
  await ictx.close();

  await accountChecks({ page, base, cfg, log, shot, assertLabelled, assertNoHorizontalScroll });

  log("integrations and audit pages render for ADMIN");
  await page.getByRole("link", { name: "Integrations", exact: true }).click();
  await page.getByRole("heading", { name: "Integrations" }).waitFor();
  // The seeded states are explained in words: progress of the unfinished first sync, and when
  // and why the paused one resumes.
  const progress = await page.locator("[data-sync-progress]").innerText();
  assert.match(progress, /Sync in progress/, progress);
  assert.match(progress, /12,000|12000/, `items read are shown: ${progress}`);
  assert.match(progress, /200,000|200000/, `the known total is shown: ${progress}`);
  const paused = await page.locator("[data-sync-paused]").innerText();
  assert.match(paused, /^Paused until \d{1,2} \w{3} \d{4} \d{2}:\d{2}/, paused);
  assert.match(paused, /daily request budget is spent/, paused);
  assert.equal((await page.locator('[data-provider="HUBSPOT"] .status').innerText()).trim(), "Paused", "the paused connection's badge");
  assert.equal((await page.locator('[data-provider="XERO"] .status').innerText()).trim(), "Connected");
  await page.locator('[data-provider="HUBSPOT"]').getByRole("button", { name: "Sync now" }).waitFor();
  await shot(page, "integrations");
  await page.getByRole("link", { name: "Audit log", exact: true }).click();
  await page.getByRole("heading", { name: "Audit log" }).waitFor();
  await page.getByText("user.invite").first().waitFor();
  await shot(page, "audit");

  log("another tenant's client page is a 404 page");
  const resp = await page.goto(`${base}/clients/${cfg.otherTenantClientId}`);
  assert.equal(resp.status(), 404);
  await page.getByRole("heading", { name: "Page not found" }).waitFor();
  await shot(page, "not-found");
  await pagesChecks({ page, base, log, shot, assertLabelled, assertNoHorizontalScroll });

  await chartChecks({ page, base, cfg, log, shot });
  await notifyChecks({ page, base, log, shot, assertLabelled, assertNoHorizontalScroll });
  await alertChecks(page, { base, shot, log, assertLabelled, assertNoHorizontalScroll });

  log("one number, one rounding: a margin reads the same on the clients list, the reports page and in the CSV");
  {
    const iso = (daysAgo) => new Date(Date.now() - daysAgo * 86400000).toISOString().slice(0, 10);
    const [from, to] = [iso(200), iso(20)];
    const range = `range=custom&from=${from}&to=${to}`;
    const name = cfg.clientName;
    await page.goto(`${base}/clients?${range}`);
    const onList = (await page.locator('table[data-table="clients"] tbody tr', { hasText: name }).locator("td").nth(5).innerText()).trim();
    await page.goto(`${base}/reports?${range}`);
    const onReport = (await page.locator('table[data-table="profitability"] tbody tr', { hasText: name }).locator("td").nth(4).innerText()).trim();
    const csv = await (await page.request.get(`${base}/api/v1/reports/profitability?from=${from}&to=${to}&format=csv`)).text();
    const header = csv.split("\r\n")[0].split(",");
    const line = csv.split("\r\n").find((l) => l.split(",")[1] === name);
    assert.ok(line, `the CSV has a line for ${name}:\n${csv.slice(0, 500)}`);
    const fraction = line.split(",")[header.indexOf("margin")];
    assert.match(fraction, /^-?\d\.\d{3}$/, `the CSV margin is a fraction with three places: ${fraction}`);
    const thousandths = Math.round(Number(fraction) * 1000);
    const fromCsv = `${thousandths < 0 ? "−" : ""}${(Math.abs(thousandths) / 10).toFixed(1)}%`;
    assert.match(onList, /^−?\d+\.\d%$/, `the clients list shows a margin: ${onList}`);
    assert.equal(onReport, onList, "reports page and clients list agree");
    assert.equal(fromCsv, onList, `the CSV (${fraction}) and the pages agree`);
  }

  log("data retention: an ADMIN keeps 3 months of daily data; a year's overview says where months begin");
  {
    await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Data", exact: true }).click();
    await page.getByRole("heading", { name: "Data retention" }).waitFor();
    await page.locator("[data-retention=off]").waitFor();
    const months = page.getByLabel("Months of daily data to keep");
    await months.fill("3");
    await page.getByRole("button", { name: "Save" }).click();
    await page.getByText("The retention period was saved.").waitFor();
    assert.match(await page.locator("[data-retention=on]").innerText(), /kept for 3 months before the current month/);
    await assertLabelled(page);
    await shot(page, "data-retention");
    await page.goto(`${base}/?range=last_12_months`);
    const notice = page.locator("[data-retention-notice]");
    assert.match(await notice.innerText(), /^Figures before \d{1,2} \w{3} \d{4} are monthly totals/);
    await page.locator('figure[data-chart="overview-chart"] canvas').waitFor();
    await shot(page, "overview-retention");
    // Weekly bars across the cutoff: the weeks before it are blank, not a spike on each month's 1st.
    const iso = (daysAgo) => new Date(Date.now() - daysAgo * 86400000).toISOString().slice(0, 10);
    await page.goto(`${base}/?range=custom&from=${iso(150)}&to=${iso(0)}`);
    await page.locator('figure[data-chart="overview-chart"] canvas').waitFor();
    await shot(page, "overview-retention-weeks");
    // Back to keeping everything (nothing was deleted: the worker's run never came).
    await page.goto(`${base}/settings/data`);
    await months.fill("");
    await page.getByRole("button", { name: "Save" }).click();
    await page.locator("[data-retention=off]").waitFor();
    await page.setViewportSize({ width: 375, height: 812 });
    await assertNoHorizontalScroll(page);
    await shot(page, "data-retention-375");
    await page.setViewportSize({ width: 1280, height: 900 });
  }

  log("375 px wide: usable, nothing overflows sideways");
  await page.setViewportSize({ width: 375, height: 812 });
  for (const path of ["/", "/clients", "/reports", "/team", "/integrations"]) {
    await page.goto(`${base}${path}`);
    await assertNoHorizontalScroll(page);
  }
  await page.goto(`${base}/reports`);
  await page.locator("table[data-table=profitability]").waitFor();
  await shot(page, "reports-375");
  await page.goto(`${base}/integrations`);
  await page.locator("[data-sync-paused]").waitFor();
  await shot(page, "integrations-375");
  await page.goto(`${base}/`);
  await page.locator('figure[data-chart="overview-chart"] canvas').waitFor();
  await shot(page, "overview-375");
  const firstClient = await page.locator('[data-list="best"] a').first().getAttribute("href");
  await page.goto(`${base}${firstClient}`);
  await page.locator('figure[data-chart="client-fin"] canvas').waitFor();
  await assertNoHorizontalScroll(page);
  await shot(page, "client-375");

  log("keyboard: the skip link comes first and reaches the content");
  await page.setViewportSize({ width: 1280, height: 900 });
  await page.goto(`${base}/`);
  await page.keyboard.press("Tab");
  assert.equal(await page.evaluate(() => document.activeElement.textContent), "Skip to content");

  log("logout ends the session");
  await page.getByRole("button", { name: "Log out" }).click();
  await page.waitForURL(/\/login/);
  await page.goto(`${base}/clients`);
  assert.ok(new URL(page.url()).pathname.startsWith("/login"), "after logout, pages redirect to the login form");

  log("an expired session sends the browser back to the login form");
  const sctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const spage = await sctx.newPage();
  current = spage;
  await login(spage, cfg.admin, cfg.shortBase);
  await spage.getByRole("heading", { name: "Overview" }).waitFor();
  // Keep sending the cookie after its Max-Age, so that the server's own expiry is what is tested.
  const short = (await sctx.cookies()).find((c) => c.name === "zixly_session");
  assert.ok(short, "the short-lived session has a cookie");
  await sctx.addCookies([{ ...short, expires: -1 }]);
  await spage.waitForTimeout(cfg.shortSessionSeconds * 1000 + 1500);
  await spage.goto(`${cfg.shortBase}/clients`);
  assert.ok(new URL(spage.url()).pathname.startsWith("/login"), `after expiry, /clients redirects to the login form (at ${spage.url()})`);
  await spage.getByRole("button", { name: "Log in" }).waitFor();
  await sctx.close();

  log("VIEWER sees no edit or admin controls, and the server refuses them");
  const vctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const vpage = await vctx.newPage();
  current = vpage;
  await login(vpage, cfg.viewer);
  await vpage.getByRole("heading", { name: "Overview" }).waitFor();
  for (const name of ["Imports", "Team", "Audit log"]) {
    assert.equal(await vpage.getByRole("link", { name, exact: true }).count(), 0, `VIEWER sees no ${name} link`);
  }
  for (const path of [firstClient, "/", "/clients", "/reports", "/integrations"]) {
    await vpage.goto(`${base}${path}`);
    assert.deepEqual(await editForms(vpage), [], `VIEWER sees no edit forms on ${path}`);
  }
  await vpage.getByRole("heading", { name: "Integrations" }).waitFor();
  await shot(vpage, "integrations-viewer");
  for (const path of ["/team", "/audit", "/imports"]) {
    const r = await vpage.goto(`${base}${path}`);
    assert.equal(r.status(), 403, `VIEWER gets 403 on ${path}`);
  }
  // Posting the invite form anyway (with the VIEWER's own valid CSRF token) is refused.
  await vpage.goto(`${base}/`);
  const refused = await vpage.evaluate(async (b) => {
    const form = document.querySelector('form[action="/logout"]');
    const csrf = form.querySelector('input[name="_csrf"]').value;
    const r = await fetch(`${b}/team/invite`, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: `_csrf=${csrf}&email=x%40example.com&role=ADMIN` });
    return r.status;
  }, base);
  assert.equal(refused, 403, "the server refuses a VIEWER's invitation");

  log("a form without the CSRF token is refused");
  const noCsrf = await vpage.evaluate(async (b) => (await fetch(`${b}/logout`, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: "x=1" })).status, base);
  assert.equal(noCsrf, 403);
  await vctx.close();
  await ctx.close();
  console.log("all browser checks passed");
} catch (e) {
  console.error(`FAILED at step "${step}":\n${e.stack ?? e}`);
  if (current) {
    await current.screenshot({ path: `${cfg.screenshots}/FAILED.png`, fullPage: true }).catch(() => {});
    console.error(`page ${current.url()} (screenshot FAILED.png):\n${(await current.innerText("body").catch(() => "")).slice(0, 2000)}`);
  }
  process.exitCode = 1;
} finally {
  await browser.close();
}
