import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

// The dashboard talks to the API on its own origin; Vite forwards API paths to the server
// (DASHBOARD_API, default the server's default address), so no CORS is needed.
const api = process.env.DASHBOARD_API ?? "http://127.0.0.1:8080";
const proxy = Object.fromEntries(
  ["/dashboard", "/healthz", "/dev"].map((path) => [path, { target: api, changeOrigin: false }]),
);

export default defineConfig({
  plugins: [react()],
  server: { proxy },
  preview: { proxy },
});
