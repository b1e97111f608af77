/**
 * Peer-chosen text on the dashboard (`server/dashboard/app.js`), in chromium: a model name that
 * needs zero-width joiners (an emoji sequence, Persian, Sinhala) shows as written, not with
 * `\u200d` written out (review s77 vstr F5); a fraud proof's strings have their bidi and
 * zero-width characters written `\uXXXX` in its dialog, which stays the same JSON (review s77
 * vstr F4: a U+202E in a receipt's model reversed the rest of the line, `"held,"txt.exe`).
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  emptyInferenceStats,
  type InferencePort,
  type StreamedToken,
} from "../../inference/inference_port.ts";
import { JobMonitor } from "../../server/job_monitor.ts";
import { params } from "../server/_fixtures.ts";
import { inChromium, openPageAt, QUIET_SOURCES } from "./_helpers.ts";

/** A worker's own name for its model: joiners inside words, as ordinary writing uses them. */
const NAME = "coder-👩\u200d💻 می\u200cخواهم ශ්\u200dරී";
const OPERATOR = "op-token-0123456789abcdef";
/** A proof whose strings a worker chose: an override, a zero-width space, a joiner by a space. */
const PROOF = {
  receipt: {
    model: "held\u202eexe.txt\u200b",
    commitment: { scheme: "vf\u202e-fp1" },
    note: "a \u200db",
  },
};

const PORT: InferencePort = {
  models: () => Promise.resolve([{ cid: "bafkmodel", name: NAME, kind: "text" }]),
  stats: () => Promise.resolve(emptyInferenceStats()),
  submit: () =>
    Promise.resolve({
      jobId: "ab".repeat(32),
      model: { cid: "bafkmodel", name: NAME, kind: "text" },
      promptTokens: 1,
      tokens: new ReadableStream<StreamedToken>({}),
      done: new Promise(() => {}),
      cancel: () => {},
    } as never),
};

Deno.test({
  name:
    "dashboard in chromium: a model name's joiners show as written, and a fraud proof's bidi and zero-width characters are written out",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const jobs = new JobMonitor();
    const wrapped = jobs.wrap(PORT);
    await wrapped.submit({
      kind: "text",
      model: "bafkmodel",
      prompt: "hi",
      params: params({ maxTokens: 2 }),
      nonce: "x",
    });
    await inChromium({
      inference: wrapped,
      dashboard: {
        sources: {
          ...QUIET_SOURCES,
          activity: {
            recent: () => [{
              time: 0,
              kind: "verdict",
              subject: "ab".repeat(32),
              target: "cd".repeat(32),
              outcome: "fraud",
              detail: "worker cheated",
              fraudProof: "ef".repeat(32),
            }],
            subscribe: () => () => {},
            fraudProof: () => PROOF,
          },
        },
        jobs,
        operatorToken: OPERATOR,
        tickMs: 100,
      },
    }, async (server, browser) => {
      const { page, problems } = await openPageAt(browser, `${server.url}/`);
      await page.fill("#token", OPERATOR);
      await page.click("#auth-form button");
      await page.locator("#access", { hasText: "operator" }).waitFor();
      await page.locator("#jobs .job .meta").first().waitFor();
      const meta = await page.evaluate(
        `document.querySelector("#jobs .job .meta").textContent`,
      ) as string;
      assert.ok(meta.includes(NAME), `the name as written: ${JSON.stringify(meta)}`);
      await page.click('#activity li[data-kind="verdict"] button');
      await page.locator("#proof-dialog[open]").waitFor();
      const proof = await page.evaluate(
        `document.querySelector("#proof-body").textContent`,
      ) as string;
      assert.doesNotMatch(proof, /[\u200b-\u200f\u202a-\u202e\u2066-\u2069]/u, proof);
      assert.ok(proof.includes('"held\\u202eexe.txt\\u200b"'), proof);
      assert.ok(proof.includes('"a \\u200db"'), "a joiner beside a space is written out");
      assert.deepEqual(JSON.parse(proof), PROOF, "the same JSON");
      assert.deepEqual(problems, []);
    });
  },
});
