/**
 * A fault settled here (`settleFault`: the worker never served what its challenge asked, the
 * lock burned) and then a peer's confirmed fraud proof about the same receipt inside its window:
 * the accuser earns its share of the slash as on a ledger that did not challenge, and the worker
 * loses the same (review s79, F4). Inference and training receipts, each checked again after a
 * reopen that rebuilds the index from the log.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { Identity } from "../../protocols/identity.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { type Account, Ledger } from "../../proof/ledger.ts";
import { INDEX_FILE } from "../../proof/ledger_index.ts";
import { trainingReceiptId } from "../../training/training_receipt.ts";
import { assigned, receipt, withLedgerDir } from "./_ledger_fixtures.ts";
import { START, trainingReceipt } from "./_training_receipt.ts";

const STAKE = 100_000;

interface Outcome {
  proof: string;
  worker: Account;
  accuser: Account;
}

/**
 * One ledger's end: `kind`'s receipt recorded, faulted here first when `faulted`, then a peer's
 * confirmed proof about it; balances read again after a reopen with the index lost.
 */
function run(kind: "inference" | "training", faulted: boolean): Promise<Outcome> {
  let out: Outcome | undefined;
  return withLedgerDir(async (dir, clock) => {
    const owner = Identity.generate();
    const worker = Identity.generate();
    const accuser = Identity.generate();
    let ledger = await Ledger.open(dir, owner, { now: () => clock.t });
    await ledger.deposit(worker.publicKey, STAKE);
    await ledger.deposit(accuser.publicKey, 1_000);
    const r = receipt(7921, 4, worker);
    const t = trainingReceipt(worker, 1, 2);
    const id = kind === "inference" ? receiptId(r) : trainingReceiptId(t);
    if (kind === "inference") await ledger.recordReceipt(r, assigned(r));
    else await ledger.recordTrainingReceipt(t, { round: 1, startModel: START, steps: 2 });
    if (faulted) {
      await ledger.openChallenge(id);
      await ledger.settleFault(id, owner.publicKey, "proof_unavailable");
      await ledger.close();
      await Deno.remove(join(dir, INDEX_FILE));
      ledger = await Ledger.open(dir, owner, { now: () => clock.t });
    }
    const settlement = {
      receiptId: id,
      fraudProofHash: "c1".repeat(32),
      validator: accuser.publicKey,
      confirmed: true,
      reason: "fingerprint_mismatch",
    };
    let proof = "settled";
    try {
      if (kind === "inference") await ledger.settleFraud({ ...settlement, receipt: r });
      else await ledger.settleTrainingFraud({ ...settlement, trainingReceipt: t });
    } catch (e) {
      proof = (e as { code?: string }).code ?? String(e);
    }
    await ledger.close();
    await Deno.remove(join(dir, INDEX_FILE));
    ledger = await Ledger.open(dir, owner, { now: () => clock.t });
    out = {
      proof,
      worker: ledger.account(worker.publicKey),
      accuser: ledger.account(accuser.publicKey),
    };
    // The same proof again is settled once, whatever came before it.
    assert.equal(
      await (kind === "inference"
        ? ledger.settleFraud({ ...settlement, receipt: r })
        : ledger.settleTrainingFraud({ ...settlement, trainingReceipt: t })).then(
          () => "settled",
          (e) => e.code,
        ),
      "not_pending",
    );
    await ledger.close();
  }).then(() => out!);
}

Deno.test("ledger fault then proof: a peer's confirmed proof after a fault here rewards its accuser as where no fault came first", async () => {
  const elsewhere = await run("inference", false);
  const here = await run("inference", true);
  assert.equal(elsewhere.proof, "settled");
  assert.equal(here.proof, "settled");
  assert.deepEqual(here.accuser, elsewhere.accuser);
  assert.deepEqual(here.worker, elsewhere.worker);
  assert.ok(here.accuser.balance > 0);
});

Deno.test("ledger fault then proof: a training receipt's fault then a confirmed proof rewards its accuser as where no fault came first", async () => {
  const elsewhere = await run("training", false);
  const here = await run("training", true);
  assert.equal(elsewhere.proof, "settled");
  assert.equal(here.proof, "settled");
  assert.deepEqual(here.accuser, elsewhere.accuser);
  assert.deepEqual(here.worker, elsewhere.worker);
  assert.ok(here.accuser.balance > 0);
});
