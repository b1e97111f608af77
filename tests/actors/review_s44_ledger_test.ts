/**
 * Review (stop 44) of how the ValidatorActor drives the ledger's money: each test asserts the
 * balances the order of events leaves, not only what the calls return. The set-up (a validator
 * whose checks can be held, a staked worker and accuser, one recorded receipt) is
 * `_held_receipt_fixture.ts`.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { FraudProofHandled } from "../../actors/validator_messages.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { validateReceipt } from "../../proof/validation.ts";
import { f, falseProof, START } from "./_validator_fixture.ts";
import { STAKE, withHeldReceipt } from "./_held_receipt_fixture.ts";

Deno.test("review s44: a peer's fraud proof taken inside the window slashes the cheat even when its check ends after the window closed; the cheat is never paid meanwhile", () =>
  withHeldReceipt("checked-across-the-window", true, async (held) => {
    const { validator, ledger, clock, slow, worker, accuser, job, proved, id, rec } = held;
    const { fraudProof } = await validateReceipt(
      { job, receipt: proved.receipt, proof: proved.proof },
      f.honest,
      accuser,
      { now: () => START },
    );
    assert.ok(fraudProof, "the cheat is caught by the accuser");
    // The proof arrives a moment before the window closes, and is taken; its check is slow (a
    // queue of checks, a model to load).
    clock.t = rec.pendingUntil - 1;
    slow.hold();
    const taken = await validator.ask<FraudProofHandled>({
      type: "fraud_proof",
      proof: fraudProof,
      origin: "ab".repeat(32),
    });
    assert.equal(taken.queued, true, "taken inside the window");
    // The window closes while it is being checked: the finalize tick comes.
    clock.t = rec.pendingUntil + 1;
    await validator.ask({ type: "finalize" });
    slow.release();
    await taken.result;
    clock.t += DEFAULT_ECONOMICS.challengeWindowMs;
    await validator.ask({ type: "finalize" });
    const account = await ledger.account(worker.publicKey);
    assert.equal(account.balance, 0, "the caught cheat is not paid");
    assert.equal(account.stake, STAKE - rec.locked, "and loses its locked stake");
    assert.equal((await ledger.record(id))?.status, "fraud");
    assert.equal(
      (await ledger.account(accuser.publicKey)).balance,
      rec.locked * DEFAULT_ECONOMICS.validatorRewardShare,
      "its finder is rewarded as in every ledger that checked it sooner",
    );
  }));

Deno.test("review s44: an honest receipt held back while a false proof taken inside its window is checked is paid at the next tick, and the accuser pays", () =>
  withHeldReceipt("held-then-paid", false, async (held) => {
    const { validator, ledger, clock, slow, worker, accuser, proved, id, rec } = held;
    clock.t = rec.pendingUntil - 1;
    slow.hold();
    const taken = await validator.ask<FraudProofHandled>({
      type: "fraud_proof",
      proof: falseProof(proved.receipt, accuser),
      origin: "ab".repeat(32),
    });
    assert.equal(taken.queued, true);
    clock.t = rec.pendingUntil + 1;
    assert.deepEqual(await validator.ask({ type: "finalize" }), [], "not paid while checked");
    slow.release();
    await taken.result;
    assert.deepEqual(await validator.ask({ type: "finalize" }), [id], "paid once refuted");
    assert.equal((await ledger.account(worker.publicKey)).balance, rec.credit);
    assert.equal(
      (await ledger.account(accuser.publicKey)).stake,
      STAKE - DEFAULT_ECONOMICS.falseAccusationPenalty,
    );
  }));

Deno.test("review s44: a receipt held for a peer's proof whose check never reports is paid once the hold lapses", () =>
  withHeldReceipt("held-never-checked", false, async (held) => {
    const { validator, ledger, clock, slow, worker, accuser, proved, id, rec } = held;
    clock.t = rec.pendingUntil - 1;
    slow.hold(); // and released only at the end: the check never reports meanwhile
    const taken = await validator.ask<FraudProofHandled>({
      type: "fraud_proof",
      proof: falseProof(proved.receipt, accuser),
      origin: "ab".repeat(32),
    });
    assert.equal(taken.queued, true);
    clock.t = rec.pendingUntil + 1;
    assert.deepEqual(await validator.ask({ type: "finalize" }), [], "held while checked");
    clock.t = rec.pendingUntil + 3 * DEFAULT_ECONOMICS.challengeWindowMs;
    assert.deepEqual(await validator.ask({ type: "finalize" }), [id], "paid once the hold lapsed");
    assert.equal((await ledger.account(worker.publicKey)).balance, rec.credit);
    slow.release();
    await taken.result?.catch(() => {});
  }));
