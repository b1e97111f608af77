/**
 * A trainer keeps each sealed answer until its validator fetched it or its challenge's deadline
 * passed: one pushed out before it was fetched is `unknown_opening` to its validator, which takes
 * it as missing, and its `opening_missing` slashes the honest trainer. They were kept in memory,
 * up to 64 of them whatever their size — 29 MB each for `tiny`, ~1.9 GB. Memory now holds a
 * bounded number of bytes of them; the unfetched ones past it wait in the trainer's data
 * directory, still answered part by part.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ActorSystem } from "../../actors/actor_system.ts";
import { Identity } from "../../protocols/identity.ts";
import { sha256Hex, toHex } from "../../protocols/hash.ts";
import { MAX_OPENING_PART_BYTES, type OpeningsBody } from "../../protocols/training_messages.ts";
import { seededGptWeights } from "../../training/gpt_weights.ts";
import { RoundModels } from "../../training/round_models.ts";
import {
  type ChallengeAccepted,
  type RoundAccepted,
  type TrainerMessage,
  TrainerService,
  type TrainerStats,
} from "../../training/trainer_service.ts";
import { drawTrainingChallenge, trainingChallengeId } from "../../training/training_challenge.ts";
import { TEST_ARCH, TEST_HYPER, testRoundBody, testSplit } from "./_fixtures.ts";

/** A stake every ledger takes a peer's fraud proof from. */
const STAKE = 10_000_000;
/** The bytes of answers this test's trainer keeps in memory: about one answer of TEST_ARCH. */
const KEPT_BYTES = 2_000_000;

Deno.test("review s53b kept answers: answers past the memory bound are not dropped — memory holds at most the bound, and every validator still fetches its whole answer before its deadline (no unknown_opening, no opening_missing to slash the honest trainer)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-s53b-kept-answers-" });
  const split = await testSplit();
  const models = new RoundModels({ modelsDir: join(dir, "models"), storage: () => undefined });
  const seed = await models.publish(TEST_ARCH, seededGptWeights(TEST_ARCH, 0));
  const validators = [Identity.generate(), Identity.generate(), Identity.generate()];
  const staked = new Set(validators.map((v) => toHex(v.publicKey)));
  const system = new ActorSystem({ name: "s53b-kept-answers" });
  try {
    const ref = await system.spawn<TrainerMessage>({
      name: "node/trainer",
      factory: () =>
        new TrainerService({
          identity: Identity.generate(),
          shard: split.shards[0],
          models,
          sampleBytes: TEST_HYPER.sampleBytes,
          dataDir: join(dir, "training"),
          stakeOf: (key) => Promise.resolve(staked.has(toHex(key)) ? STAKE : 0),
          keptAnswerBytes: KEPT_BYTES,
        }),
    });
    const body = testRoundBody(seed.cid, 6);
    const { report } = await ref.ask<RoundAccepted>({ type: "round", body, coordinator: "c0" });
    const { receipt } = await report;
    // Three validators' answers are made before any is fetched (they audit one round).
    const challenges = validators.map((v) => drawTrainingChallenge(receipt, v, { steps: 2 }));
    const headers: OpeningsBody[] = [];
    for (const challenge of challenges) {
      const { openings } = await ref.ask<ChallengeAccepted>({
        type: "challenge",
        challenge,
        from: challenge.validator,
      });
      headers.push(await openings);
    }
    const total = headers.reduce((sum, h) => sum + h.size, 0);
    assert.ok(total > 2 * KEPT_BYTES, `the answers (${total} bytes) are past the bound`);
    // Written aside in the background: held until their writes end.
    let held = Infinity;
    for (let i = 0; i < 100 && held > KEPT_BYTES; i++) {
      held = (await ref.ask<TrainerStats>({ type: "stats" })).answerBytes;
      if (held > KEPT_BYTES) await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.ok(held <= KEPT_BYTES, `answers held in memory: ${held} bytes, bound ${KEPT_BYTES}`);
    // Each validator fetches its answer, part by part, whole.
    for (const [i, challenge] of challenges.entries()) {
      const challengeId = trainingChallengeId(challenge);
      const bytes = new Uint8Array(headers[i].size);
      for (let index = 0, at = 0; index < headers[i].parts; index++) {
        const part = await ref.ask<Uint8Array | undefined>({ type: "part", challengeId, index });
        assert.ok(part !== undefined, `validator ${i}'s part ${index} (unknown_opening)`);
        bytes.set(part, at);
        at += part.length;
      }
      assert.equal(sha256Hex(bytes), headers[i].sha256, `validator ${i}'s answer, whole`);
      assert.ok(headers[i].size > MAX_OPENING_PART_BYTES, "an answer of several parts");
    }
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
