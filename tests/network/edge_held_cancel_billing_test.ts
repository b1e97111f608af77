/**
 * What a client of a ROUTER is charged when its HTTP edge read tokens it never passed on (review
 * s80 bill, F2, F3): the edge's cancel says how many output positions the client holds
 * (`HeldCancelError`), and the router's cancel tells the worker the smaller of that and what it
 * handed the edge, so the client's usage, the worker's cancelled receipt and the ledger's credit
 * all cover the tokens whose text the client got.
 *
 * - An SSE client that goes away while the edge holds a possible stop's start back pays for the
 *   text it got, not for the held tokens.
 * - A one-body client that goes away before its answer got nothing, and pays nothing.
 *
 * The gate only makes "the model's next token has not come yet" deterministic; no test waits on a
 * clock (the edges' timers are manual).
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { InferenceHandle, StreamedToken } from "../../inference/inference_port.ts";
import { NetworkInferencePort } from "../../network/network_inference_port.ts";
import { Identity } from "../../protocols/identity.ts";
import type { TextJob } from "../../protocols/job.ts";
import { type Receipt, receiptId } from "../../protocols/receipt.ts";
import { EdgeStats } from "../../server/edge_stats.ts";
import { fullAnswer, sseAnswer } from "../../server/openai_answers.ts";
import { COMPLETION_SHAPE } from "../../server/openai_shapes.ts";
import { eventually } from "../_helpers/wait.ts";
import { ledgerReads, START } from "../actors/_validator_fixture.ts";
import { paidFor } from "../proof/_receipt_pay.ts";
import { ManualTimers } from "../protocols/_helpers.ts";
import { spawnHonestInference } from "./_honest_inference.ts";
import { clientJob, connectWorker, OneWorker, spawnRouter } from "./_proving_worker.ts";

const MAX_TOKENS = 24;

async function setUp(label: string) {
  const dir = await Deno.makeTempDir();
  const clock = { t: START };
  const routerSystem = new ActorSystem({ name: `edge-held-router-${label}` });
  const workerSystem = new ActorSystem({ name: `edge-held-worker-${label}` });
  const [router, worker] = [Identity.generate(), Identity.generate()];
  const network = new OneWorker();
  const { networkRef, validator } = await spawnRouter(routerSystem, dir, clock, router, network);
  await validator.ask({ type: "deposit", key: worker.publicKey, amount: 1_000_000 });
  const port = new NetworkInferencePort(networkRef, validator, router, { tokensPerEvent: 1 });
  const { local } = await spawnHonestInference(workerSystem, worker);
  const ends = await connectWorker(router, worker, local, workerSystem);
  network.connection = ends.toWorker;
  return {
    worker,
    port,
    reads: ledgerReads(() => validator, clock),
    async close() {
      await ends.toWorker.close();
      await ends.atWorker.close();
      await routerSystem.shutdown();
      await workerSystem.shutdown();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/**
 * `handle` whose tokens stop coming after `limit` until the job is cancelled (the model's next
 * step not done yet); the stream's cancel, reason and all, reaches `handle`'s.
 */
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

const answerOptions = {
  logprobs: false,
  idleTimeoutMs: 60_000,
  computesOnEventLoop: false,
} as const;

function textOfSse(raw: string): string {
  let text = "";
  for (const line of raw.split("\n")) {
    if (!line.startsWith("data: ") || line === "data: [DONE]") continue;
    for (const choice of JSON.parse(line.slice(6)).choices ?? []) text += choice.text ?? "";
  }
  return text;
}

/** The worker's credit for `receipt` once the ledger holds it and its window closed. */
async function settled(t: Awaited<ReturnType<typeof setUp>>, receipt: Receipt) {
  await eventually(
    async () => (await t.reads.record(receiptId(receipt))) !== undefined,
    "the receipt in the ledger",
  );
  await t.reads.closeWindow();
  return {
    credit: (await t.reads.record(receiptId(receipt)))?.credit,
    balance: (await t.reads.account(t.worker.publicKey)).balance,
  };
}

Deno.test("an SSE client of a router that goes away while its edge holds a stop's start pays for the text it got", async () => {
  const t = await setUp("sse");
  try {
    // The job's tokens (same job, same seed), to build a stop that tokens 3 and 4 start.
    const learn = await t.port.submit(clientJob("edge-held-learn", MAX_TOKENS));
    const texts: string[] = [];
    for await (const token of learn.tokens) texts.push(token.text);
    const learnt = (await learn.done).receipt as Receipt;
    const shown = 3;
    const stop = texts.slice(shown, shown + 2).join("") + "\u0007never";
    const job: TextJob = {
      ...clientJob("edge-held-sse", MAX_TOKENS),
      params: { ...clientJob("x", MAX_TOKENS).params, stop: [stop] },
    };
    const handle = await t.port.submit(job);
    const gate = gated(handle, shown + 2);
    const body = sseAnswer(gate.handle, COMPLETION_SHAPE, {
      ...answerOptions,
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
      if (next.done) throw new Error("the stream ended early");
      raw += decoder.decode(next.value);
    }
    // The next event: the edge reads tokens 3 and 4 (held as the stop's start), then waits.
    const pending = body.read().catch(() => undefined);
    await eventually(() => gate.taken() === shown + 2, "the edge to read the held tokens");
    await body.cancel(); // the client goes away
    await pending;
    assert.equal(textOfSse(raw), want);

    const summary = await handle.done;
    assert.equal(summary.finishReason, "cancelled");
    assert.equal(summary.usage.completionTokens, shown, "the client's usage");
    const receipt = summary.receipt as Receipt | undefined;
    assert.ok(receipt !== undefined, "the worker's cancelled receipt");
    assert.equal(receipt.tokenCount, shown, "the receipt covers the text the client got");
    await eventually(
      async () => (await t.reads.record(receiptId(learnt))) !== undefined,
      "the first job's receipt in the ledger",
    );
    const { credit, balance } = await settled(t, receipt);
    const price = paidFor({ tokenCount: shown, promptTokens: receipt.promptTokens });
    assert.equal(credit, price, "the worker is credited for the tokens the client got");
    assert.equal(balance, paidFor(learnt) + price, "the worker is paid for both jobs' tokens");
  } finally {
    await t.close();
  }
});

Deno.test("a one-body client of a router that goes away before its answer pays for nothing", async () => {
  const t = await setUp("body");
  try {
    const handle = await t.port.submit(clientJob("edge-held-body", MAX_TOKENS));
    const read = 5;
    const gate = gated(handle, read);
    const gone = new AbortController();
    const answer = fullAnswer(gate.handle, COMPLETION_SHAPE, {
      ...answerOptions,
      stops: [],
      includeUsage: false,
      timers: new ManualTimers(),
      stats: new EdgeStats(),
      clientGone: gone.signal,
    }).catch((error) => error);
    await eventually(() => gate.taken() === read, "the answer to read its tokens");
    gone.abort(); // the client goes away: it received nothing
    assert.equal(String(await answer), "VeriflowError: the job was cancelled");

    const summary = await handle.done;
    assert.equal(summary.finishReason, "cancelled");
    assert.equal(summary.usage.completionTokens, 0, "the client's usage");
    assert.equal(summary.receipt, undefined, "no receipt: the client holds no token");
    await t.reads.closeWindow();
    assert.equal((await t.reads.account(t.worker.publicKey)).balance, 0, "nobody is charged");
  } finally {
    await t.close();
  }
});

// Review s80 vbil, F1: `Deno.serve` takes an event off the body (a pull), then hands it to the
// connection; when the connection is gone that hand-off fails and it cancels the body without
// pulling again. The event it took last was never sent, so the client does not pay for it.
Deno.test("an SSE client whose connection failed to take an event does not pay for that event", async () => {
  const t = await setUp("handoff");
  try {
    const handle = await t.port.submit(clientJob("edge-held-handoff", MAX_TOKENS));
    const body = sseAnswer(handle, COMPLETION_SHAPE, {
      ...answerOptions,
      stops: [],
      includeUsage: true,
      timers: new ManualTimers(),
      stats: new EdgeStats(),
    }).body!.getReader();
    const decoder = new TextDecoder();
    const events: string[] = [];
    const sent = 3;
    // Each event is taken, and handed on, before the next is pulled: as `Deno.serve` does.
    while (events.length <= sent) {
      const next = await body.read();
      if (next.done) throw new Error("the stream ended early");
      events.push(decoder.decode(next.value));
    }
    // The 4th event's hand-off fails (the connection is gone): the body is cancelled.
    await body.cancel();
    const got = textOfSse(events.slice(0, sent).join(""));
    assert.ok(got.length > 0);

    const summary = await handle.done;
    assert.equal(summary.finishReason, "cancelled");
    assert.equal(summary.usage.completionTokens, sent, "the client's usage");
    const receipt = summary.receipt as Receipt | undefined;
    assert.ok(receipt !== undefined, "the worker's cancelled receipt");
    assert.equal(receipt.tokenCount, sent, "the receipt covers the events the client was sent");
    const { credit, balance } = await settled(t, receipt);
    const price = paidFor({ tokenCount: sent, promptTokens: receipt.promptTokens });
    assert.equal(credit, price, "the worker is credited for the events the client was sent");
    assert.equal(balance, price, "and for nothing else");
  } finally {
    await t.close();
  }
});
