// deno-lint-ignore-file no-explicit-any -- the test patches a method to play a cheating worker
/**
 * A worker that ignores the `tokensPerEvent` its requester asked for (the router asks 1, it sends
 * 16 per event, which the wire allows: `MAX_TOKENS_PER_EVENT`) breaks the stream: `RemoteJob`
 * refuses the event (`inference_stream_invalid`, the worker's fault, failed over as any broken
 * stream): its client keeps the one token that came alone, and the worker is paid nothing. Before, the router took the extra tokens off the
 * connection, counted them received at its client's early cancel (`#takeReceived`,
 * `network/failover.ts`) and paid the worker's finished receipt over all 16 for a client that got
 * 2 (review s82 vdrain, F2). An honest worker, sending what was asked, is paid the 2 its client
 * read, and its client is billed 2.
 *
 * Router, worker and a third ledger in memory (`_late_cancel.ts`).
 *
 * @module
 */
import assert from "node:assert/strict";
import { Connection } from "../../protocols/connection.ts";
import { SubmitMessage } from "../../protocols/inference_messages.ts";
import { toHex } from "../../protocols/hash.ts";
import { type Receipt, receiptId } from "../../protocols/receipt.ts";
import { VeriflowError } from "../../protocols/errors.ts";
import { eventually } from "../_helpers/wait.ts";
import { paidFor } from "../proof/_receipt_pay.ts";
import { GossipingWorker, setUpLateCancel } from "./_late_cancel.ts";
import { clientJob } from "./_proving_worker.ts";

const MAX_TOKENS = 16;
/** Tokens the client reads before it cancels. */
const READ = 2;

/**
 * Router (asking 1 token per event) and worker; `cheat`: the worker serves 16 per event instead,
 * whatever the router asked.
 */
async function setUp(label: string, cheat: boolean) {
  const proto = Connection.prototype as any;
  const original = proto.handle;
  if (cheat) {
    proto.handle = function (this: unknown, def: unknown, handler: any) {
      if (def !== SubmitMessage) return original.call(this, def, handler);
      return original.call(
        this,
        def,
        (body: any, ctx: unknown) => handler({ ...body, tokensPerEvent: 16, gatherMs: 1 }, ctx),
      );
    };
  }
  try {
    return await setUpLateCancel({
      name: `oversized-${label}`,
      cuts: true,
      network: new GossipingWorker(),
      grouped: 1, // the router asks tokensPerEvent 1
    });
  } finally {
    proto.handle = original;
  }
}

Deno.test("an honest worker sending the events asked for is paid what its client read at an early cancel", async () => {
  const t = await setUp("honest", false);
  try {
    const handle = await t.port.submit(clientJob("oversized-honest", MAX_TOKENS));
    const reader = handle.tokens.getReader();
    for (let i = 0; i < READ; i++) assert.ok(!(await reader.read()).done);
    await reader.cancel();
    const summary = await handle.done;
    assert.equal(summary.usage.completionTokens, READ);
    await eventually(() => t.network.announced.length === 1, "the receipt assigned");
    const paid = t.network.announced[0].receipt;
    assert.equal(paid.tokenCount, READ);
    assert.equal(paid.end, "cancelled");
    await t.reads.closeWindow();
    const record = await t.reads.record(receiptId(paid));
    assert.equal(record?.credit, paidFor(paid));
    assert.equal(record?.requester, toHex(t.router.publicKey));
    assert.equal((await t.reads.account(t.worker.publicKey)).balance, paidFor(paid));
  } finally {
    await t.close();
  }
});

Deno.test("a worker that packs 16 tokens into an event where 1 was asked breaks the stream and is paid nothing", async () => {
  const t = await setUp("cheat", true);
  try {
    const handle = await t.port.submit(clientJob("oversized-cheat", MAX_TOKENS));
    const reader = handle.tokens.getReader();
    // Its first token comes alone (the worker gathers behind it); its next event carries the
    // job's other 15: refused, and no other worker to fail over to.
    assert.ok(!(await reader.read()).done);
    const failed = await reader.read().then(() => undefined, (error) => error);
    assert.ok(failed instanceof VeriflowError, `the read failed: ${failed}`);
    assert.equal(failed.code, "inference_stream_invalid");
    assert.match(failed.message, /15 tokens, where 1 at most were asked for/);
    const summary = await handle.done;
    assert.equal(summary.finishReason, "error");
    assert.equal(summary.usage.completionTokens, 1, "the client got the one token relayed");
    // The worker ran the job to its end: its finished receipt exists, and goes unpaid, as a
    // broken stream's does.
    await eventually(() => t.served.done.length === 1, "the worker's job");
    const finished = (await t.served.done[0]).receipt as Receipt;
    assert.equal(finished.tokenCount, MAX_TOKENS);
    await t.reads.closeWindow();
    assert.equal(t.network.announced.length, 0, "no receipt assigned");
    assert.equal(await t.reads.record(receiptId(finished)), undefined);
    assert.equal((await t.reads.account(t.worker.publicKey)).balance, 0);
  } finally {
    await t.close();
  }
});
