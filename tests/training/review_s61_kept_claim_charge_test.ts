/**
 * Review s61: a peer's `opening_missing` claim kept because the ledger did not answer its
 * takeover (`training/_claim_takeovers.ts`, kept on disk since stop 60) is read back at the next
 * start and goes through the intake and its check again, as a peer's proof from its claimant.
 *
 * Who pays for the second pass. A claimant short of free stake here (pledged, its stake spent) has
 * its claim checked unbacked, against its receipt's unbacked budget
 * (`actors/_unbacked_checks.ts`: three checks per receipt, ever, kept across a restart). The
 * claim's check was charged there before the stop; read back, the same proof was charged again,
 * and again at each restart the ledger was down for its takeover: after a few, the receipt's
 * budget was spent on one claim, the claim itself was refused (`unstaked_accuser`), nothing took
 * it over, and the withholding trainer, convicted in every ledger that took the claim over, was
 * paid in this one. The taken proofs kept on disk are not counted twice
 * (`TakenTrainingProofs.lessKept`); the kept claims were.
 *
 * And what passing it on again costs the peers: a receiver that already took the claim takes it
 * as a copy it has seen (no second check, no unbacked check, no takeover), and the ledger outcome
 * there is the one the first copy made.
 *
 * @module
 */
import assert from "node:assert/strict";
import { MAX_UNBACKED_CHECKS_PER_RECEIPT } from "../../actors/_unbacked_checks.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import type { Account } from "../../proof/ledger.ts";
import { trainingReceiptId } from "../../training/training_receipt.ts";
import { ClaimTakeovers } from "../../training/_claim_takeovers.ts";
import { eventually } from "../_helpers/wait.ts";
import {
  claim,
  claimNode,
  creditWithholdingTrainer,
  TRAINER_STAKE,
  type trainerLink,
} from "./_claim_node.ts";
import { downAfterHoldReleased, ledgerDownSwitch } from "./_training_ledger.ts";

/**
 * What a claimant short of stake pledged here: below a false accusation's penalty, its claims are
 * checked unbacked.
 */
const SHORT_STAKE = DEFAULT_ECONOMICS.falseAccusationPenalty / 2;
/**
 * Restarts, the claim kept at each but the last: charged once per pass before the fix, the claim's
 * own passes spent all its receipt's unbacked checks, and the last read-back was refused.
 */
const RESTARTS = MAX_UNBACKED_CHECKS_PER_RECEIPT;

Deno.test("review s61: a claim checked unbacked and kept because the ledger did not answer its takeover is not charged to its receipt's unbacked budget again at each restart: read back after three restarts it is still taken over and the withholding trainer is convicted here", async () => {
  let link: ReturnType<typeof trainerLink>["connection"] | undefined;
  const n = await claimNode("s61-kept-claim-charge", () => link);
  const consider = ClaimTakeovers.prototype.consider;
  let considered = 0;
  const ledgerDown = ledgerDownSwitch(n.system);
  let down = downAfterHoldReleased(ledgerDown);
  try {
    ClaimTakeovers.prototype.consider = function (body, ctx) {
      return consider.call(this, body, ctx).finally(() => considered++);
    };
    const { receipt, claimant } = await creditWithholdingTrainer(n, (to) => link = to, SHORT_STAKE);
    const id = trainingReceiptId(receipt);
    // Checked unbacked (one of the receipt's three), confirmed, then considered with the ledger
    // down: kept.
    await n.claim(claim(receipt, claimant));
    await eventually(() => considered >= 1, "the claim to be considered");
    assert.equal(down.armed(), false, "the ledger was down for the takeover");
    // Three restarts, the ledger back before each and down again for the takeover: the claim is
    // read back, checked again, considered and kept again each time.
    for (let restart = 1; restart <= RESTARTS; restart++) {
      down.restore();
      ledgerDown(false);
      down = downAfterHoldReleased(ledgerDown);
      await n.restartTraining();
      if (restart < RESTARTS) {
        await eventually(
          () => considered >= restart + 1,
          `the claim considered again (${restart})`,
        );
        assert.equal(down.armed(), false, "the ledger was down for the takeover again");
      }
    }
    // The last start: the ledger answers; the claim read back is taken over, the trainer refuses.
    down.restore();
    ledgerDown(false);
    await eventually(
      async () => (await n.record(id)).status === "fraud",
      "the takeover's own proof to settle",
      { timeoutMs: 10_000 },
    ).catch(() => {});
    await n.closeWindow();
    assert.equal((await n.record(id)).status, "fraud", "the withholding trainer was paid here");
    const trainer = await n.account(receipt.trainer);
    assert.equal(trainer.balance, 0, "nothing paid");
    assert.ok(trainer.stake < TRAINER_STAKE, "its stake is cut");
  } finally {
    ClaimTakeovers.prototype.consider = consider;
    down.restore();
    await n.close();
  }
});

Deno.test("review s61: a claim passed on again (a peer's restart read it back) costs the receiver nothing: no second check, no second unbacked check, no second takeover, and the ledger outcome stands", async () => {
  let link: ReturnType<typeof trainerLink>["connection"] | undefined;
  const n = await claimNode("s61-claim-again", () => link);
  const takeover = ClaimTakeovers.prototype.consider;
  let considered = 0;
  try {
    ClaimTakeovers.prototype.consider = function (body, ctx) {
      return takeover.call(this, body, ctx).finally(() => considered++);
    };
    const { receipt, claimant } = await creditWithholdingTrainer(n, (to) => link = to, SHORT_STAKE);
    const id = trainingReceiptId(receipt);
    const proof = claim(receipt, claimant);
    await n.claim(proof);
    await eventually(() => considered >= 1, "the claim to be considered");
    await eventually(
      async () => (await n.record(id)).status === "fraud",
      "the takeover's own proof to settle",
      { timeoutMs: 10_000 },
    );
    const before = await n.stats();
    const claimantBefore = await n.account(claimant.publicKey);
    // The same claim again, as a peer that read it back after a restart passes it on.
    const again = await n.claim(structuredClone(proof));
    assert.equal(again.queued, false, `taken as a copy already seen (${JSON.stringify(again)})`);
    const after = await n.stats();
    assert.equal(after.checked, before.checked, "not checked again");
    assert.equal(after.takeovers, before.takeovers, "not taken over again");
    assert.equal(considered, 1, "not considered again");
    assert.deepEqual(await n.account(claimant.publicKey), claimantBefore, "the claimant's stake");
    await n.closeWindow();
    assert.equal((await n.record(id)).status, "fraud");
    const trainer: Account = await n.account(receipt.trainer);
    assert.equal(trainer.balance, 0, "nothing paid");
    assert.equal(trainer.locked, 0);
    assert.ok(trainer.stake < TRAINER_STAKE, "its stake is cut");
  } finally {
    ClaimTakeovers.prototype.consider = takeover;
    await n.close();
  }
});
