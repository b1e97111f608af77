/**
 * A trainer answers one challenge per validator and receipt: each opening reveals a batch of the
 * private shard per challenged step, so the rule bounds what one validator learns of it. The
 * record of who challenged which receipt was in memory only: after a restart of the trainer, a
 * staked validator challenged the same receipt again and read more of the shard's batches. It is
 * now kept in the trainer's data directory until the receipt's traces are gone.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ActorSystem } from "../../actors/actor_system.ts";
import { Identity } from "../../protocols/identity.ts";
import { toHex } from "../../protocols/hash.ts";
import { encodeCanonical } from "../../protocols/cbor.ts";
import { seededGptWeights } from "../../training/gpt_weights.ts";
import { RoundModels } from "../../training/round_models.ts";
import {
  type ChallengeAccepted,
  type RoundAccepted,
  type TrainerMessage,
  TrainerService,
} from "../../training/trainer_service.ts";
import type { TrainingReceipt } from "../../training/training_receipt.ts";
import {
  drawTrainingChallenge,
  type TrainingChallenge,
} from "../../training/training_challenge.ts";
import { TEST_ARCH, TEST_HYPER, testRoundBody, testSplit } from "./_fixtures.ts";

/** A stake every ledger takes a peer's fraud proof from. */
const STAKE = 10_000_000;

/**
 * An honest trainer (its worker engine, traces on disk) under `dir`, whose ledger holds a stake
 * for each of `staked`; one trained run of it.
 */
async function trainerFixture(dir: string, staked: Identity[]) {
  const split = await testSplit();
  const models = new RoundModels({ modelsDir: join(dir, "models"), storage: () => undefined });
  const seed = await models.publish(TEST_ARCH, seededGptWeights(TEST_ARCH, 0));
  const identity = Identity.generate();
  const keys = new Set(staked.map((v) => toHex(v.publicKey)));
  const dataDir = join(dir, "training");
  const spawn = (system: ActorSystem) =>
    system.spawn<TrainerMessage>({
      name: "node/trainer",
      factory: () =>
        new TrainerService({
          identity,
          shard: split.shards[0],
          models,
          sampleBytes: TEST_HYPER.sampleBytes,
          dataDir,
          stakeOf: (key) => Promise.resolve(keys.has(toHex(key)) ? STAKE : 0),
        }),
    });
  const body = testRoundBody(seed.cid, 6);
  return { spawn, body, dataDir };
}

/** Ask the trainer at `ref` to open `challenge`: its header, or the refusal's code. */
async function ask(
  ref: Awaited<ReturnType<Awaited<ReturnType<typeof trainerFixture>>["spawn"]>>,
  challenge: TrainingChallenge,
): Promise<{ size: number } | string> {
  const { openings } = await ref.ask<ChallengeAccepted>({
    type: "challenge",
    challenge,
    from: challenge.validator,
  });
  return await openings.catch((e: { code?: string }) => e.code ?? "thrown");
}

Deno.test("review s53b challenged: after the trainer restarts, a staked validator's second challenge of a receipt it challenged before is refused (challenge_mismatch) — it reads no more batches of the shard — while its first challenge is still answered, and so is another validator's first", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-s53b-challenged-" });
  const validator = Identity.generate();
  const other = Identity.generate();
  const { spawn, body } = await trainerFixture(dir, [validator, other]);
  let receipt: TrainingReceipt;
  let first: TrainingChallenge;
  const before = new ActorSystem({ name: "s53b-before-restart" });
  try {
    const ref = await spawn(before);
    const { report } = await ref.ask<RoundAccepted>({ type: "round", body, coordinator: "c0" });
    receipt = (await report).receipt;
    first = drawTrainingChallenge(receipt, validator, { steps: 2 });
    const opened = await ask(ref, first);
    assert.ok(typeof opened !== "string" && opened.size > 0, "the first challenge is answered");
    const second = drawTrainingChallenge(receipt, validator, { steps: 2 });
    assert.equal(await ask(ref, second), "challenge_mismatch", "refused before the restart");
  } finally {
    await before.shutdown();
  }
  const after = new ActorSystem({ name: "s53b-after-restart" });
  try {
    const ref = await spawn(after);
    const second = drawTrainingChallenge(receipt, validator, { steps: 2 });
    assert.equal(
      await ask(ref, second),
      "challenge_mismatch",
      "a second challenge by the same validator after the restart: more batches of the shard",
    );
    // Its own challenge again (its answer was lost with the restart): still owed, or its
    // opening_missing would slash the honest trainer.
    const again = await ask(ref, first);
    assert.ok(typeof again !== "string" && again.size > 0, "the first challenge, asked again");
    const fresh = await ask(ref, drawTrainingChallenge(receipt, other, { steps: 2 }));
    assert.ok(typeof fresh !== "string" && fresh.size > 0, "another validator's first challenge");
  } finally {
    await after.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("review s53b challenged: a damaged record of challenges does not stop the trainer and is set aside (challenges are answered), and entries past their window are not read back", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-s53b-challenged-damaged-" });
  const validator = Identity.generate();
  const { spawn, body, dataDir } = await trainerFixture(dir, [validator]);
  let receipt: TrainingReceipt;
  const before = new ActorSystem({ name: "s53b-damaged-before" });
  try {
    const ref = await spawn(before);
    const { report } = await ref.ask<RoundAccepted>({ type: "round", body, coordinator: "c0" });
    receipt = (await report).receipt;
  } finally {
    await before.shutdown();
  }
  const file = join(dataDir, "challenged-by.cbor");
  try {
    // Not CBOR at all: the trainer starts and answers.
    await Deno.writeFile(file, new Uint8Array([0xff, 0xfe, 0x00, 0x13]));
    const damaged = new ActorSystem({ name: "s53b-damaged" });
    try {
      const ref = await spawn(damaged);
      const opened = await ask(ref, drawTrainingChallenge(receipt, validator, { steps: 2 }));
      assert.ok(typeof opened !== "string" && opened.size > 0, "answered over a damaged file");
    } finally {
      await damaged.shutdown();
    }
    // An entry past its window (and malformed ones) are not read back: the validator's
    // challenge is answered, the malformed entries do not stop the trainer.
    const key = `${toHex(validator.publicKey)}/${
      drawTrainingChallenge(receipt, validator).receiptId
    }`;
    await Deno.writeFile(
      file,
      encodeCanonical([[key, "ab".repeat(32), Date.now() - 1000], ["junk"], 7]),
    );
    const expired = new ActorSystem({ name: "s53b-expired" });
    try {
      const ref = await spawn(expired);
      const opened = await ask(ref, drawTrainingChallenge(receipt, validator, { steps: 2 }));
      assert.ok(typeof opened !== "string" && opened.size > 0, "an expired entry binds nothing");
    } finally {
      await expired.shutdown();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
