/**
 * A training receipt this validator is challenging is `challenged` in its ledger until the
 * challenge ends, as an inference receipt is: not paid while the check runs, paid after a pass,
 * and not paid at all when the validator stops mid-challenge. Before, a validator that audited
 * a round (crediting its receipts) and then challenged a trainer on its own coin left the
 * receipt `pending`: stopped mid-challenge (the lazy trainer's proof never made), it paid the
 * trainer once the window closed — a validator-side gap finalized the receipt.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { Account, ReceiptRecord } from "../../proof/ledger.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import type { Connection } from "../../protocols/connection.ts";
import { Identity } from "../../protocols/identity.ts";
import { seededGptWeights } from "../../training/gpt_weights.ts";
import { RoundModels } from "../../training/round_models.ts";
import { trainAndSign } from "../../training/training_round.ts";
import { trainingReceiptId } from "../../training/training_receipt.ts";
import type { TrainingValidatorStats } from "../../training/training_validator.ts";
import { openChallengedSteps } from "../../training/step_opening.ts";
import type { TrainingChallenge } from "../../training/training_challenge.ts";
import { eventually } from "../_helpers/wait.ts";
import { TEST_ARCH, TEST_HYPER, testSplit } from "./_fixtures.ts";
import { spawnTrainingLedger } from "./_training_ledger.ts";

const STAKE = 10_000_000;

/** An honest trainer's run of 2 steps from the test model, signed. */
async function honestRun(startModel: string, start: ReturnType<typeof seededGptWeights>) {
  const split = await testSplit();
  const trainer = Identity.generate();
  const run = await trainAndSign({
    arch: TEST_ARCH,
    round: 0,
    startModel,
    start,
    shard: split.shards[0],
    steps: 2,
    dataSeed: 3,
    hyper: TEST_HYPER,
    identity: trainer,
    keepEvery: 1,
  });
  return { trainer, run };
}

/** A ledger with a training validator that challenges every receipt, on clock `clock`. */
async function ledgerNode(dir: string, me: Identity, clock: { t: number }) {
  const system = new ActorSystem({ name: "challenge-hold" });
  const models = new RoundModels({ modelsDir: dir, storage: () => undefined });
  const model = await models.publish(TEST_ARCH, seededGptWeights(TEST_ARCH, 0));
  const { ledger, training } = await spawnTrainingLedger(system, {
    identity: me,
    dir,
    now: () => clock.t,
    models,
    challenge: { challengeProbability: 1, random: () => 0 },
  });
  const status = (id: string) =>
    ledger.ask<ReceiptRecord | undefined>({ type: "receipt_status", receiptId: id });
  const account = (key: Uint8Array) => ledger.ask<Account>({ type: "account", key });
  const closeWindow = async () => {
    clock.t += DEFAULT_ECONOMICS.challengeWindowMs + 1;
    await ledger.ask({ type: "finalize" });
  };
  return { system, model, ledger, training, status, account, closeWindow };
}

/** A connection to the trainer that answers with `answer` (never, when it is undefined). */
function trainerConnection(
  trainer: Identity,
  answer?: (challenge: TrainingChallenge) => Promise<Uint8Array>,
): Connection {
  let body: Uint8Array | undefined;
  return {
    peerKey: trainer.publicKey,
    request: async (_type: unknown, payload: { challenge?: TrainingChallenge; index?: number }) => {
      if (answer === undefined) return await new Promise(() => {});
      if (payload.challenge !== undefined) {
        body = await answer(payload.challenge);
        const { sha256Hex } = await import("../../protocols/hash.ts");
        return { size: body.length, parts: 1, sha256: sha256Hex(body) };
      }
      return { bytes: body! };
    },
  } as unknown as Connection;
}

Deno.test("a validator stopped while it challenges a credited training receipt does not pay it at its next start", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-challenge-hold-" });
  const me = Identity.generate();
  const clock = { t: Date.now() };
  const first = await ledgerNode(dir, me, clock);
  let second: Awaited<ReturnType<typeof ledgerNode>> | undefined;
  try {
    const { trainer, run } = await honestRun(first.model.cid, first.model.weights);
    const { receipt } = run.report;
    const id = trainingReceiptId(receipt);
    const terms = { round: 0, startModel: first.model.cid, steps: receipt.steps };
    await first.ledger.ask({ type: "deposit", key: trainer.publicKey, amount: STAKE });
    // Credited as an audited round's receipts are, then challenged on this node's coin.
    await first.training.ask({ type: "credit", receipts: [receipt], terms });
    const asked = await first.training.ask<{ result: Promise<unknown> }>({
      type: "challenge",
      report: run.report,
      connection: trainerConnection(trainer), // the answer never comes before the stop
      terms,
      arch: TEST_ARCH,
      shardSize: receipt.shardSize,
      shardRoot: receipt.shardRoot,
    });
    asked.result.catch(() => {});
    await eventually(
      async () =>
        (await first.training.ask<TrainingValidatorStats>({ type: "stats" })).challenged === 1,
      "the challenge to be drawn",
    );
    assert.equal((await first.status(id))?.status, "challenged", "not held while challenged");
    await first.system.shutdown();

    second = await ledgerNode(dir, me, clock);
    await second.closeWindow();
    assert.notEqual((await second.status(id))?.status, "final", "paid after the stop");
    assert.equal((await second.account(trainer.publicKey)).balance, 0);
  } finally {
    await first.system.shutdown();
    await second?.system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a credited training receipt whose challenge passes is paid when its window closes", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-challenge-pass-" });
  const me = Identity.generate();
  const clock = { t: Date.now() };
  const n = await ledgerNode(dir, me, clock);
  try {
    const { trainer, run } = await honestRun(n.model.cid, n.model.weights);
    const { receipt } = run.report;
    const id = trainingReceiptId(receipt);
    const terms = { round: 0, startModel: n.model.cid, steps: receipt.steps };
    await n.ledger.ask({ type: "deposit", key: trainer.publicKey, amount: STAKE });
    await n.training.ask({ type: "credit", receipts: [receipt], terms });
    const { encodeCbor } = await import("../../protocols/cbor.ts");
    const asked = await n.training.ask<{ result: Promise<{ challenged: boolean; ok?: boolean }> }>({
      type: "challenge",
      report: run.report,
      connection: trainerConnection(
        trainer,
        async (challenge) => encodeCbor(await openChallengedSteps(run.trace, challenge)),
      ),
      terms,
      arch: TEST_ARCH,
      shardSize: receipt.shardSize,
      shardRoot: receipt.shardRoot,
    });
    assert.deepEqual(await asked.result, { challenged: true, ok: true });
    assert.equal((await n.status(id))?.status, "pending", "open again after the pass");
    await n.closeWindow();
    assert.equal((await n.status(id))?.status, "final");
    assert.ok((await n.account(trainer.publicKey)).balance > 0, "the honest trainer is paid");
  } finally {
    await n.system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
