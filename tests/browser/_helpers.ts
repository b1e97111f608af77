/** What the browser tests share: chromium's path and an in-process node on free ports. */
import { type Browser, chromium, type Page } from "playwright-core";
import { parseNodeConfig } from "../../node/config.ts";
import { startNode, type VeriflowNode } from "../../node/node.ts";
import { type AppOptions, createApp } from "../../server/app.ts";
import type { DashboardSources } from "../../server/dashboard_routes.ts";
import { type RunningServer, serve } from "../../server/serve.ts";

/** Debian's chromium (`.ci/run` installs it when missing). */
export const CHROMIUM = "/usr/bin/chromium";
/** Screenshots go here (ignored by git). */
export const OUTPUT_DIR: URL = new URL("../../tmp/test-output/", import.meta.url);

/** A node on free ports, quiet, computing on the main thread (two cores shared in CI). */
export async function startTestNode(
  dataDir: string,
  more: Record<string, unknown>,
): Promise<VeriflowNode> {
  return await startNode(parseNodeConfig({
    dataDir,
    http: { port: 0 },
    heartbeatMs: 0,
    model: { workers: 0 },
    ...more,
  }));
}

/** Fail with the install hint when chromium is missing. */
export async function requireChromium(): Promise<void> {
  await Deno.stat(CHROMIUM).catch(() => {
    throw new Error(`${CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)`);
  });
}

/** A dashboard's sources for a node with nothing to show: no peers, validator, storage. */
export const QUIET_SOURCES: DashboardSources = {
  node: { key: "00".repeat(32), version: "test" },
  tree: () => ({ name: "node", kind: "system", status: "running", restarts: 0, children: [] }),
  onLifecycle: () => () => {},
  peers: () => Promise.resolve([]),
  validator: () => Promise.resolve(undefined),
  storage: () => Promise.resolve(undefined),
};

/**
 * Serve an app made of `options` on a free port and run `test` against it with chromium (required:
 * see {@link requireChromium}); the browser closed and the server shut down after it.
 */
export async function inChromium(
  options: AppOptions,
  test: (server: RunningServer, browser: Browser) => Promise<void>,
): Promise<void> {
  await requireChromium();
  const server = serve({ app: createApp(options), port: 0 });
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
  try {
    await test(server, browser);
  } finally {
    await browser.close();
    await server.shutdown();
  }
}

/** A new page of `browser` at `url`, its page errors collected in `problems`. */
export async function openPageAt(
  browser: Browser,
  url: string,
): Promise<{ page: Page; problems: string[] }> {
  const page = await browser.newPage();
  const problems: string[] = [];
  page.on("pageerror", (e) => problems.push(e.message));
  await page.goto(url);
  return { page, problems };
}
