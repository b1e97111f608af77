/**
 * The router's side of the late-cancel floor (review s81 vcancel F2, after a1890022): a worker
 * signs a `cancelled` receipt over no fewer tokens than the events its requester, the router's
 * reader, gave credit back for, also for a running job's cancel. Where the router read more than
 * its client got (an SSE edge holding back a possible stop's start), the router accepts a receipt
 * whose count lies between its client's k and the tokens it read, checks it over the text it read,
 * assigns it, and the worker is paid that count in the router's ledger and a third one; the client
 * is told usage k and handed no receipt over text it never got. A receipt over more than the
 * router read is dropped: nobody is paid.
 *
 * Router and worker in memory, as in `late_cancel_floor_test.ts`; the gate only makes "the model's
 * next token has not come yet" deterministic, and no test waits on a clock.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { ReceiptHandled } from "../../actors/validator_actor.ts";
import type { InferenceHandle, StreamedToken } from "../../inference/inference_port.ts";
import type { NetworkMessage } from "../../network/network_actor.ts";
import type { Connection } from "../../protocols/connection.ts";
import { toHex } from "../../protocols/hash.ts";
import { HeldCancelError } from "../../protocols/held_cancel.ts";
import { ReceiptRequestMessage } from "../../protocols/inference_messages.ts";
import type { TextJob } from "../../protocols/job.ts";
import { type Receipt, receiptId, verifyReceipt } from "../../protocols/receipt.ts";
import { EdgeStats } from "../../server/edge_stats.ts";
import { sseAnswer } from "../../server/openai_answers.ts";
import { COMPLETION_SHAPE } from "../../server/openai_shapes.ts";
import { eventually } from "../_helpers/wait.ts";
import { paidFor } from "../proof/_receipt_pay.ts";
import { ManualTimers } from "../protocols/_helpers.ts";
import {
  GossipingWorker as LateCancelNetwork,
  setUpLateCancel,
  WORKER_STAKE,
} from "./_late_cancel.ts";
import { clientJob } from "./_proving_worker.ts";

/**
 * The router's network stand-in, keeping what its validator gossips. With `raiseHeld` set, its
 * connection to the worker asks `inference.get_receipt` with that `held` instead of the router's:
 * the worker then signs over more tokens than the router read (a worker that signs too many).
 */
class GossipingWorker extends LateCancelNetwork {
  raiseHeld?: number;
  override receive(message: NetworkMessage): unknown {
    const answer = super.receive(message);
    const raise = this.raiseHeld;
    if (message.type !== "connection_to" || answer === undefined || raise === undefined) {
      return answer;
    }
    const connection = answer as Connection;
    return new Proxy(connection, {
      get(target, property) {
        if (property === "request") {
          return (type: unknown, body: Record<string, unknown>, options?: unknown) =>
            target.request(
              type as typeof ReceiptRequestMessage,
              (type === ReceiptRequestMessage && body.held !== undefined
                ? { ...body, held: raise }
                : body) as { jobId: string; held?: number },
              options as undefined,
            );
        }
        const value = Reflect.get(target, property, target);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
  }
}

/** Router, worker (serving its peers with its prover, so it cuts finished jobs) and a third ledger. */
function setUp(label: string) {
  return setUpLateCancel({
    name: `cut-floor-${label}`,
    cuts: true,
    network: new GossipingWorker(),
  });
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

function textOfSse(raw: string): string {
  let text = "";
  for (const line of raw.split("\n")) {
    if (!line.startsWith("data: ") || line === "data: [DONE]") continue;
    for (const choice of JSON.parse(line.slice(6)).choices ?? []) text += choice.text ?? "";
  }
  return text;
}

/** The router's announced receipt handed to the third ledger, both windows closed. */
async function settleBoth(t: Awaited<ReturnType<typeof setUp>>, routed: TextJob) {
  await eventually(() => t.network.announced.length === 1, "the cut assigned");
  const { receipt, assignment } = t.network.announced[0];
  await t.third.ask<ReceiptHandled>({
    type: "receipt",
    receipt,
    job: routed,
    assignment,
    origin: toHex(t.router.publicKey),
  });
  await eventually(
    async () => (await t.reads.record(receiptId(receipt))) !== undefined,
    "the cut in the router's ledger",
  );
  await t.reads.closeWindow();
  await t.third.ask({ type: "finalize" });
  return receipt;
}

Deno.test("a running job's SSE client goes away while its edge holds a stop's start: the worker signs over its floor (the events the router read and credited), and the router assigns it: the worker is paid that count in the router's ledger and a third, the client is told usage k and handed no receipt", async () => {
  const maxTokens = 24; // more than the worker sends without further credit: it is still running
  const t = await setUp("sse");
  try {
    // The job's tokens (same job, same seed), to build a stop that tokens 6 … 9 start.
    const learn = await t.port.submit(clientJob("cut-floor-learn", maxTokens));
    const texts: string[] = [];
    for await (const token of learn.tokens) texts.push(token.text);
    const learnt = (await learn.done).receipt as Receipt;
    await eventually(() => t.network.announced.length === 1, "the first job's receipt assigned");
    t.network.announced.length = 0;
    const shown = 6;
    const held = 4;
    const stop = texts.slice(shown, shown + held).join("") + "\u0007never";
    const job: TextJob = {
      ...clientJob("cut-floor-sse", maxTokens),
      params: { ...clientJob("x", maxTokens).params, stop: [stop] },
    };
    const handle = await t.port.submit(job);
    const gate = gated(handle, shown + held);
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
      if (next.done) throw new Error("the stream ended early");
      raw += decoder.decode(next.value);
    }
    // The next event: the edge reads tokens 6 … 9 (held as the stop's start), then waits.
    const pending = body.read().catch(() => undefined);
    await eventually(() => gate.taken() === shown + held, "the edge to read the held tokens");
    await body.cancel(); // the client goes away
    await pending;
    assert.equal(textOfSse(raw), want);

    const summary = await handle.done;
    assert.equal(summary.finishReason, "cancelled");
    assert.equal(summary.usage.completionTokens, shown, "the client is told the tokens it got");
    assert.equal(summary.receipt, undefined, "the client was handed a receipt over text it lacks");
    const routed: TextJob = { ...job, requester: toHex(t.router.publicKey) };
    const cut = await settleBoth(t, routed);
    assert.equal(cut.end, "cancelled");
    // The floor: past the client's count (the router read and credited more), within what it read.
    assert.ok(cut.tokenCount > shown, `the worker signed ${cut.tokenCount}, no floor above k`);
    assert.ok(cut.tokenCount <= shown + held, `the worker signed ${cut.tokenCount}`);
    const text = texts.slice(0, cut.tokenCount).join("");
    assert.ok(verifyReceipt(cut, { job: routed, worker: t.worker.publicKey, output: text }).ok);
    const routerAccount = await t.reads.account(t.worker.publicKey);
    assert.equal(routerAccount.balance, paidFor(learnt) + paidFor(cut), "the router's ledger");
    const thirdAccount = await t.thirdReads.account(t.worker.publicKey);
    assert.equal(thirdAccount.balance, paidFor(cut), "the third ledger");
    for (const reads of [t.reads, t.thirdReads]) {
      const account = await reads.account(t.worker.publicKey);
      assert.equal(account.stake, WORKER_STAKE, "the worker was slashed");
      assert.equal(account.locked, 0);
      const record = await reads.record(receiptId(cut));
      assert.equal(record?.credit, paidFor(cut));
      assert.equal(record?.requester, toHex(t.router.publicKey), "the router bears the count");
    }
  } finally {
    await t.close();
  }
});

Deno.test("a cancelled receipt over more tokens than the router's reader took is dropped: nobody is paid, the client is told its own count", async () => {
  const maxTokens = 8; // few: the worker finishes within the credit window
  const t = await setUp("over-read");
  try {
    // Every ask for the receipt names all but the last token: the worker signs over 7.
    t.network.raiseHeld = maxTokens - 1;
    const job = clientJob("cut-floor-over", maxTokens);
    const handle = await t.port.submit(job);
    const reader = handle.tokens.getReader();
    // The router's reader takes 4; its client names 2 (its edge held 2 back).
    const read = 2;
    for (let i = 0; i < read + 2; i++) assert.ok(!(await reader.read()).done);
    // The worker finishes meanwhile, its last tokens unread here.
    await eventually(() => t.served.done.length === 1, "the worker to take the job");
    assert.equal((await t.served.done[0]).finishReason, "length");
    await reader.cancel(new HeldCancelError(read, "I hold two tokens"));
    const summary = await handle.done;
    assert.equal(summary.finishReason, "cancelled");
    assert.equal(summary.usage.completionTokens, read);
    assert.equal(summary.receipt, undefined);
    // Dropped unchecked, as before: not held against the worker (its floor may count an event's
    // tokens this side took off the connection and had not relayed yet).
    assert.equal(summary.error, undefined);
    assert.deepEqual(t.network.avoided, []);
    // The worker's cut over 7, more than the router read (4), was never assigned.
    const answer = await t.network.connection!.request(ReceiptRequestMessage, {
      jobId: summary.jobId,
      held: maxTokens - 1,
    });
    const cut = answer.receipt as Receipt | null;
    assert.ok(cut !== null && cut.tokenCount > read + 2, "the worker signed over more than read");
    assert.equal(cut.end, "cancelled");
    await t.reads.closeWindow();
    await t.third.ask({ type: "finalize" });
    assert.equal(t.network.announced.length, 0, "a receipt over more than was read assigned");
    for (const reads of [t.reads, t.thirdReads]) {
      const account = await reads.account(t.worker.publicKey);
      assert.equal(account.balance, 0, "the worker was paid for tokens nobody read");
      assert.equal(account.stake, WORKER_STAKE);
      assert.equal(account.locked, 0);
      assert.equal(await reads.record(receiptId(cut)), undefined);
    }
  } finally {
    await t.close();
  }
});
