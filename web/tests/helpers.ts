import { test as base, expect as baseExpect } from "@playwright/test";
import type { Page } from "@playwright/test";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { dirname, extname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { BODY_HEADERS, DASHBOARD_CSP } from "./csp";

const web = resolve(dirname(fileURLToPath(import.meta.url)), "..");
/** The build served to the browser when LABBOOK_E2E_SERVE_DIST=1 (global-setup.ts). */
const dist = process.env.LABBOOK_E2E_DIST_DIR ?? join(web, "dist");
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

/** `page` navigates relative to the real server, which serves the
 * dashboard embedded in the binary (global-setup.ts fails when that is not
 * web/dist). With LABBOOK_E2E_SERVE_DIST=1, web/dist (or LABBOOK_E2E_DIST)
 * is served to the browser instead, with the server's headers on its HTML;
 * the API still comes from the server. Every page runs under the dashboard's
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
        const html = path === join(dist, "index.html");
        await route.fulfill({ status: 200, body: readFileSync(path), headers: { ...(html ? headers : {}), "content-type": type } });
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
/** `expect` with one matcher more: a number as the dashboard prints it
 * (4 significant digits) against the exact value. */
export const expect = baseExpect.extend({
  toBeCloseToSig(received: number, expected: number, digits = 4) {
    const unit = expected === 0 ? 0 : Math.pow(10, Math.floor(Math.log10(Math.abs(expected))) - (digits - 1));
    const pass = Number.isFinite(received) && Math.abs(received - expected) <= 0.5 * unit * (1 + 1e-9) + 1e-300;
    return {
      pass,
      message: () => `expected ${received} ${pass ? "not " : ""}to be ${expected} to ${digits} significant digits`,
      name: "toBeCloseToSig",
      expected,
      actual: received,
    };
  },
});

/** A number as the dashboard prints it ("1,234", "0.1234", "1.5e-4", "−2"). */
export function shown(text: string): number {
  const t = text.trim().replace(/,/g, "").replace(/\u2212/g, "-");
  return t === "" ? NaN : Number(t);
}

/** Per-panel data the charts expose on window.__labbookCharts. */
export type ChartDebug = { key: string; runs: number; points: number; perRun: Record<string, number>; steps: Record<string, number[]>; lo: number | null; hi: number | null; fetches: number; requests: string[] };

export async function chartDebug(page: Page, metric: string): Promise<ChartDebug | undefined> {
  return page.evaluate((m) => {
    const d = (window as unknown as { __labbookCharts?: Record<string, Omit<ChartDebug, "steps"> & { steps: Record<string, ArrayLike<number>> }> }).__labbookCharts?.[m];
    // The panel keeps steps as typed arrays; arrays survive the trip out.
    return d && { ...d, steps: Object.fromEntries(Object.entries(d.steps).map(([run, xs]) => [run, Array.from(xs)])) };
  }, metric);
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

/** Two animation frames: the page has rendered what the last change did
 * (observers' callbacks run in the first). */
async function frames(page: Page) {
  await page.evaluate(() => new Promise<void>((r) => requestAnimationFrame(() => requestAnimationFrame(() => r()))));
}

/** Every chart panel on the page has drawn, or says it has no data or
 * failed (a bounded wait). */
export async function panelsSettled(page: Page, timeout = 15_000) {
  await expect
    .poll(
      () =>
        page.evaluate(() =>
          [...document.querySelectorAll<HTMLElement>(".chart-panel")].filter((p) => !(p.hasAttribute("data-points") || p.querySelector(".plot-empty, .error-box"))).map((p) => p.dataset.metric),
        ),
      { message: "chart panels still loading", timeout },
    )
    .toEqual([]);
}

/** Screenshots of the current page in the light and the dark theme. */
export async function screenshots(page: Page, name: string) {
  mkdirSync(SHOTS, { recursive: true });
  for (const theme of ["light", "dark"] as const) {
    const cur = await page.evaluate(() => document.documentElement.dataset.theme);
    if (cur !== theme) await page.getByTestId("theme-toggle").click();
    await expect(page.locator("html")).toHaveAttribute("data-theme", theme);
    // Chart panels load when scrolled near: visit the whole page first, a
    // rendered frame at each stop, then wait for every panel to draw.
    const height = await page.evaluate(() => document.body.scrollHeight);
    const step = await page.evaluate(() => window.innerHeight / 2);
    for (let y = 0; y < height; y += step) {
      await page.evaluate((top) => window.scrollTo(0, top), y);
      await frames(page);
    }
    await page.evaluate(() => window.scrollTo(0, 0));
    await panelsSettled(page);
    await frames(page);
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
