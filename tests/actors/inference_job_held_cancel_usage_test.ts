/**
 * A cancelled LOCAL job (this node's own worker, no router) reports as usage what its requester
 * holds, as its receipt does (review s80 vbil, F2): the SSE edge's cancel states the positions
 * whose text the client got (`HeldCancelError`), and the job's `usage.completionTokens`, its
 * cancelled receipt's `tokenCount` and the operator's log agree on that, not on the tokens the
 * model computed (here the edge reads two more, held back as a possible stop's start).
 *
 * The gate only makes "the model's next token has not come yet" deterministic; no test waits on a
 * clock (the edge's timers are manual).
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { InferenceHandle, StreamedToken } from "../../inference/inference_port.ts";
import { Identity } from "../../protocols/identity.ts";
import { toHex } from "../../protocols/hash.ts";
import type { TextJob } from "../../protocols/job.ts";
import type { Receipt } from "../../protocols/receipt.ts";
import { EdgeStats } from "../../server/edge_stats.ts";
import { sseAnswer } from "../../server/openai_answers.ts";
import { COMPLETION_SHAPE } from "../../server/openai_shapes.ts";
import { eventually } from "../_helpers/wait.ts";
import { ManualTimers } from "../protocols/_helpers.ts";
import { spawnHonestInference } from "../network/_honest_inference.ts";
import { clientJob } from "../network/_proving_worker.ts";

const MAX_TOKENS = 24;

function gated(handle: InferenceHandle, limit: number) {
  const reader = handle.tokens.getReader();
  let taken = 0;
  const cancelled = Promise.withResolvers<void>();
  const tokens = new ReadableStream<StreamedToken>({
    async pull(controller) {
      if (taken >= limit) await cancelled.promise;
      const next = await reader.read();
      taken++;
      if (next.done) controller.close();
      else controller.enqueue(next.value);
    },
    cancel(reason) {
      cancelled.resolve();
      return reader.cancel(reason);
    },
  }, { highWaterMark: 0 });
  const cancel = () => {
    cancelled.resolve();
    handle.cancel();
  };
  return { handle: { ...handle, tokens, cancel }, taken: () => taken };
}

function textOfSse(raw: string): string {
  let text = "";
  for (const line of raw.split("\n")) {
    if (!line.startsWith("data: ") || line === "data: [DONE]") continue;
    for (const choice of JSON.parse(line.slice(6)).choices ?? []) text += choice.text ?? "";
  }
  return text;
}

async function run(requester: string | undefined) {
  const system = new ActorSystem({ name: `held-usage-${requester ? "req" : "none"}` });
  const worker = Identity.generate();
  const { local } = await spawnHonestInference(system, worker);
  try {
    const named = (job: TextJob): TextJob => requester ? { ...job, requester } : job;
    const learn = await local.submit(named(clientJob("held-usage-learn", MAX_TOKENS)));
    const texts: string[] = [];
    for await (const token of learn.tokens) texts.push(token.text);
    await learn.done;
    const shown = 3;
    const stop = texts.slice(shown, shown + 2).join("") + "\u0007never";
    const job: TextJob = named({
      ...clientJob("held-usage-sse", MAX_TOKENS),
      params: { ...clientJob("x", MAX_TOKENS).params, stop: [stop] },
    });
    const handle = await local.submit(job);
    const gate = gated(handle, shown + 2);
    const body = sseAnswer(gate.handle, COMPLETION_SHAPE, {
      logprobs: false,
      idleTimeoutMs: 60_000,
      computesOnEventLoop: false,
      stops: [stop],
      includeUsage: true,
      timers: new ManualTimers(),
      stats: new EdgeStats(),
    }).body!.getReader();
    const decoder = new TextDecoder();
    let raw = "";
    const want = texts.slice(0, shown).join("");
    while (textOfSse(raw).length < want.length) {
      const next = await body.read();
      if (next.done) throw new Error("ended early");
      raw += decoder.decode(next.value);
    }
    const pending = body.read().catch(() => undefined);
    await eventually(() => gate.taken() === shown + 2, "edge reads the held tokens");
    await body.cancel();
    await pending;
    const summary = await handle.done;
    const receipt = summary.receipt as Receipt | undefined;
    assert.equal(summary.finishReason, "cancelled");
    assert.equal(textOfSse(raw), want, "the client got the text of the first tokens");
    return { shown, usage: summary.usage.completionTokens, receipt };
  } finally {
    await system.shutdown();
  }
}

Deno.test("a cancelled local job that names its requester reports the held count as usage and receipt", async () => {
  const r = await run(toHex(Identity.generate().publicKey));
  assert.equal(r.receipt?.tokenCount, r.shown, "receipt over what the client got");
  assert.equal(r.usage, r.shown, "usage equals what the client got");
});

Deno.test("a cancelled local job that names no requester reports the held count as usage", async () => {
  const r = await run(undefined);
  assert.equal(r.receipt, undefined, "nothing is signed for a job that names no requester");
  assert.equal(r.usage, r.shown, "usage equals what the client got");
});
