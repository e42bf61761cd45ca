import { test as base, expect } from "@playwright/test";
import type { Page } from "@playwright/test";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { dirname, extname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { BODY_HEADERS, DASHBOARD_CSP } from "./csp";

const web = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const dist = join(web, "dist");
export const SHOTS = join(web, "test-results", "screenshots");

export function serverUrl(): string {
  const u = process.env.LABBOOK_E2E_URL;
  if (!u) throw new Error("LABBOOK_E2E_URL is not set: run through `npm run test:e2e` (global setup starts the server)");
  return u;
}

export async function apiGet<T>(path: string): Promise<T> {
  const res = await fetch(serverUrl() + path);
  if (!res.ok) throw new Error(`${path}: ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

export type ApiRun = {
  id: string;
  name: string;
  status: string;
  config: Record<string, unknown>;
  metrics: Record<string, { count: number; last: number | string; last_step: number }>;
  created_ms: number;
};

export async function runs(project: string, q: Record<string, string | number> = {}): Promise<{ runs: ApiRun[]; total: number }> {
  const sp = new URLSearchParams(Object.entries(q).map(([k, v]) => [k, String(v)]));
  return apiGet(`/api/v1/projects/${encodeURIComponent(project)}/runs?${sp}`);
}

export async function runByName(project: string, name: string): Promise<ApiRun> {
  const r = await runs(project, { filter: `name = "${name}"` });
  if (!r.runs[0]) throw new Error(`no run named ${name}`);
  return r.runs[0];
}

const MIME: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript",
  ".css": "text/css",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".json": "application/json",
};

/** The headers the server sends on the dashboard's HTML (global-setup.ts),
 * with the expected CSP added while the server sends none. */
function htmlHeaders(): Record<string, string> {
  const h = JSON.parse(process.env.LABBOOK_E2E_HTML_HEADERS ?? "{}") as Record<string, string>;
  h["content-security-policy"] ??= DASHBOARD_CSP;
  return h;
}

/** `page` navigates relative to the real server; when the binary embeds an
 * older build, the fresh web/dist is served to the browser instead (the
 * API still comes from the server). Every page runs under the dashboard's
 * CSP (the server's own, or the expected one until the server sends it),
 * and a test fails on any CSP violation, on an uncaught error, and on any
 * request to another host: the dashboard is local-first. */
export const test = base.extend({
  baseURL: async ({}, use) => use(serverUrl()),
  context: async ({ context }, use) => {
    const origin = new URL(serverUrl()).origin;
    const ours = (url: URL) => url.origin === origin && !url.pathname.startsWith("/api/") && url.pathname !== "/health";
    if (process.env.LABBOOK_E2E_ASSETS === "dist") {
      const headers = htmlHeaders();
      await context.route(ours, async (route) => {
        const p = new URL(route.request().url()).pathname;
        const file = join(dist, p);
        const ok = p !== "/" && file.startsWith(dist) && existsSync(file);
        const path = ok ? file : join(dist, "index.html");
        const type = MIME[extname(path)] ?? "application/octet-stream";
        await route.fulfill({ status: 200, body: readFileSync(path), headers: { ...(ok ? {} : headers), "content-type": type } });
      });
    } else if (process.env.LABBOOK_E2E_CSP !== "server") {
      await context.route(ours, async (route) => {
        if (route.request().resourceType() !== "document") return route.fallback();
        const res = await route.fetch();
        const headers: Record<string, string> = {};
        for (const [k, v] of Object.entries(res.headers())) if (!BODY_HEADERS.has(k) || k === "content-type") headers[k] = v;
        headers["content-security-policy"] = DASHBOARD_CSP;
        await route.fulfill({ response: res, headers });
      });
    }
    await use(context);
  },
  page: async ({ page }, use) => {
    const errors: string[] = [];
    const violations: string[] = [];
    const elsewhere: string[] = [];
    const origin = new URL(serverUrl()).origin;
    page.on("pageerror", (e) => errors.push(e.message));
    // Chromium reports a violation both as an event in the page and as a
    // console error; either is enough to fail.
    await page.exposeFunction("__labbookCspViolation", (v: string) => violations.push(v));
    await page.addInitScript(() => {
      document.addEventListener("securitypolicyviolation", (e) => {
        const report = (window as unknown as { __labbookCspViolation: (v: string) => void }).__labbookCspViolation;
        report(`${e.effectiveDirective} blocked ${e.blockedURI || "inline"} at ${e.sourceFile}:${e.lineNumber} (${e.sample})`);
      });
    });
    page.on("console", (m) => {
      if (m.type() === "error" && /Content Security Policy/i.test(m.text())) violations.push(m.text());
    });
    page.on("request", (r) => {
      const u = new URL(r.url());
      if ((u.protocol === "http:" || u.protocol === "https:" || u.protocol === "ws:" || u.protocol === "wss:") && u.origin !== origin) elsewhere.push(r.url());
    });
    await use(page);
    expect(errors, "uncaught errors in the page").toEqual([]);
    expect(violations, "Content-Security-Policy violations").toEqual([]);
    expect(elsewhere, "requests to other hosts than the dashboard's").toEqual([]);
  },
});
export { expect };

/** Per-panel data the charts expose on window.__labbookCharts. */
export type ChartDebug = { key: string; runs: number; points: number; perRun: Record<string, number>; steps: Record<string, number[]>; lo: number | null; hi: number | null; fetches: number; requests: string[] };

export async function chartDebug(page: Page, metric: string): Promise<ChartDebug | undefined> {
  return page.evaluate((m) => (window as unknown as { __labbookCharts?: Record<string, ChartDebug> }).__labbookCharts?.[m], metric);
}

/** Colored (non-gray) pixels drawn on each chart panel's canvas: axes and
 * grid lines are gray, curves are not. */
export async function coloredPixels(page: Page): Promise<Record<string, number>> {
  return page.evaluate(() => {
    const out: Record<string, number> = {};
    for (const p of document.querySelectorAll<HTMLElement>(".chart-panel")) {
      const c = p.querySelector("canvas");
      const ctx = c?.getContext("2d");
      if (!c || !ctx) continue;
      const d = ctx.getImageData(0, 0, c.width, c.height).data;
      let n = 0;
      for (let i = 0; i < d.length; i += 4) {
        if (d[i + 3] > 100 && Math.max(d[i], d[i + 1], d[i + 2]) - Math.min(d[i], d[i + 1], d[i + 2]) > 50) n++;
      }
      out[p.dataset.metric ?? "?"] = n;
    }
    return out;
  });
}

/** Screenshots of the current page in the light and the dark theme. */
export async function screenshots(page: Page, name: string) {
  mkdirSync(SHOTS, { recursive: true });
  for (const theme of ["light", "dark"] as const) {
    const cur = await page.evaluate(() => document.documentElement.dataset.theme);
    if (cur !== theme) await page.getByTestId("theme-toggle").click();
    await expect(page.locator("html")).toHaveAttribute("data-theme", theme);
    // Chart panels load when scrolled near: visit the whole page first.
    await page.evaluate(async () => {
      for (let y = 0; y < document.body.scrollHeight; y += window.innerHeight / 2) {
        window.scrollTo(0, y);
        await new Promise((r) => setTimeout(r, 80));
      }
      window.scrollTo(0, 0);
    });
    await page.waitForTimeout(400);
    await page.screenshot({ path: join(SHOTS, `${name}-${theme}.png`), fullPage: true });
  }
}

/** The ids of the rendered table rows, in row order. */
export async function tableIds(page: Page): Promise<string[]> {
  return page.evaluate(() =>
    [...document.querySelectorAll<HTMLElement>(".tbody .tr[data-run]")]
      .sort((a, b) => Number(a.dataset.index) - Number(b.dataset.index))
      .map((r) => r.dataset.run ?? ""),
  );
}
