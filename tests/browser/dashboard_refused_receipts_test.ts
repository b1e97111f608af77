/**
 * The dashboard's validator panel counts as receipts only those the ledger recorded, and names a
 * ledger that cannot write, in one line as the heartbeat does (review s71, finding 1: an immutable
 * `ledger.log` showed `3 receipts (0 from peers, 3 own, 0 copies)` with none recorded, and nothing
 * on the page said why). The page is the real one in chromium; its validator source is the node's
 * own (`node/dashboard_sources.ts`) over a stand-in validator (`tests/node/_refusing_validator.ts`).
 *
 * @module
 */
import assert from "node:assert/strict";
import { emptyInferenceStats, type InferencePort } from "../../inference/inference_port.ts";
import { JobMonitor } from "../../server/job_monitor.ts";
import { validatorSource } from "../node/_refusing_validator.ts";
import { inChromium, openPageAt, QUIET_SOURCES } from "./_helpers.ts";

const OPERATOR = "op-token-0123456789abcdef";

/** A port with no models and no jobs: the page's other panels stay quiet. */
const IDLE_PORT: InferencePort = {
  submit: () => Promise.reject(new Error("no jobs")),
  models: () => Promise.resolve([]),
  stats: () => Promise.resolve(emptyInferenceStats()),
};

Deno.test({
  name:
    "dashboard in chromium: receipts the ledger refused are not counted as recorded, and a ledger that cannot write is named in the validator panel",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const source = validatorSource();
    const jobs = new JobMonitor();
    try {
      await inChromium({
        inference: jobs.wrap(IDLE_PORT),
        dashboard: {
          sources: { ...QUIET_SOURCES, validator: source.validator },
          jobs,
          operatorToken: OPERATOR,
          tickMs: 50,
        },
      }, async (server, browser) => {
        const { page, problems } = await openPageAt(browser, `${server.url}/`);
        await page.locator("#validator-summary", { hasText: /receipts/ }).waitFor();
        const summary = await page.evaluate(
          `document.querySelector("#validator-summary").textContent`,
        ) as string;
        // Failed before the fix: `3 receipts (0 from peers, 0 own, 0 copies) · 0 challenged · …`.
        assert.match(summary, /^0 receipts \(0 from peers, 0 own, 0 copies\) · refused 3 · /);
        assert.match(summary, / · ledger writes failing \(EPERM, 3 failed\): see \/healthz$/);
        assert.deepEqual(problems, [], "no page errors");
      });
    } finally {
      await source.close();
    }
  },
});
