// Browser checks of the notification centre (`/notifications`, the top bar's unread count) and
// the ADMIN's channels page (`/settings/notifications`). Called by run.mjs with the signed-in
// ADMIN's page, who has two unread notifications from the seed; leaves the page at 1280 px.
import assert from "node:assert/strict";

const unread = (page) => page.locator(".who .notif-count");

export async function notifyChecks({ page, base, log, shot, assertLabelled, assertNoHorizontalScroll }) {
  log("notifications: the top bar counts the unread ones and leads to the centre");
  await page.goto(`${base}/`);
  assert.equal(await unread(page).innerText(), "2", "two unread in the top bar");
  await page.getByRole("link", { name: "Notifications, 2 unread" }).click();
  await page.getByRole("heading", { name: "Notifications" }).waitFor();
  await page.getByText("2 unread.").waitFor();
  const items = page.locator("[data-list=notifications] li");
  assert.equal(await items.count(), 2);
  assert.match(await items.first().innerText(), /Revenue too low/, "newest first");
  await assertLabelled(page);
  await shot(page, "notifications");

  log("notifications: mark one read, then all");
  await items.first().getByRole("button", { name: "Mark read" }).click();
  await page.getByText("1 unread.").waitFor();
  assert.equal(await unread(page).innerText(), "1");
  await page.getByRole("button", { name: "Mark all read" }).click();
  await page.getByText("All notifications are marked read.").waitFor();
  assert.equal(await unread(page).count(), 0, "no count once all are read");
  assert.equal(await page.locator("[data-list=notifications] li.unread").count(), 0);

  log("channels: an ADMIN adds an e-mail channel and a webhook (its secret shown once)");
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Channels", exact: true }).click();
  await page.getByRole("heading", { name: "Notification channels" }).waitFor();
  await page.getByLabel("Kind").selectOption("email");
  await page.getByLabel("Name").fill("Ops mail");
  await page.getByLabel("URL (webhook, Slack) or e-mail address").fill("ops@acme.test");
  await page.getByRole("button", { name: "Add channel" }).click();
  await page.getByText("The channel was added.").waitFor();
  await page.getByLabel("Kind").selectOption("webhook");
  await page.getByLabel("Name").fill("Ops hook");
  await page.getByLabel("URL (webhook, Slack) or e-mail address").fill("http://127.0.0.1:9/hook");
  await page.getByRole("button", { name: "Add channel" }).click();
  await page.getByText("Receiver: the URL must use https.").waitFor();
  // This server has no encryption key (no integrations context), so a secret cannot be stored:
  // the page says why instead of failing. (The secret-once flow is proven by the API tests.)
  await page.getByLabel("URL (webhook, Slack) or e-mail address").fill("https://hooks.example.com/zixly");
  await page.getByLabel("Name").fill("Ops hook");
  await page.getByRole("button", { name: "Add channel" }).click();
  await page.getByText("No encryption key is configured").waitFor();
  const rows = page.locator("table[data-table=channels] tbody tr");
  assert.equal(await rows.count(), 1);
  assert.match(await rows.first().innerText(), /Ops mail[\s\S]*ops@acme\.test[\s\S]*E-mail/);
  await rows.filter({ hasText: "Ops mail" }).getByRole("button", { name: "Send test" }).click();
  await page.getByText("A test notification is on its way").waitFor();
  await assertLabelled(page);
  await shot(page, "channels");

  log("notifications and channels at 375 px");
  await page.setViewportSize({ width: 375, height: 812 });
  await page.goto(`${base}/notifications`);
  await assertNoHorizontalScroll(page);
  await shot(page, "notifications-375");
  await page.goto(`${base}/settings/notifications`);
  await assertNoHorizontalScroll(page);
  await shot(page, "channels-375");
  await page.setViewportSize({ width: 1280, height: 900 });
}
