/**
 * What a job that failed over tells its client and pays for when the worker it lost sent text the
 * token ids it signed do not decode to (`network/failover.ts`, the takeover's `resumedText`), and
 * which prompt count the client is told after a failover (review s81 failover F1, F2).
 *
 * Workers are in-memory connections that write scripted `inference.event`s
 * (`_scripted_worker_fixture.ts`); the router's validator is a recorder: a receipt it is handed
 * with the router's assignment is what credits a worker in the ledger, a stream claim is what
 * asks a replay of a worker's signed stream.
 */
import assert from "node:assert/strict";
import type { ValidatorMessage } from "../../actors/validator_actor.ts";
import type { JobAssignment } from "../../protocols/assignment.ts";
import { toHex } from "../../protocols/hash.ts";
import type { InferenceEvent } from "../../protocols/inference_messages.ts";
import { parseReceipt } from "../../protocols/receipt.ts";
import type { StreamClaim } from "../../protocols/stream_commitment.ts";
import { jobFor, type TestWorker, TEXT, TOKENS } from "./_hostile_worker_fixture.ts";
import {
  crashingWith,
  crashingWorker,
  endEvent,
  events,
  receiptFor,
  router,
  run,
  scriptedWorker,
  start,
  wireToken,
} from "./_scripted_worker_fixture.ts";

/**
 * An honest worker: runs each job from where it is asked to resume, its start saying the
 * prefix's text as it decodes the ids (`resumedText`), to its end and its receipt over the
 * whole text.
 */
function honest(): Promise<TestWorker> {
  return scriptedWorker((body, _n, identity) => {
    const k = body.resume?.length ?? 0;
    const resumed = k > 0 ? { resumedFrom: k, resumedText: TEXT.slice(0, k) } : {};
    const list: InferenceEvent[] = [start(body.job, resumed)];
    for (let i = k; i < TOKENS; i++) list.push(wireToken(i));
    list.push(endEvent(body.job, TOKENS - k, receiptFor(body.job, identity, TEXT)));
    return events(list);
  });
}

/**
 * The ledger's input: the worker each receipt the router handed its validator credits, checked to
 * be the worker its assignment names; and the worker of each stream claim.
 */
function ledgerInput(told: ValidatorMessage[]) {
  const credited = told.flatMap((m) => {
    if (m.type !== "receipt") return [];
    assert.equal(toHex((m.assignment as JobAssignment).worker), m.origin, "assigned elsewhere");
    return [m.origin];
  });
  const claimed = told.flatMap((m) =>
    m.type === "stream_claim" ? [toHex((m.claim as StreamClaim).worker)] : []
  );
  return { credited, claimed };
}

// Failed before the fix: the resumer's receipt (over "abcdef") was withheld against the relayed
// "XYcdef" as `output_mismatch`, a stream claim was filed against it, it was asked last, the liar
// was not kept off the model, and the client was told only `receipt_rejected`.
Deno.test("failover relayed text: a lost worker that sent the right ids with made-up text leaves the honest resumer paid for the job, its receipt challenged for sure, no claim against it, the liar paid nothing, and the client told delivered_tokens_diverged", async () => {
  const liar = await crashingWorker([wireToken(0, "X"), wireToken(1, "Y")]);
  const good = await honest();
  const r = await router([liar.toWorker, good.toWorker]);
  try {
    const got = await run(r.port, jobFor("altered-text"), liar);
    assert.deepEqual(good.submissions[0].resume, [97, 98], "the honest worker resumed after 2");
    // The client has every position once; the text it holds is the liar's for the first two.
    assert.deepEqual(got.positions, [0, 1, 2, 3, 4, 5]);
    assert.equal(got.text, "XYcdef");
    assert.equal(got.summary.finishReason, "error");
    assert.equal(got.summary.error?.code, "delivered_tokens_diverged");
    assert.match(got.summary.error?.message ?? "", /from token 0 on/);
    assert.match(got.summary.error?.message ?? "", new RegExp(liar.key.slice(0, 16)));
    // Not the client's receipt: it signs text the client does not hold.
    assert.equal(got.summary.receipt, undefined);
    // The ledger: the honest resumer is credited the job, over the ids' true text; nobody else.
    const { credited, claimed } = ledgerInput(r.recorder.told);
    assert.deepEqual(credited, [good.key], "who is paid");
    assert.deepEqual(claimed, [], "a stream claim was filed");
    const paid = r.recorder.told.find((m) => m.type === "receipt");
    assert.ok(paid?.type === "receipt");
    assert.equal(parseReceipt(paid.receipt).tokenCount, TOKENS);
    // Blame: the resumer's word is checked first (its receipt challenged whatever the coin); this
    // recorder answers no verdict, so the liar is not kept off on that word alone (a `valid`
    // verdict does: `failover_text_dispute_test.ts`, review s81 vfotext F2). The resumer is not
    // asked last for what the liar did.
    assert.equal(paid.challenge, true, "the resumer's receipt was not challenged for sure");
    assert.equal(r.workers.avoided.has(liar.key), false, "the liar was kept off on a word");
    assert.equal(r.workers.avoided.has(good.key), false, "the honest resumer was kept off");
    assert.equal(r.unresumable.askedLast().includes(good.key), false, "resumer asked last");
  } finally {
    await liar.close();
    await good.close();
    await r.system.shutdown();
  }
});

Deno.test("failover relayed text: after an honest lost worker, the resumer's text for the prefix matches what was relayed, and the client gets the job's text with the resumer's receipt", async () => {
  const lost = await crashingWorker([wireToken(0), wireToken(1)]);
  const good = await honest();
  const r = await router([lost.toWorker, good.toWorker]);
  try {
    const got = await run(r.port, jobFor("honest-text"), lost);
    assert.equal(got.text, TEXT);
    assert.equal(got.summary.finishReason, "length");
    assert.equal(got.summary.error, undefined);
    assert.ok(got.summary.receipt !== undefined, "the client did not get the receipt");
    assert.deepEqual(ledgerInput(r.recorder.told), { credited: [good.key], claimed: [] });
    assert.equal(r.workers.avoided.has(lost.key), false, "an honest lost worker was kept off");
  } finally {
    await lost.close();
    await good.close();
    await r.system.shutdown();
  }
});

Deno.test("failover relayed text: a resumer that says the prefix's text is other than what was relayed is paid only if its receipt signs that text: one that signs the relayed text is withheld", async () => {
  // The lost worker was honest; the resumer says "XY" for the prefix but signs "abcdef": its
  // receipt is over other text than its own word, so it is not paid.
  const lost = await crashingWorker([wireToken(0), wireToken(1)]);
  const twoFaced = await scriptedWorker((body, _n, identity) => {
    const k = body.resume?.length ?? 0;
    const list: InferenceEvent[] = [
      start(body.job, k > 0 ? { resumedFrom: k, resumedText: "XY" } : {}),
    ];
    for (let i = k; i < TOKENS; i++) list.push(wireToken(i));
    list.push(endEvent(body.job, TOKENS - k, receiptFor(body.job, identity, TEXT)));
    return events(list);
  });
  const r = await router([lost.toWorker, twoFaced.toWorker]);
  try {
    const got = await run(r.port, jobFor("two-faced"), lost);
    assert.equal(got.text, TEXT);
    assert.equal(got.summary.receipt, undefined);
    assert.equal(got.summary.error?.code, "receipt_rejected");
    assert.deepEqual(ledgerInput(r.recorder.told).credited, [], "a receipt was paid");
    // Its word alone blames nobody: the honest lost worker is not kept off the model.
    assert.equal(r.workers.avoided.has(lost.key), false, "the honest lost worker was kept off");
  } finally {
    await lost.close();
    await twoFaced.close();
    await r.system.shutdown();
  }
});

// Failed before the fix: the client was told 481, the lost worker's inflated count capped by the
// prompt's byte bound, while the receipt paid signs the resumer's 1.
Deno.test("failover relayed text: after a failover the client's usage.promptTokens is the count the paid receipt signs (the resumer's), not the lost worker's", async () => {
  const liar = await crashingWith({ promptTokens: 5_000 }, [wireToken(0), wireToken(1)]);
  const good = await honest();
  const r = await router([liar.toWorker, good.toWorker]);
  try {
    const got = await run(r.port, {
      ...jobFor("inflate-prompt"),
      prompt: "hello world ".repeat(40),
    }, liar);
    assert.equal(got.text, TEXT);
    const { credited } = ledgerInput(r.recorder.told);
    assert.deepEqual(credited, [good.key]);
    const paid = r.recorder.told.find((m) => m.type === "receipt");
    assert.ok(paid?.type === "receipt");
    const signed = parseReceipt(paid.receipt).promptTokens ?? 1;
    assert.equal(got.summary.usage.promptTokens, signed);
    assert.equal(got.summary.usage.promptTokens, 1);
  } finally {
    await liar.close();
    await good.close();
    await r.system.shutdown();
  }
});
