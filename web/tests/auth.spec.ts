// The dashboard of a `labbook serve --auth` in a real browser: without an
// account's name and password the page, its API and its live stream are
// refused and show nothing of the store; with them (the browser's own Basic
// prompt, answered here by Playwright's httpCredentials) the dashboard works
// as it does on one person's machine.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { test as base, expect } from "@playwright/test";

const web = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const bin = resolve(web, process.env.LABBOOK_BIN ?? join(web, "..", "target/release/labbook"));
const PASSWORD = "a long passphrase";
const PROJECT = "secret-lab";
const RUN = "secret-run";

function run(args: string[], input?: string): Promise<string> {
  return new Promise((res, rej) => {
    const p = spawn(bin, args, { stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    let err = "";
    p.stdout.on("data", (d: Buffer) => (out += d.toString()));
    p.stderr.on("data", (d: Buffer) => (err += d.toString()));
    p.stdin.end(input ?? "");
    p.once("close", (code) => (code === 0 ? res(out) : rej(new Error(`labbook ${args.join(" ")}: ${err}`))));
  });
}

type Server = { url: string; token: string; proc: ChildProcess };

const test = base.extend<object, { server: Server }>({
  server: [
    async ({}, use) => {
      const store = join(mkdtempSync(join(tmpdir(), "labbook-auth-")), ".labbook");
      await run(["--dir", store, "user", "add", "ada", "--password-stdin"], PASSWORD + "\n");
      const token = (await run(["--dir", store, "token", "create", "ada"])).trim();
      const proc = spawn(bin, ["--dir", store, "serve", "--auth", "--host", "127.0.0.1", "--port", "0"], {
        stdio: ["ignore", "pipe", "pipe"],
      });
      let out = "";
      proc.stdout?.on("data", (d: Buffer) => (out += d.toString()));
      const deadline = Date.now() + 20_000;
      let url: string | undefined;
      while (!(url = /serving .* at (http:\/\/\S+)/.exec(out)?.[1])) {
        if (Date.now() > deadline || proc.exitCode !== null) throw new Error(`labbook serve --auth did not start: ${out}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      // One run, logged with the token through labbook's own API.
      const headers = { "content-type": "application/json", authorization: `Bearer ${token}` };
      const started = await fetch(`${url}/api/v1/runs`, {
        method: "POST",
        headers,
        body: JSON.stringify({ project: PROJECT, name: RUN, config: { lr: 0.1 } }),
      });
      expect(started.status).toBe(200);
      const { run: made } = (await started.json()) as { run: { id: string } };
      const logged = await fetch(`${url}/api/v1/runs/${made.id}/log`, {
        method: "POST",
        headers,
        body: JSON.stringify({
          batch_id: "b1",
          series: { loss: { steps: [0, 1, 2], ts_ms: [1, 2, 3], values: [1, 0.5, 0.25] } },
          patch: { status: "finished", ended_ms: Date.now() },
        }),
      });
      expect(logged.status).toBe(200);
      await use({ url, token, proc });
      proc.kill("SIGKILL");
    },
    { scope: "worker" },
  ],
});

test("without an account the dashboard, its API and its stream show nothing", async ({ browser, server }) => {
  const paths = ["/", `/p/${PROJECT}`, "/api/v1/projects", `/api/v1/events?project=${PROJECT}`];
  const wrong = [undefined, { username: "ada", password: "wrong password" }, { username: "eve", password: PASSWORD }];
  for (const credentials of wrong) {
    const context = await browser.newContext({ httpCredentials: credentials });
    const page = await context.newPage();
    for (const path of paths) {
      // The browser asks for a name and password; given none or wrong ones
      // it shows the refusal, or gives up on the page (Chromium does either).
      const status = await page.goto(server.url + path).then(
        (response) => response?.status(),
        (error: Error) => {
          expect(error.message).toMatch(/ERR_INVALID_AUTH_CREDENTIALS/);
          return 401;
        },
      );
      expect(status, path).toBe(401);
      // What the refusal says, read with the same credentials.
      const answer = await context.request.get(server.url + path);
      expect(answer.status(), path).toBe(401);
      expect(answer.headers()["www-authenticate"]).toMatch(/^Basic realm=/);
      const text = await answer.text();
      expect(text).toContain("UNAUTHENTICATED");
      expect(text).not.toContain(PROJECT);
      expect(text).not.toContain(RUN);
    }
    await context.close();
  }
});

test("signed in through the browser's prompt, the dashboard lists and charts the run", async ({ browser, server }) => {
  const context = await browser.newContext({ httpCredentials: { username: "ada", password: PASSWORD } });
  const page = await context.newPage();
  const refused: string[] = [];
  page.on("response", (r) => {
    if (r.status() === 401) refused.push(r.url());
  });
  await page.goto(server.url + "/");
  await expect(page.locator(`.project-card[data-project="${PROJECT}"]`)).toBeVisible();
  await page.goto(`${server.url}/p/${PROJECT}`);
  await expect(page.locator(".tbody .tr[data-run]")).toHaveCount(1);
  await expect(page.locator(".tbody")).toContainText(RUN);
  await expect(page.locator("canvas").first()).toBeVisible();
  await page.screenshot({ path: join(web, "test-results", "screenshots", "auth-signed-in.png") });
  expect(refused).toEqual([]);
  await context.close();
});
