/**
 * What the training validator holds of peers' fraud proofs outlives a stop and start of it, and
 * its intake runs on the validator's clock, not the wall's:
 *
 * - the unbacked checks a receipt has spent (`actors/_unbacked_checks.ts`, 3 per receipt) were
 *   memory only: each start granted every receipt 3 more, so a 4th false proof after a restart
 *   was re-run here and cost its accuser its stake;
 * - a proof held for a receipt not recorded yet was memory only: a restart between the proof and
 *   the receipt lost it, and this ledger paid the lazy trainer every other ledger slashed;
 * - the intake compared the receipt's `pendingUntil` (ledger clock) with `Date.now()`: on a clock
 *   behind the wall's, an unbacked proof about an open receipt was refused as past its window;
 * - a proof taken up from either hold (its receipt recorded, its accuser's pledge come) and being
 *   checked, or waiting in the mailbox, at a stop was in neither hold nor on disk: lost, and this
 *   ledger paid the lazy trainer (now kept in `taken-training-proofs/` until it settles);
 * - a peer's proof whose settlement the ledger did not answer (its write failed, the
 *   ValidatorActor crashed and was restarted) was dropped: nobody settled it here;
 * - a copy of a proof under a wrong architecture, its check under way, made the genuine copy
 *   that came meanwhile be dropped as a duplicate: the bad copy then failed, and nobody settled.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { MAX_UNBACKED_CHECKS_PER_RECEIPT } from "../../actors/_unbacked_checks.ts";
import { Ledger } from "../../proof/ledger.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { decodeCbor, encodeCanonical } from "../../protocols/cbor.ts";
import { Identity } from "../../protocols/identity.ts";
import { drawTrainingChallenge } from "../../training/training_challenge.ts";
import {
  signTrainingFraudProof,
  type TrainingFraudProof,
} from "../../training/training_fraud_proof.ts";
import { trainingReceiptId } from "../../training/training_receipt.ts";
import { eventually } from "../_helpers/wait.ts";
import { type LedgerNode, onLedgerNode } from "./_gated_ledger_node.ts";
import { TEST_ARCH } from "./_fixtures.ts";
import { LAZY_TRAINER_STAKE, lossFraud } from "./_loss_fraud.ts";

const PENALTY = DEFAULT_ECONOMICS.falseAccusationPenalty;
const WINDOW = DEFAULT_ECONOMICS.challengeWindowMs;

/** A fresh accuser, pledged `stake` at `node` if given, and its valid proof of a lazy receipt. */
async function accusation(node: LedgerNode, stake?: number) {
  const accuser = Identity.generate();
  if (stake !== undefined) await node.pledge(accuser, stake);
  return { accuser, proof: lossFraud(node.model.cid, accuser, 8) };
}

/** `proof` sent to `node` before its receipt: held for it. */
async function assertHeldForReceipt(node: LedgerNode, proof: TrainingFraudProof): Promise<void> {
  assert.deepEqual(await node.send(proof), {
    queued: false,
    skipped: "receipt_unknown",
    held: true,
  });
}

/** A false accusation of `lazy`'s receipt by `accuser`, refuted without a re-run. */
function falseProof(lazy: TrainingFraudProof, accuser: Identity): TrainingFraudProof {
  const { sig: _sig, validator: _validator, opening: _opening, ...unsigned } = lazy;
  return signTrainingFraudProof({
    ...unsigned,
    reason: "opening_missing",
    challenge: drawTrainingChallenge(lazy.receipt, accuser),
    issuedAt: Date.now(),
  }, accuser);
}

/** The lazy trainer of `proof` slashed and unpaid in `node`'s ledger, its window closed. */
async function assertSlashed(
  node: LedgerNode,
  proof: TrainingFraudProof,
): Promise<void> {
  const id = trainingReceiptId(proof.receipt);
  await eventually(async () => (await node.status(id)) === "fraud", "the proof to settle", {
    timeoutMs: 5_000,
  }).catch(() => undefined);
  await node.closeWindow();
  assert.equal(await node.status(id), "fraud", "the lazy trainer convicted here too");
  const trainer = await node.account(proof.receipt.trainer);
  assert.ok(trainer.stake < LAZY_TRAINER_STAKE, "its stake slashed");
  assert.equal(trainer.balance, 0, "and it is not paid");
  assert.ok((await node.account(proof.validator)).balance > 0, "its accuser rewarded");
}

Deno.test("a receipt's unbacked training proof checks stay spent across a restart of the training validator: a 4th false proof after it is skipped and its accuser keeps its stake", () =>
  onLedgerNode("unbacked-restart", async (node) => {
    const lazy = lossFraud(node.model.cid, Identity.generate(), 8);
    const id = trainingReceiptId(lazy.receipt);
    await node.recordLazy(lazy);
    const short = Array.from({ length: MAX_UNBACKED_CHECKS_PER_RECEIPT + 1 }, Identity.generate);
    for (const key of short) await node.pledge(key, PENALTY / 2);
    for (const key of short.slice(0, -1)) {
      assert.deepEqual(await node.send(falseProof(lazy, key)), { queued: true });
    }
    await eventually(
      async () => (await node.checked()) === MAX_UNBACKED_CHECKS_PER_RECEIPT,
      "the unbacked checks",
    );

    await node.restartTraining();
    const last = short.at(-1)!;
    const intake = await node.send(falseProof(lazy, last));
    // Let a wrongly queued check settle before looking at the stake.
    await eventually(
      async () => (await node.checked()) > 0 || (await node.account(last.publicKey)).stake === 0,
      "a wrongly queued check",
      { timeoutMs: 1_000 },
    ).catch(() => undefined);

    assert.equal((await node.account(last.publicKey)).stake, PENALTY / 2, "its stake untouched");
    assert.equal(await node.checked(), 0, "nothing re-run after the restart");
    assert.deepEqual(intake, { queued: false, skipped: "unstaked_accuser" });
    assert.equal(await node.status(id), "pending", "false proofs convict nobody");
  }));

Deno.test("a training fraud proof held for a receipt not recorded yet survives a restart of the training validator: the receipt after it is still slashed and the accuser paid", () =>
  onLedgerNode("receipt-held-restart", async (node) => {
    const { accuser, proof } = await accusation(node, 10 * PENALTY);
    await assertHeldForReceipt(node, proof);
    await node.restartTraining();
    await node.recordLazy(proof);
    await assertSlashed(node, proof);
    assert.equal((await node.account(accuser.publicKey)).stake, 10 * PENALTY, "charged nothing");
    assert.equal(await node.checked(), 1, "re-run once, after the receipt");
  }));

Deno.test("a training fraud proof held for its receipt is kept on disk before any stop, and one read back is re-verified: a forged copy is dropped", () =>
  onLedgerNode("receipt-held-kept", async (node, dir) => {
    const { proof } = await accusation(node, 10 * PENALTY);
    const forged = { ...proof, issuedAt: proof.issuedAt + 1 };
    await assertHeldForReceipt(node, proof);
    const kept = join(dir, "ledger", "receipt-held-training-proofs");
    // Written files only: a write in progress is a `.tmp` beside them (`writeFileDurably`).
    const names = () =>
      Array.fromAsync(Deno.readDir(kept)).then(
        (es) => es.map((e) => e.name).filter((n) => n.endsWith(".cbor")),
        () => [],
      );
    await eventually(async () => (await names()).length === 1, "the held proof kept", {
      timeoutMs: 5_000,
    });
    // A forged copy beside it on disk: not trusted, dropped at the start.
    const [name] = await names();
    const bytes = await Deno.readFile(join(kept, name));
    const entry = decodeCbor(bytes) as { body: { proof: TrainingFraudProof } };
    entry.body.proof = forged;
    await Deno.writeFile(join(kept, `${"ab".repeat(32)}.cbor`), encodeCanonical(entry));

    await node.restartTraining();
    await eventually(async () => (await names()).length === 1, "the forged copy dropped", {
      timeoutMs: 5_000,
    });
    await node.recordLazy(proof);
    await assertSlashed(node, proof);
    assert.equal(await node.checked(), 1, "only the genuine proof re-run");
    await eventually(async () => (await names()).length === 0, "taken up: no longer kept", {
      timeoutMs: 5_000,
    });
  }));

Deno.test("the training intake judges a receipt's window on the validator's clock, not the wall's: on a clock behind it, an unbacked valid proof of an open receipt still slashes the lazy trainer", () =>
  // The node's clock two windows behind the wall's: every receipt's window ends before Date.now().
  onLedgerNode("intake-clock", async (node) => {
    const { proof } = await accusation(node, PENALTY / 2);
    await node.recordLazy(proof);
    assert.deepEqual(await node.send(proof), { queued: true }, "checked unbacked");
    await assertSlashed(node, proof);
  }, Date.now() - 2 * WINDOW));

Deno.test("a training fraud proof taken up from its receipt hold and being checked when the training validator stops is kept and settled after the restart: the lazy trainer slashed", () =>
  onLedgerNode("taken-receipt-restart", async (node) => {
    const { accuser, proof } = await accusation(node, 10 * PENALTY);
    await assertHeldForReceipt(node, proof);
    const check = node.models.gate();
    await node.recordLazy(proof);
    await check.entered; // taken up from the hold, its check under way
    await node.restartTraining();
    check.open();
    await assertSlashed(node, proof);
    assert.equal((await node.account(accuser.publicKey)).stake, 10 * PENALTY, "charged nothing");
  }));

Deno.test("a training fraud proof taken up from its pledge hold and being checked when the training validator stops is kept and settled after the restart: the lazy trainer slashed", () =>
  onLedgerNode("taken-pledge-restart", async (node) => {
    const { accuser, proof } = await accusation(node);
    await node.recordLazy(proof);
    assert.deepEqual(await node.send(proof), {
      queued: false,
      skipped: "unstaked_accuser",
      awaitingPledge: true,
    });
    const check = node.models.gate();
    await node.pledge(accuser, 10 * PENALTY);
    await check.entered; // taken up at the recheck after the pledge, its check under way
    await node.restartTraining();
    check.open();
    await assertSlashed(node, proof);
  }));

Deno.test("a copy of a training fraud proof under a wrong architecture, its check under way, does not shut out the genuine copy that comes meanwhile: the lazy trainer slashed", () =>
  onLedgerNode("bad-arch-copy", async (node) => {
    const { proof } = await accusation(node, 10 * PENALTY);
    await node.recordLazy(proof);
    const check = node.models.gate();
    // A relay's copy: the same signed proof, the unsigned architecture beside it changed.
    const bad = await node.training().ask<Record<string, unknown>>({
      type: "fraud_proof",
      body: { proof, arch: { ...TEST_ARCH, numHeads: 4 } },
      origin: "dd".repeat(32),
    });
    assert.deepEqual(bad, { queued: true });
    await check.entered;
    await node.send(proof); // the genuine copy, while the bad one's check is under way
    check.open();
    await assertSlashed(node, proof);
    assert.equal(await node.checked(), 1, "the genuine copy re-run once");
  }));

Deno.test("a peer's training fraud proof whose settlement crashed the ledger (a failed write) is settled again once the ledger is back: the lazy trainer slashed", () =>
  onLedgerNode("taken-settle-fails", async (node) => {
    const settle = Ledger.prototype.settleTrainingFraud;
    try {
      const { proof } = await accusation(node, 10 * PENALTY);
      await node.recordLazy(proof);
      let failures = 0;
      // The first settlement's write fails as a disk does: the ValidatorActor crashes, restarts.
      Ledger.prototype.settleTrainingFraud = function () {
        Ledger.prototype.settleTrainingFraud = settle;
        failures++;
        return Promise.reject(Object.assign(new Error("Input/output error (simulated)"), {
          code: "EIO",
        }));
      };
      assert.deepEqual(await node.send(proof), { queued: true });
      await assertSlashed(node, proof);
      assert.equal(failures, 1, "the first settlement failed");
    } finally {
      Ledger.prototype.settleTrainingFraud = settle;
    }
  }));
