/**
 * Review s78 F4 on the dashboard (`server/dashboard/app.js`): one peer over two connections (each
 * node dialling the other) was drawn as two circles and two table rows, while the storage line on
 * the same page counted one storage peer. The page now draws each key once, its connections in
 * the circle's title. The page is the real one in chromium; the peer table is fed as the node's
 * source gives it (one entry per connection).
 *
 * @module
 */
import assert from "node:assert/strict";
import { emptyInferenceStats, type InferencePort } from "../../inference/inference_port.ts";
import { JobMonitor } from "../../server/job_monitor.ts";
import { inChromium, openPageAt, QUIET_SOURCES } from "./_helpers.ts";

/** A port with no models and no jobs: the page's other panels stay quiet. */
const IDLE_PORT: InferencePort = {
  submit: () => Promise.reject(new Error("no jobs")),
  models: () => Promise.resolve([]),
  stats: () => Promise.resolve(emptyInferenceStats()),
};

const TWICE = "cd".repeat(32);
const ONCE = "ef".repeat(32);

/** A connection of the network's table (`PeerInfo`), as the dashboard's source gives it. */
function connection(key: string, address: string, outbound: boolean) {
  return {
    key,
    address,
    outbound,
    protocols: [],
    models: [],
    convicted: false,
    roles: ["storage"],
  };
}

Deno.test({
  name:
    "dashboard in chromium: a peer connected twice is one circle and one row, its title saying 2 connections; another peer is drawn beside it",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const jobs = new JobMonitor();
    await inChromium({
      inference: jobs.wrap(IDLE_PORT),
      dashboard: {
        sources: {
          ...QUIET_SOURCES,
          peers: () =>
            Promise.resolve([
              connection(TWICE, "127.0.0.1:18792", true),
              connection(TWICE, "127.0.0.1:40001", false),
              connection(ONCE, "127.0.0.1:40002", false),
            ]),
        },
        jobs,
        operatorToken: "op-token-0123456789abcdef",
        tickMs: 50,
      },
    }, async (server, browser) => {
      const { page, problems } = await openPageAt(browser, `${server.url}/`);
      await page.locator(`#peers tr[data-peer="${ONCE}"]`).waitFor();
      const seen = JSON.parse(
        await page.evaluate(`JSON.stringify({
          rows: [...document.querySelectorAll("#peers tbody tr[data-peer]")]
            .map((r) => r.dataset.peer),
          circles: [...document.querySelectorAll("#network g.peer")].map((g) => g.dataset.peer),
          title: document.querySelector('#network g.peer[data-peer="${TWICE}"] title')
            .textContent,
        })`) as string,
      );
      assert.deepEqual(seen.rows, [TWICE, ONCE], "one row per key");
      assert.deepEqual(seen.circles, [TWICE, ONCE], "one circle per key");
      assert.match(seen.title, /connections 2/);
      assert.deepEqual(problems, [], "no page errors");
    });
  },
});
