/**
 * The ledger outcome of a lazy trainer that answers its challenge at once with an answer it
 * signed but sealed to another key (it can never be opened): slashed once the deadline passed,
 * and the honest validator pays nothing. A proof used to be issued before the deadline, which
 * every checker refuted (`before_deadline`): the lazy trainer kept its stake and the validator
 * paid the false-accusation penalty (found by a review at stop 33).
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { Account } from "../../proof/ledger.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { Identity } from "../../protocols/identity.ts";
import type { Connection } from "../../protocols/connection.ts";
import { encodeCanonical } from "../../protocols/cbor.ts";
import { sha256Hex } from "../../protocols/hash.ts";
import { sealInput } from "../../proof/private_input.ts";
import {
  ChallengeMessage,
  OpeningPartMessage,
  type RoundBody,
  RoundMessage,
} from "../../protocols/training_messages.ts";
import { type GptWeights, seededGptWeights } from "../../training/gpt_weights.ts";
import { deltaHash, encodeInt8Delta, quantizeDelta } from "../../training/int8_delta.ts";
import {
  type CoordinatorMessage,
  type CoordinatorStatus,
  RoundCoordinator,
} from "../../training/round_coordinator.ts";
import { RoundModels } from "../../training/round_models.ts";
import { openingContext, sealOpeningBytes } from "../../training/step_opening.ts";
import type { TrainingChallenge } from "../../training/training_challenge.ts";
import { trainingChallengeId } from "../../training/training_challenge.ts";
import { signTrainingReceipt, TRAINING_RECEIPT_VERSION } from "../../training/training_receipt.ts";
import type { TrainingValidatorStats } from "../../training/training_validator.ts";
import { eventually } from "../_helpers/wait.ts";
import { TEST_ARCH, TEST_HYPER } from "./_fixtures.ts";
import { spawnTrainingLedger } from "./_training_ledger.ts";

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

function lazyTrainer(
  identity: Identity,
  start: GptWeights,
  shard: { size: number; root: string },
): Connection {
  let answer: Uint8Array | undefined;
  return {
    peerKey: identity.publicKey,
    closed: new Promise<void>(() => {}),
    request: (definition: unknown, body: unknown) => {
      if (definition === RoundMessage) {
        const b = body as RoundBody;
        const delta = encodeInt8Delta(quantizeDelta(
          new Map([...start].map(([n, t]) => [n, {
            shape: [...t.shape],
            data: t.data.map((_x, i) => 1e-3 * Math.sin(i + 1)),
          }])),
        ));
        const receipt = signTrainingReceipt({
          v: TRAINING_RECEIPT_VERSION,
          round: b.round,
          startModel: b.startModel,
          steps: b.steps,
          dataSeed: b.dataSeed,
          hyper: b.hyper,
          samplesRoot: "aa".repeat(32),
          sampleCount: b.steps * b.hyper.batchSize,
          checkpointsRoot: "bb".repeat(32), // no training was done at all
          shardRoot: shard.root,
          shardSize: shard.size,
          losses: Array.from({ length: b.steps }, () => 3),
          deltaHash: deltaHash(delta),
          deltaBytes: delta.length,
        }, identity);
        return Promise.resolve({ receipt, delta });
      }
      if (definition === ChallengeMessage) {
        answer = unopenableAnswer((body as { challenge: TrainingChallenge }).challenge, identity);
        return Promise.resolve({ size: answer.length, parts: 1, sha256: sha256Hex(answer) });
      }
      if (definition === OpeningPartMessage) return Promise.resolve({ bytes: answer! });
      return Promise.reject(new Error("not asked"));
    },
  } as unknown as Connection;
}

Deno.test("a lazy trainer answering with a signed answer that cannot be opened is slashed after the deadline; the validator is not penalized", async () => {
  const dir = await Deno.makeTempDir({ prefix: "review-unopenable-" });
  const system = new ActorSystem({ name: "review-unopenable" });
  const clock = { t: Date.now() };
  try {
    const me = Identity.generate();
    const models = new RoundModels({ modelsDir: dir, storage: () => undefined });
    const lazy = Identity.generate();
    const { ledger, training } = await spawnTrainingLedger(system, {
      identity: me,
      dir,
      now: () => clock.t,
      models,
      challenge: { challengeProbability: 1, openingDeadlineMs: 2_000 },
    });
    await ledger.ask({ type: "deposit", key: lazy.publicKey, amount: STAKE });
    await ledger.ask({ type: "deposit", key: me.publicKey, amount: 1_000 });
    const coordinator = await system.spawn<CoordinatorMessage>({
      name: "node/coordinator",
      factory: () =>
        new RoundCoordinator({
          identity: me,
          arch: TEST_ARCH,
          seed: 0,
          rounds: 1,
          steps: STEPS,
          hyper: TEST_HYPER,
          roundDeadlineMs: 600_000,
          minTrainers: 1,
          models,
          validator: "node/training-validator",
        }),
    });
    const start = seededGptWeights(TEST_ARCH, 0);
    const shard = { size: 100, root: "cc".repeat(32) };
    await coordinator.ask({
      type: "join",
      connection: lazyTrainer(lazy, start, shard),
      shardSize: shard.size,
      shardRoot: shard.root,
    });
    const status = await eventually(async () => {
      const s = await coordinator.ask<CoordinatorStatus>({ type: "status" });
      return s.history.length === 1 ? s : undefined;
    }, "round 0 to end");
    assert.deepEqual(status.history[0].accepted, [], "its delta is not averaged in");
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
