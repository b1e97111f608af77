/**
 * A validator that is not connected to the worker gets the proof data through the job's
 * requester, which is: V — R — W (V and W never meet). Before the relay, V's challenge ran into
 * its deadline and slashed an honest worker for "withholding" (found by the 1,000-node
 * simulation). A requester that does not hold the receipt relays nothing.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { ReceiptRecord } from "../../proof/ledger.ts";
import { relayLine } from "./_relay_line.ts";

/**
 * The line V — R — W ({@link relayLine}; V's deadline 1.5 s), R holding the receipt or not; V
 * challenges the receipt (passed on by a peer) and its verdict and ledger are read.
 */
async function line(relayHoldsReceipt: boolean) {
  const system = new ActorSystem({ name: "relay-test" });
  const dir = await Deno.makeTempDir();
  const { vValidator, w, id, toV } = await relayLine(system, dir, {
    deadlineMs: 1_500,
    relayHoldsReceipt,
    prompt: "Through the requester",
    nonce: "relay",
  });
  const handled = await toV("ab".repeat(32));
  assert.equal(handled.challenged, true);
  const result = await handled.result!;
  const record = await vValidator.ask<ReceiptRecord>({ type: "receipt_status", receiptId: id });
  const convicted = await vValidator.ask<boolean>({ type: "convicted", key: w.publicKey });
  await system.shutdown();
  await Deno.remove(dir, { recursive: true });
  return { outcome: result.verdict.outcome, reason: result.verdict.reason, record, convicted };
}

Deno.test("a validator not connected to the worker fetches its proof through the job's requester: valid, nobody slashed", async () => {
  const { outcome, record, convicted } = await line(true);
  assert.equal(outcome, "valid");
  assert.equal(record.status, "pending", "cleared: paid when its window closes");
  assert.equal(convicted, false);
});

Deno.test("a requester that does not hold the receipt relays nothing: the proof counts as withheld", async () => {
  const { outcome, reason, convicted } = await line(false);
  assert.equal(outcome, "invalid");
  assert.equal(reason, "proof_unavailable");
  assert.equal(convicted, true);
});
