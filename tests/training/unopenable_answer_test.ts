/**
 * The ledger outcome of a lazy trainer that answers its challenge at once with an answer it
 * signed but sealed to another key (it can never be opened): slashed once the deadline passed,
 * and the honest validator pays nothing. A proof used to be issued before the deadline, which
 * every checker refuted (`before_deadline`): the lazy trainer kept its stake and the validator
 * paid the false-accusation penalty (found by a review at stop 33).
 */
import { oneRound, reportingTrainer } from "./_reporting_trainer.ts";
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { Account } from "../../proof/ledger.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { Identity } from "../../protocols/identity.ts";
import { encodeCanonical } from "../../protocols/cbor.ts";
import { sealInput } from "../../proof/private_input.ts";
import { openingContext, sealOpeningBytes } from "../../training/step_opening.ts";
import type { TrainingChallenge } from "../../training/training_challenge.ts";
import { trainingChallengeId } from "../../training/training_challenge.ts";
import type { TrainingValidatorStats } from "../../training/training_validator.ts";
import { eventually } from "../_helpers/wait.ts";

const STEPS = 3;
const STAKE = 10_000_000;

/** A signed answer to `challenge` whose box is sealed to some other key: it never opens. */
function unopenableAnswer(challenge: TrainingChallenge, trainer: Identity): Uint8Array {
  const plaintext = encodeCanonical({ whatever: 1 });
  const sealed = sealOpeningBytes(plaintext, challenge, trainer);
  sealed.box = sealInput(
    plaintext,
    Identity.generate().publicKey,
    openingContext(challenge.receiptId, trainingChallengeId(challenge)),
  );
  return encodeCanonical(sealed);
}

Deno.test("a lazy trainer answering with a signed answer that cannot be opened is slashed after the deadline; the validator is not penalized", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-unopenable-" });
  const system = new ActorSystem({ name: "unopenable" });
  try {
    const lazy = Identity.generate();
    const { me, clock, ledger, training, start, shard, join, ended } = await oneRound(
      system,
      dir,
      {
        challenge: { challengeProbability: 1, openingDeadlineMs: 2_000 },
        steps: STEPS,
        minTrainers: 1,
        stakes: [[lazy, STAKE]],
      },
    );
    await ledger.ask({ type: "deposit", key: me.publicKey, amount: 1_000 });
    await join(reportingTrainer(lazy, start, shard, {
      answer: (challenge) => unopenableAnswer(challenge, lazy),
    }));
    assert.deepEqual((await ended()).accepted, [], "its delta is not averaged in");
    await eventually(async () => {
      const s = await training.ask<TrainingValidatorStats>({ type: "stats" });
      return s.checked >= 1 ? s : undefined;
    }, "the proof to be checked and settled");
    const stats = await training.ask<TrainingValidatorStats>({ type: "stats" });
    assert.deepEqual([stats.frauds, stats.confirmed], [1, 1], "one proof, confirmed");
    clock.t += 24 * 60 * 60 * 1000;
    await ledger.ask({ type: "finalize" });
    const lazyAcc = await ledger.ask<Account>({ type: "account", key: lazy.publicKey });
    const meAcc = await ledger.ask<Account>({ type: "account", key: me.publicKey });
    const slash = STEPS * DEFAULT_ECONOMICS.trainingCreditPerStep *
      DEFAULT_ECONOMICS.slashMultiplier;
    assert.equal(lazyAcc.stake, STAKE - slash, "the lazy trainer should be slashed");
    assert.equal(meAcc.stake, 1_000, "the honest validator should not be penalized");
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
