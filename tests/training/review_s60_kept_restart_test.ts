/**
 * Review s60: what a training validator keeps for a ledger that did not answer outlives a restart
 * of the training validator.
 *
 * Stop 59 made the training validator keep, and take again, a peer's fraud proof whose intake the
 * ledger (the ValidatorActor) did not answer (`training/_unanswered_training_proofs.ts`) and a peer's
 * true `opening_missing` claim whose takeover's ledger asks went unanswered
 * (`training/_claim_takeovers.ts`). Both were kept in memory only: a stop or a restart of the
 * training validator while one was kept lost it, nothing brought it back, and the lazy (or
 * withholding) trainer every other ledger slashed was paid in this one. Each test restarts the
 * training validator on the same ledger directory while the item is kept and reads the ledger
 * outcome after the window: the trainer's receipt status and stake here.
 *
 * @module
 */
import assert from "node:assert/strict";
import { eventually } from "../_helpers/wait.ts";
import { ClaimTakeovers } from "../../training/_claim_takeovers.ts";
import { TrainingValidator } from "../../training/training_validator.ts";
import { claim, claimNode, creditWithholdingTrainer, type trainerLink } from "./_claim_node.ts";
import { assertWithholderSlashed, takeoverSettled } from "./_claim_conviction.ts";
import {
  downAfterHoldReleased,
  ledgerDownSwitch,
  onLazyReceiptLedger,
} from "./_training_ledger.ts";

/**
 * A peer's proof kept because the ledger did not answer its intake, the training validator then
 * restarted (`killed`: its `postStop` does not run, as when the process is killed) and the ledger
 * back: the lazy trainer slashed here after the window.
 */
async function keptProofAcrossRestart(name: string, killed: boolean): Promise<void> {
  await onLazyReceiptLedger(`s60-kept-proof-${name}`, {}, async (lazy) => {
    const postStop = TrainingValidator.prototype.postStop;
    try {
      // The round's outcome credited the lazy receipt here: paid when its window closes.
      await lazy.credit();
      // The ledger is stopped when a peer's proof comes: kept, to take again.
      lazy.down(true);
      const taken = await lazy.send();
      assert.ok(
        lazy.log.some((l) => l.includes("kept, the ledger did not answer its intake")),
        `kept (${JSON.stringify(taken)})`,
      );
      // The training validator restarts (its supervisor, or the node) while the proof is kept;
      // the ledger comes back after.
      if (killed) TrainingValidator.prototype.postStop = () => Promise.resolve();
      await lazy.restartTraining();
      TrainingValidator.prototype.postStop = postStop;
      lazy.down(false);
      await lazy.slashed("the lazy trainer was paid here");
    } finally {
      TrainingValidator.prototype.postStop = postStop;
    }
  });
}

Deno.test("review s60: a peer's confirmed fraud proof kept because the ledger did not answer its intake outlives a restart of the training validator: the lazy trainer is slashed here", () =>
  keptProofAcrossRestart("stopped", false));

Deno.test("review s60: a peer's confirmed fraud proof kept because the ledger did not answer its intake is on disk before it counts as kept: a training validator killed (no stop hook) and started again still slashes the lazy trainer here", () =>
  keptProofAcrossRestart("killed", true));

Deno.test("review s60: a true opening_missing claim kept because the ledger did not answer its takeover outlives a restart of the training validator: the withholding trainer is convicted here", async () => {
  let link: ReturnType<typeof trainerLink>["connection"] | undefined;
  const n = await claimNode("s60-kept-claim", () => link);
  const consider = ClaimTakeovers.prototype.consider;
  let considered = 0;
  const ledgerDown = ledgerDownSwitch(n.system);
  const down = downAfterHoldReleased(ledgerDown);
  try {
    ClaimTakeovers.prototype.consider = function (body, ctx) {
      return consider.call(this, body, ctx).finally(() => considered++);
    };
    const { receipt, record, claimant } = await creditWithholdingTrainer(n, (to) => link = to);
    await n.claim(claim(receipt, claimant));
    // Checked (confirmed: a claim), then considered with the ledger down: kept.
    await eventually(() => considered >= 1, "the claim to be considered");
    assert.equal(down.armed(), false, "the ledger was down for the takeover");
    // The training validator restarts while the claim is kept; the ledger comes back after.
    await n.restartTraining();
    ledgerDown(false);
    await takeoverSettled(async () => (await n.record(record.receiptId)).status === "fraud");
    await assertWithholderSlashed(n, record, receipt.trainer);
  } finally {
    ClaimTakeovers.prototype.consider = consider;
    down.restore();
    await n.close();
  }
});
