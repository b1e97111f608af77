/**
 * Review s59: this validator's own proof (its takeover's `opening_missing`) whose intake read of
 * where the receipt stands went unanswered (the ValidatorActor crashed and restarts). The intake
 * refused it like a peer's proof (`receipt_unknown`), and `FraudProofChecks.take` ended its own
 * challenge `undecided` at once: the withholding trainer was left unpaid here but not slashed,
 * though the conviction was this validator's own. Now an own proof goes on to its settlement, which
 * is asked again while the ledger does not answer (`training/_training_proof_intake.ts`). The test
 * reads the ledger outcome: the trainer's receipt status and stake here.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ValidatorActor } from "../../actors/validator_actor.ts";
import { claim, claimNode, creditWithholdingTrainer, type trainerLink } from "./_claim_node.ts";
import { assertWithholderSlashed, takeoverSettled } from "./_claim_conviction.ts";

Deno.test("review s59: this validator's own opening_missing whose intake found the ledger restarting (a failed read of where its receipt stands) still convicts the withholding trainer here", async () => {
  let link: ReturnType<typeof trainerLink>["connection"] | undefined;
  const n = await claimNode("s59-own-proof-down", () => link);
  const receive = ValidatorActor.prototype.receive;
  try {
    const { receipt, record, claimant } = await creditWithholdingTrainer(n, (to) => link = to);
    let opened = false;
    let failed = 0;
    // Once the takeover held the receipt, the next read of where it stands (the own proof's
    // intake, after the trainer's deadline) fails as a disk does: the ValidatorActor crashes.
    ValidatorActor.prototype.receive = function (message, ctx) {
      if (message.type === "training_challenge" && message.step === "open") opened = true;
      if (
        opened && failed === 0 && message.type === "receipt_status" &&
        message.receiptId === record.receiptId && !("byTest" in message)
      ) {
        failed++;
        throw Object.assign(new Error("Input/output error (simulated)"), { code: "EIO" });
      }
      return receive.call(this, message, ctx);
    };
    // The test's own reads are marked: only the training validator's read fails.
    const status = async () =>
      (await n.ledger.ask<{ status: string }>({
        type: "receipt_status",
        receiptId: record.receiptId,
        byTest: true,
      } as { type: "receipt_status"; receiptId: string }))?.status;
    await n.claim(claim(receipt, claimant));
    await takeoverSettled(async () => (await status()) === "fraud");
    ValidatorActor.prototype.receive = receive;
    assert.equal(failed, 1, "the own proof's read failed once");
    await assertWithholderSlashed(
      n,
      record,
      receipt.trainer,
      "the withholding trainer was not slashed here",
    );
  } finally {
    ValidatorActor.prototype.receive = receive;
    await n.close();
  }
});
