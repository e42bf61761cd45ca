// The dashboard of a `labbook serve --auth` in a real browser: signed out,
// it shows its sign-in page and nothing of the store, and its API and live
// stream refuse; signed in on that page (a session cookie, HttpOnly and
// SameSite=Strict) it works as it does on one person's machine; signed out
// again, the session is gone from the store.
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

test("signed out, the dashboard shows only its sign-in page, and its API and stream refuse", async ({ browser, server }) => {
  const context = await browser.newContext();
  const page = await context.newPage();
  for (const path of ["/", `/p/${PROJECT}`, `/p/${PROJECT}/charts`]) {
    const response = await page.goto(server.url + path);
    expect(response?.status(), path).toBe(200);
    await expect(page.getByRole("heading", { name: "Sign in to labbook" })).toBeVisible();
    const shown = await page.locator("body").innerText();
    expect(shown).not.toContain(PROJECT);
    expect(shown).not.toContain(RUN);
  }
  // The page's own requests get no Basic challenge (so no browser prompt),
  // and nothing of the store.
  for (const path of ["/api/v1/projects", `/api/v1/projects/${PROJECT}/runs`, "/api/2.0/mlflow/experiments/search"]) {
    const answer = await page.evaluate(async (url) => {
      const r = await fetch(url);
      return { status: r.status, challenge: r.headers.get("www-authenticate"), text: await r.text() };
    }, server.url + path);
    expect(answer.status, path).toBe(401);
    expect(answer.challenge, path).toBeNull();
    expect(answer.text).toContain("UNAUTHENTICATED");
    expect(answer.text).not.toContain(PROJECT);
  }
  const stream = await context.request.get(`${server.url}/api/v1/events?project=${PROJECT}`);
  expect(stream.status()).toBe(401);
  expect(await stream.text()).not.toContain(PROJECT);
  // Wrong passwords and unknown users are told apart from nothing.
  for (const [user, password] of [
    ["ada", "wrong password"],
    ["eve", PASSWORD],
  ]) {
    await page.getByLabel("User name").fill(user);
    await page.getByLabel("Password").fill(password);
    await page.getByRole("button", { name: "Sign in" }).click();
    await expect(page.getByTestId("sign-in-error")).toHaveText("The user name or password is wrong.");
  }
  expect((await context.cookies()).filter((c) => c.name === "labbook_session")).toEqual([]);
  await context.close();
});

test("signed in on its page, the dashboard lists and charts the run; signing out ends the session", async ({ browser, server }) => {
  for (const colorScheme of ["light", "dark"] as const) {
    const context = await browser.newContext({ colorScheme });
    const page = await context.newPage();
    await page.goto(`${server.url}/p/${PROJECT}`);
    await expect(page.getByLabel("User name")).toBeFocused();
    const suffix = colorScheme === "dark" ? "-dark" : "";
    await page.screenshot({ path: join(web, "test-results", "screenshots", `auth-sign-in${suffix}.png`) });
    const refused: string[] = [];
    await page.getByLabel("User name").fill("ada");
    await page.getByLabel("Password").fill(PASSWORD);
    page.on("response", (r) => {
      if (r.status() === 401 || r.status() === 403) refused.push(r.url());
    });
    await page.getByRole("button", { name: "Sign in" }).click();
    // The page the address named, not a landing page.
    await expect(page.locator(".tbody .tr[data-run]")).toHaveCount(1);
    await expect(page.locator(".tbody")).toContainText(RUN);
    await expect(page.getByTestId("user-name")).toHaveText("ada");
    await page.goto(`${server.url}/p/${PROJECT}/charts`);
    await expect(page.locator("canvas").first()).toBeVisible();
    await page.goto(server.url + "/");
    await expect(page.locator(`.project-card[data-project="${PROJECT}"]`)).toBeVisible();
    await page.screenshot({ path: join(web, "test-results", "screenshots", `auth-signed-in${suffix}.png`) });
    expect(refused).toEqual([]);

    const [cookie] = (await context.cookies()).filter((c) => c.name === "labbook_session");
    expect(cookie?.httpOnly).toBe(true);
    expect(cookie?.sameSite).toBe("Strict");
    expect(await page.evaluate(() => document.cookie)).not.toContain("labbook_session");

    await page.getByTestId("sign-out").click();
    await expect(page.getByRole("heading", { name: "Sign in to labbook" })).toBeVisible();
    // The session was revoked in the store: the old cookie lets no one in.
    const replayed = await fetch(`${server.url}/api/v1/projects`, {
      headers: { cookie: `labbook_session=${cookie?.value ?? ""}` },
    });
    expect(replayed.status).toBe(401);
    expect(await replayed.text()).not.toContain(PROJECT);
    await context.close();
  }
});
