import { defineConfig } from "@playwright/test";

// Debian's Chromium: no browser downloads are possible (or wanted) here.
export default defineConfig({
  testDir: "tests",
  timeout: 60_000,
  workers: 1,
  reporter: [["list"]],
  outputDir: "../target/playwright/results",
  use: {
    baseURL: process.env.DASHBOARD_WEB ?? "http://127.0.0.1:4173",
    screenshot: "on",
    trace: "retain-on-failure",
    launchOptions: {
      executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
      args: [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    },
  },
});
