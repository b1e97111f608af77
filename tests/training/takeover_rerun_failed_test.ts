/**
 * A takeover whose steps could not be re-run decides nothing in the trainer's favour (review s77
 * vtrain F1): before, its challenge ended `passed`, and a lazy trainer that served the takeover
 * openings that only open its commitments was paid in full, unchecked, while the takeover's mark
 * kept this ledger's own coin from ever challenging it again. Now it ends `undecided`: unpaid
 * here, not slashed (docs/TRAINING.md, "Where the re-run runs").
 *
 * @module
 */
import assert from "node:assert/strict";
import type { Connection } from "../../protocols/connection.ts";
import { Identity } from "../../protocols/identity.ts";
import { openChallengedSteps } from "../../training/step_opening.ts";
import { RERUN_ATTEMPTS, WorkerStepRerun } from "../../training/step_rerun.ts";
import { trainingReceiptId } from "../../training/training_receipt.ts";
import type { TrainingValidatorOptions } from "../../training/training_validator.ts";
import { eventually } from "../_helpers/wait.ts";
import { claim, claimNode, H, split, start, TRAINER_STAKE, trainerLink } from "./_claim_node.ts";
import { TEST_ARCH, TEST_HYPER } from "./_fixtures.ts";
import { randomDeltaTrainer } from "./_pot_lazy_trainers.ts";

const STAND_IN = new URL("./_step_rerun_stand_in.ts", import.meta.url).href;
/** How long the takeover's workers may take to start and fail (about 2 s each, loaded). */
const WORKER_STARTS_WAIT_MS = 60_000;

/** A trainer that signs a random delta and serves openings of its commitments, not training. */
function lazyTrainer(startModel: string) {
  const identity = Identity.generate();
  const { report, trace } = randomDeltaTrainer({
    arch: TEST_ARCH,
    startModel,
    start,
    shard: split.shards[0],
    steps: H,
    dataSeed: 11,
    hyper: TEST_HYPER,
    identity,
  });
  const { connection, challenges } = trainerLink(
    identity,
    (challenge) => openChallengedSteps(trace, challenge),
  );
  return { identity, receipt: report.receipt, connection, challenges };
}

Deno.test("a takeover whose step brings down every re-run worker ends undecided: the lazy trainer it could not check is not paid here, nor slashed", async () => {
  let link: Connection | undefined;
  const lines: string[] = [];
  let started = 0;
  const rerun = new WorkerStepRerun({
    log: (line) => void lines.push(line),
    startWorker: () => {
      started++;
      return new Worker(STAND_IN, { type: "module", name: "throw@0" });
    },
  });
  // `claimNode`'s validator options are spread into the training validator's: `rerun` among them.
  const validator = { rerun, log: (line: string) => void lines.push(line) } as Pick<
    TrainingValidatorOptions,
    "log"
  >;
  const n = await claimNode("takeover-rerun-failed", () => link, 400, () => false, validator);
  try {
    const t = lazyTrainer(n.model.cid);
    link = t.connection;
    const claimant = Identity.generate();
    const record = await n.credited(t.receipt, claimant);
    assert.deepEqual(await n.claim(claim(t.receipt, claimant)), { queued: true });
    const id = trainingReceiptId(t.receipt);
    // Two worker starts (tfjs and its wasm each) on a loaded machine: more than the default wait.
    await eventually(
      () =>
        lines.some((line) =>
          new RegExp(`takeover of trainer .*brought down ${RERUN_ATTEMPTS} re-run workers`)
            .test(line)
        ),
      "the takeover to fail on its step's last worker",
      { timeoutMs: WORKER_STARTS_WAIT_MS },
    );
    await eventually(async () => (await n.record(id)).status !== "challenged", "the hold to end");
    assert.equal(t.challenges.length, 1, "the trainer was asked and served");
    assert.equal(started, RERUN_ATTEMPTS, "each try on a fresh worker");
    assert.equal((await n.record(id)).status, "unpaid");
    await n.closeWindow();
    assert.equal((await n.record(id)).status, "unpaid", "not finalized by the window");
    const trainer = await n.account(t.identity.publicKey);
    assert.equal(trainer.balance, 0, `paid ${record.credit} for steps no one re-ran`);
    assert.equal(trainer.stake, TRAINER_STAKE, "slashed without a verdict");
    assert.equal((await n.stats()).falseClaims, 0, "the claim is not counted false");
  } finally {
    await n.close();
    rerun.close();
  }
});
