/**
 * A configured peer's refusal text on the dashboard (`server/dashboard/app.js`, `style.css`): cut
 * to a line's worth in its cell, whole in the cell's `title`, its bidi, zero-width and control
 * characters written out, and the page no wider than the window (review s76 F2: a 1 KiB reason
 * made the page 11,509 px wide, and its U+202E reversed the rest of the cell). The page is the
 * real one in chromium; the static peer's state is fed as the node's source gives it.
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

/** The review's reason: a title escape, a clear screen, a forged line, an RLO, 1000 × W. */
const REASON = "\x1b]0;owned\x07\x1b[2J\r\nveriflow node 00ff fake line\u202e\u200b" +
  "W".repeat(1000);
const LAST_ERROR = `the peer refused the connection: ${REASON}`.slice(0, 1024);

Deno.test({
  name:
    "dashboard in chromium: a static peer's 1 KiB refusal is cut in its cell, whole in its title, with no bidi override, and the page keeps the window's width",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const jobs = new JobMonitor();
    await inChromium({
      inference: jobs.wrap(IDLE_PORT),
      dashboard: {
        sources: {
          ...QUIET_SOURCES,
          staticPeers: () =>
            Promise.resolve([{
              address: "127.0.0.1:7701",
              up: false,
              since: 0,
              failures: 3,
              lastError: LAST_ERROR,
            }]),
        },
        jobs,
        operatorToken: "op-token-0123456789abcdef",
        tickMs: 50,
      },
    }, async (server, browser) => {
      const { page, problems } = await openPageAt(browser, `${server.url}/`);
      await page.locator("#peers tr.unreachable td.bad").waitFor();
      const seen = JSON.parse(
        await page.evaluate(`JSON.stringify({
          docWidth: document.documentElement.scrollWidth,
          viewport: innerWidth,
          cell: document.querySelector("#peers tr.unreachable td.bad").textContent,
          title: document.querySelector("#peers tr.unreachable td.bad").title,
        })`) as string,
      );
      assert.ok(seen.docWidth <= seen.viewport, `page ${seen.docWidth} px in ${seen.viewport}`);
      // The cell: its own words, then 160 characters of the peer's at most, ending in "…".
      const said = seen.cell.slice(seen.cell.indexOf("failed): ") + "failed): ".length);
      assert.ok(said.length <= 160, `${said.length} characters of the peer's shown`);
      assert.ok(said.endsWith("…"), said);
      assert.ok(
        said.startsWith(
          "the peer refused the connection: \\x1b]0;owned\\x07\\x1b[2J\\r\\nveriflow",
        ),
        said,
      );
      // deno-lint-ignore no-control-regex -- the controls a hostile peer sends
      assert.doesNotMatch(seen.cell, /[\x1b\r\n\u202e\u200b]/u);
      // The title: the whole text, written out the same way.
      assert.ok(seen.title.includes("\\u202e\\u200b" + "W".repeat(900)), "the whole in the title");
      // deno-lint-ignore no-control-regex -- the controls a hostile peer sends
      assert.doesNotMatch(seen.title, /[\x1b\r\n\u202e\u200b]/u);
      assert.deepEqual(problems, [], "no page errors");
    });
  },
});
