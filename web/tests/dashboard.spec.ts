import { readFile } from "node:fs/promises";
import { expect, test, type Page } from "@playwright/test";

// Runs against the real Rust server on its development default (embedded store, Stripe
// simulator with the demo member's orders), behind `vite preview`. `cargo xtask test` starts both.
// They run in this order on one server: the erasure test goes last, as it removes the demo data.

const shots = "../target/playwright/screenshots";

async function signIn(page: Page) {
  await page.goto("/");
  await page.getByRole("button", { name: "Use the local development token" }).click();
  await expect(page.getByRole("heading", { name: "Your orders" })).toBeVisible();
}

test("sign in, page through orders, filter, and open one", async ({ page }) => {
  await page.goto("/");
  await expect(page.getByLabel("Access token")).toBeVisible();
  await page.screenshot({ path: `${shots}/sign-in.png`, fullPage: true });
  await signIn(page);

  const orders = page.locator("ul.orders > li");
  await expect(orders).toHaveCount(10);
  await expect(page.locator(".freshness")).toContainText(/Synced|Refreshing/);
  await expect(orders.first().locator(".amount")).toHaveText(/^\$\d+\.\d\d$/);
  await page.screenshot({ path: `${shots}/orders.png`, fullPage: true });

  // "Load more" until every demo order is listed, with no duplicates.
  while (await page.getByRole("button", { name: "Load more" }).isVisible()) {
    const before = await orders.count();
    await page.getByRole("button", { name: "Load more" }).click();
    await expect.poll(() => orders.count()).toBeGreaterThan(before);
  }
  const numbers = await page.locator("ul.orders .number").allTextContents();
  expect(numbers.length).toBe(32);
  expect(new Set(numbers).size).toBe(numbers.length);

  // Status filter.
  await page.getByLabel("Status").selectOption("partially_refunded");
  await expect(orders.first().locator(".status")).toHaveText("partially refunded");
  const statuses = await page.locator("ul.orders .status").allTextContents();
  expect(statuses.every((s) => s === "partially refunded")).toBe(true);
  await page.screenshot({ path: `${shots}/orders-filtered.png`, fullPage: true });

  // Detail: items, payment timeline, receipt.
  await orders.first().getByRole("button").click();
  await expect(page.getByRole("heading", { name: /^Order BC-/ })).toBeVisible();
  await expect(page.getByRole("table")).toContainText("Sticker Pack");
  await expect(page.locator("ol.timeline li")).toHaveCount(2);
  await expect(page.locator("ol.timeline")).toContainText("Refund succeeded");
  await expect(page.getByRole("link", { name: "View receipt" })).toHaveAttribute("href", /receipts/);
  await page.screenshot({ path: `${shots}/order-detail.png`, fullPage: true });
  await page.getByRole("button", { name: "← All orders" }).click();
  await expect(page.getByRole("heading", { name: "Your orders" })).toBeVisible();
});

test("edit the profile: saved, a field error beside its field, and a conflict", async ({ page, request }) => {
  await signIn(page);
  await page.getByRole("button", { name: "Profile" }).click();
  await expect(page.getByRole("heading", { name: "Your profile" })).toBeVisible();

  // A valid change saves.
  await page.getByLabel("Display name").fill("Demo Member (edited)");
  await page.getByRole("button", { name: "Save profile" }).click();
  await expect(page.getByRole("status")).toHaveText("Profile saved.");

  // A server-side validation error shows beside the field at fault.
  await page.getByLabel("Address line 1").fill("1 Rose Way");
  await page.getByLabel("City").fill("Portland");
  await page.getByLabel("Postal code").fill("97201");
  await page.getByLabel("Country (2 letters)").fill("usa");
  await page.getByRole("button", { name: "Save profile" }).click();
  const countryError = page.locator("#shippingAddress\\.country-error");
  await expect(countryError).toContainText("ISO 3166-1");
  await expect(page.getByLabel("Country (2 letters)")).toHaveAttribute("aria-invalid", "true");
  await page.screenshot({ path: `${shots}/profile-field-error.png`, fullPage: true });
  await page.getByLabel("Country (2 letters)").fill("US");

  // Someone else changes the profile meanwhile (a second client, straight to the API).
  const { token } = (await (await request.get("/dev/token")).json()) as { token: string };
  const headers = { Authorization: `Bearer ${token}` };
  const current = await request.get("/dashboard/profile", { headers });
  const etag = current.headers()["etag"]!;
  const body = await current.json();
  const changed = await request.put("/dashboard/profile", {
    headers: { ...headers, "If-Match": etag },
    data: {
      email: body.email,
      displayName: "Changed elsewhere",
      shippingAddress: null,
      preferredWallet: null,
      avatarUrl: null,
      dashboardSettings: body.dashboardSettings,
    },
  });
  expect(changed.status()).toBe(200);

  await page.getByRole("button", { name: "Save profile" }).click();
  await expect(page.getByRole("alert")).toContainText("changed somewhere else");
  await page.screenshot({ path: `${shots}/profile-conflict.png`, fullPage: true });
  await page.getByRole("button", { name: "Reload the latest version" }).click();
  await expect(page.getByLabel("Display name")).toHaveValue("Changed elsewhere");
  await page.screenshot({ path: `${shots}/profile.png`, fullPage: true });
});

test("works at phone width", async ({ page }) => {
  await page.setViewportSize({ width: 375, height: 740 });
  await signIn(page);
  await expect(page.locator("ul.orders > li").first()).toBeVisible();
  const width = await page.evaluate(() => document.documentElement.scrollWidth);
  expect(width).toBeLessThanOrEqual(375);
  await page.screenshot({ path: `${shots}/orders-phone.png`, fullPage: true });
});

test("export my data: one JSON file with the profile and every order", async ({ page }) => {
  // The server pages at 100 orders and the demo member has 32: split its one page in two, so
  // the download proves the dashboard follows `nextPageToken`.
  let rest: unknown[] = [];
  await page.route("**/dashboard/export*", async (route) => {
    const url = new URL(route.request().url());
    if (url.searchParams.get("pageToken") === "test-page-2") {
      return route.fulfill({ json: { exportedAt: new Date().toISOString(), orders: rest } });
    }
    const response = await route.fetch();
    const page1 = (await response.json()) as { orders: unknown[]; nextPageToken?: string | null };
    expect(page1.nextPageToken ?? null).toBeNull();
    rest = page1.orders.splice(page1.orders.length / 2);
    return route.fulfill({ response, json: { ...page1, nextPageToken: "test-page-2" } });
  });
  await signIn(page);
  await page.getByRole("button", { name: "Profile" }).click();
  await expect(page.getByRole("heading", { name: "Your data" })).toBeVisible();

  const downloading = page.waitForEvent("download");
  await page.getByRole("button", { name: "Export my data" }).click();
  const download = await downloading;
  expect(download.suggestedFilename()).toMatch(/^babes-club-export-\d{4}-\d\d-\d\d\.json$/);
  const data = JSON.parse(await readFile(await download.path(), "utf8"));
  expect(data.profile.userId).toBe("demo-member");
  expect(data.profile.email).toBeTruthy();
  expect(data.syncStatus).toBeTruthy();
  expect(data.auditHistory).toContain("logs");
  expect(data).not.toHaveProperty("nextPageToken");
  const ids: string[] = data.orders.map((o: { orderId: string }) => o.orderId);
  expect(ids).toHaveLength(32);
  expect(new Set(ids).size).toBe(32);
  // Each order with its timeline, as the order view shows it.
  expect(data.orders.every((o: { charges: unknown[] }) => Array.isArray(o.charges))).toBe(true);
  expect(data.orders.some((o: { refunds: unknown[] }) => o.refunds.length > 0)).toBe(true);
  await expect(page.getByRole("status")).toHaveText("Your data was downloaded (32 orders).");
  await page.screenshot({ path: `${shots}/export.png`, fullPage: true });
});

test("erase my dashboard data: confirmed, signed out, and a fresh profile after", async ({ page }) => {
  await signIn(page);
  await page.getByRole("button", { name: "Profile" }).click();
  await expect(page.locator(".muted", { hasText: "Member id" })).toContainText("32 orders");

  // Cancelling the confirmation erases nothing.
  await page.getByRole("button", { name: "Erase my dashboard data" }).click();
  const confirm = page.getByRole("alertdialog", { name: "Erase your dashboard data?" });
  await expect(confirm).toContainText("Stripe's own records");
  await confirm.getByRole("button", { name: "Cancel" }).click();
  await expect(confirm).toBeHidden();

  await page.getByRole("button", { name: "Erase my dashboard data" }).click();
  await page.screenshot({ path: `${shots}/erase-confirm.png`, fullPage: true });
  await confirm.getByRole("button", { name: "Yes, erase my data" }).click();

  // Signed out: the token is gone and the sign-in view says what stayed.
  await expect(page.getByLabel("Access token")).toBeVisible();
  await expect(page.getByRole("status")).toContainText("Your dashboard data was erased");
  await expect(page.getByRole("status")).toContainText("Stripe's own records");
  expect(await page.evaluate(() => localStorage.getItem("dashboard.token"))).toBeNull();
  await page.screenshot({ path: `${shots}/erased.png`, fullPage: true });

  // Signing in again starts a fresh profile: no orders, nothing of the edited profile.
  await signIn(page);
  await expect(page.locator("p.empty")).toHaveText("No orders yet.");
  await page.getByRole("button", { name: "Profile" }).click();
  await expect(page.locator(".muted", { hasText: "Member id" })).toContainText("0 orders");
  await expect(page.getByLabel("Display name")).toHaveValue("");
});
