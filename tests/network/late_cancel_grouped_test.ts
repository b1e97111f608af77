/**
 * Late cancels where the worker's events carry several tokens (`tokensPerEvent`, 8 by default):
 * the router's connection takes an event whole, and its reader hands its tokens on one by one, so
 * at a client's cancel this side has taken tokens off the worker's connection that its reader
 * never read (stop 81 left open). The worker counts them read: a stream taken to its end was read
 * whole (it answers its finished receipt, never cut: review s81 vcancel F1), and a cancel's floor
 * counts every token of the events it gave credit back for (`CancelSeen`, vcancel F2). The router
 * reads those tokens at the cancel, checks the receipt over their text and pays it, and the client
 * is told and charged its own count: before, the receipt over more than the reader had read was
 * dropped, and the worker was paid nothing for the k tokens its client got.
 *
 * Router, worker and a third ledger in memory (`_late_cancel.ts`, `grouped`: the worker's events
 * are filled on a clock that never moves, so which tokens travel together is fixed).
 *
 * @module
 */
import assert from "node:assert/strict";
import type { ReceiptHandled } from "../../actors/validator_actor.ts";
import { toHex } from "../../protocols/hash.ts";
import type { TextJob } from "../../protocols/job.ts";
import { type Receipt, receiptId, verifyReceipt } from "../../protocols/receipt.ts";
import { eventually } from "../_helpers/wait.ts";
import { paidFor } from "../proof/_receipt_pay.ts";
import { GossipingWorker, setUpLateCancel, WORKER_STAKE } from "./_late_cancel.ts";
import { clientJob } from "./_proving_worker.ts";

/** Tokens per event: the worker's events after the first hold this many. */
const GROUPED = 8;

function setUp(label: string) {
  return setUpLateCancel({
    name: `late-grouped-${label}`,
    cuts: true,
    network: new GossipingWorker(),
    grouped: GROUPED,
  });
}

/**
 * Submit a job of `maxTokens`, read `read` tokens, wait for the worker to finish it, cancel
 * (the client holds the tokens it read). The job's text, read whole beforehand by another
 * client (same job, same seed), to check the receipt against.
 */
async function cancelAt(t: Awaited<ReturnType<typeof setUp>>, maxTokens: number, read: number) {
  const learn = await t.port.submit(clientJob(`learn-${maxTokens}`, maxTokens));
  const texts: string[] = [];
  for await (const token of learn.tokens) texts.push(token.text);
  const learnt = (await learn.done).receipt as Receipt;
  assert.equal(learnt.tokenCount, maxTokens);
  await eventually(() => t.network.announced.length === 1, "the first job's receipt assigned");
  t.network.announced.length = 0;

  const job = clientJob(`grouped-${maxTokens}`, maxTokens);
  const handle = await t.port.submit(job);
  const reader = handle.tokens.getReader();
  for (let i = 0; i < read; i++) assert.ok(!(await reader.read()).done);
  await eventually(() => t.served.done.length === 2, "the worker to take the job");
  const finished = (await t.served.done[1]).receipt as Receipt;
  assert.equal(finished.tokenCount, maxTokens, "the worker did not finish the job first");
  await reader.cancel();
  const summary = await handle.done;
  const routed: TextJob = { ...job, requester: toHex(t.router.publicKey) };
  return { summary, texts, learnt, finished, routed };
}

/** The router's assigned receipt handed to the third ledger, both windows closed. */
async function settleBoth(t: Awaited<ReturnType<typeof setUp>>, routed: TextJob) {
  await eventually(() => t.network.announced.length === 1, "the receipt assigned");
  const { receipt, assignment } = t.network.announced[0];
  await t.third.ask<ReceiptHandled>({
    type: "receipt",
    receipt,
    job: routed,
    assignment,
    origin: toHex(t.router.publicKey),
  });
  await t.reads.closeWindow();
  await t.third.ask({ type: "finalize" });
  return receipt;
}

/** Paid `receipt` (and `before` in the router's ledger), nobody slashed, the router charged. */
async function assertPaid(t: Awaited<ReturnType<typeof setUp>>, receipt: Receipt, before: number) {
  for (const [reads, earlier] of [[t.reads, before], [t.thirdReads, 0]] as const) {
    const account = await reads.account(t.worker.publicKey);
    assert.equal(account.balance, earlier + paidFor(receipt), "the worker is not paid");
    assert.equal(account.stake, WORKER_STAKE, "the worker was slashed");
    assert.equal(account.locked, 0);
    assert.equal((await reads.stats()).slashes, 0);
    const record = await reads.record(receiptId(receipt));
    assert.equal(record?.credit, paidFor(receipt));
    assert.equal(record?.requester, toHex(t.router.publicKey), "the router bears the count");
  }
  assert.deepEqual(t.network.avoided, [], "the honest worker was kept off the model");
}

Deno.test("a client cancels at k after the router's connection took the worker's stream to its end (its last event, several tokens, unread here): the worker answers its finished receipt, the router checks it over the text it took and assigns it, so the worker is paid n in the router's ledger and a third, and the client is told usage k and handed no receipt", async () => {
  const t = await setUp("drained");
  try {
    // Events [0] and [1 … 7]: reading token 1 takes the last event, the job's end behind it.
    const maxTokens = GROUPED;
    const read = 2;
    const { summary, texts, learnt, finished, routed } = await cancelAt(t, maxTokens, read);
    assert.equal(summary.finishReason, "cancelled");
    assert.equal(summary.usage.completionTokens, read, "the client is told the tokens it got");
    assert.equal(summary.receipt, undefined, "the client was handed a receipt over text it lacks");
    assert.equal(summary.error, undefined);
    const paid = await settleBoth(t, routed);
    assert.equal(receiptId(paid), receiptId(finished), "not the finished receipt assigned");
    assert.ok(
      verifyReceipt(paid, { job: routed, worker: t.worker.publicKey, output: texts.join("") }).ok,
    );
    await assertPaid(t, paid, paidFor(learnt));
  } finally {
    await t.close();
  }
});

Deno.test("a client cancels at k while the router's reader has read part of an event: the worker signs over its floor (every token of the events its connection gave credit back for), the router reads the rest of those events, checks the cut over it and assigns it: the worker is paid that count in the router's ledger and a third, and the client is told usage k", async () => {
  const t = await setUp("floor");
  try {
    // Events [0], [1 … 8], [9 … 16], [17 … 24], [25 … 31]: reading token 9 takes [9 … 16], the
    // stream's fourth event (its start counted), and the router's connection gives credit back
    // for the four at once (half its window of 8): the worker's floor is 17, 7 past the reader.
    const maxTokens = 4 * GROUPED;
    const read = 2 + GROUPED;
    const { summary, texts, learnt, routed } = await cancelAt(t, maxTokens, read);
    assert.equal(summary.finishReason, "cancelled");
    assert.equal(summary.usage.completionTokens, read, "the client is told the tokens it got");
    assert.equal(summary.receipt, undefined, "the client was handed a receipt over text it lacks");
    assert.equal(summary.error, undefined);
    const cut = await settleBoth(t, routed);
    assert.equal(cut.end, "cancelled");
    assert.equal(cut.tokenCount, 1 + 2 * GROUPED, "not the floor: the events credited back");
    const text = texts.slice(0, cut.tokenCount).join("");
    assert.ok(verifyReceipt(cut, { job: routed, worker: t.worker.publicKey, output: text }).ok);
    await assertPaid(t, cut, paidFor(learnt));
  } finally {
    await t.close();
  }
});
