/**
 * A coordinator paces its rounds to the stake its trainers are assumed to hold
 * (`training/training_stake.ts`, `roundPaceMs`; the wait is in `training/_round_loop.ts`): rounds
 * end as soon as every trainer reported, so without a pace a coordinator whose rounds end early
 * keeps more rounds' receipts locked within a challenge window than the start check counted, and
 * from some round on every honest trainer's receipt is refused `insufficient_stake`: trained, not
 * paid (review s71, the gap 4b0c719 left: `tiny` at H = 50, rounds every 15 s, 41 locked at once).
 *
 * The trainer stands in with a report signed over a zero delta (no training), taking 15 s of the
 * test's clock a round; the ledger is a real one on that clock, the pace waits on it too.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ActorSystem } from "../../actors/actor_system.ts";
import { GPT_MODEL_SIZES } from "../../inference/model_builder.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import type { Account } from "../../proof/ledger.ts";
import type { ConnectionTimers } from "../../protocols/connection_timers.ts";
import { sha256Hex, toHex } from "../../protocols/hash.ts";
import { Identity } from "../../protocols/identity.ts";
import type { ReportBody, RoundBody } from "../../protocols/training_messages.ts";
import { type GptWeights, gptWeightShapes } from "../../training/gpt_weights.ts";
import { deltaHash, encodeInt8Delta, quantizeDelta } from "../../training/int8_delta.ts";
import {
  type CoordinatorMessage,
  type CoordinatorStatus,
  RoundCoordinator,
} from "../../training/round_coordinator.ts";
import { RoundModels } from "../../training/round_models.ts";
import { signTrainingReceipt, TRAINING_RECEIPT_VERSION } from "../../training/training_receipt.ts";
import { roundPaceMs, trainingStakeNeeded } from "../../training/training_stake.ts";
import { eventually } from "../_helpers/wait.ts";
import { trainerConnection } from "./_coordinator_trainers.ts";
import { spawnTrainingLedger } from "./_training_ledger.ts";

/** The default training model: its receipt of H = 50 locks 100,000 (the review's numbers). */
const TINY = GPT_MODEL_SIZES.tiny;
/** Local steps a round: the default H. */
const H = 50;
/** The default round deadline: the start check counts ceil(600 s / 120 s) + 1 = 6 rounds open. */
const DEADLINE_MS = 120_000;
/** The default stake, the trainer's and the one the coordinator assumes its trainers hold. */
const STAKE = 1_000_000;
/** How long the stand-in trainer takes a round on the test's clock: far less than the deadline. */
const ROUND_TAKES_MS = 15_000;
/**
 * Rounds run: at 15 s a round, unpaced, the 11th finds 10 × 100,000 locked and is refused; paced,
 * a window holds at most the 10 the stake backs, so the 11th and 12th are recorded too.
 */
const ROUNDS = 12;
/** The stand-in trainer's shard, as it joined (the coordinator checks each receipt against it). */
const SHARD = { size: 100, root: "ab".repeat(32) };

/**
 * Timers on the test's clock that fire at once, moving the clock on by their wait: a paced round
 * starts when its wait is over on the clock the ledger reads, without a real wait.
 */
function clockTimers(clock: { t: number }): ConnectionTimers {
  return {
    now: () => clock.t,
    setTimeout: (callback, ms) =>
      setTimeout(() => {
        clock.t += Math.max(0, ms);
        callback();
      }, 0),
    clearTimeout: (handle) => clearTimeout(handle as number),
  };
}

/** A delta of zeros in `TINY`'s shapes, encoded: fits any start model of it. */
function zeroDelta(): Uint8Array {
  const delta: GptWeights = new Map();
  for (const [name, shape] of gptWeightShapes(TINY)) {
    delta.set(name, { shape, data: new Float32Array(shape.reduce((a, b) => a * b, 1)) });
  }
  return encodeInt8Delta(quantizeDelta(delta));
}

/** A report of `body`'s round signed by `trainer` over `delta`, as an honest trainer's reads. */
function report(trainer: Identity, body: RoundBody, delta: Uint8Array): ReportBody {
  const receipt = signTrainingReceipt({
    v: TRAINING_RECEIPT_VERSION,
    round: body.round,
    startModel: body.startModel,
    steps: body.steps,
    dataSeed: body.dataSeed,
    hyper: body.hyper,
    samplesRoot: "01".repeat(32),
    sampleCount: body.steps * body.hyper.batchSize,
    // A trajectory of its own each round.
    checkpointsRoot: sha256Hex(new TextEncoder().encode(`trajectory ${body.round}`)),
    shardRoot: SHARD.root,
    shardSize: SHARD.size,
    losses: Array.from({ length: body.steps }, () => 3),
    deltaHash: deltaHash(delta),
    deltaBytes: delta.length,
  }, trainer);
  return { receipt, delta };
}

Deno.test("a coordinator whose rounds end long before their deadline paces them to its trainers' stake: an honest trainer at the default stake has every round's receipt recorded and credited, none refused insufficient_stake", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-round-pace-" });
  const system = new ActorSystem({ name: "pace" });
  const clock = { t: 1_000_000 };
  try {
    // The configuration the start check accepts: 6 rounds open lock 600,000 of 1,000,000.
    const need = trainingStakeNeeded({ arch: TINY, steps: H, roundMs: DEADLINE_MS });
    assert.equal(need.lock, 100_000);
    assert.ok(need.stake <= STAKE, `the start check accepts it (${need.stake})`);

    const me = Identity.generate();
    const models = new RoundModels({ modelsDir: join(dir, "models"), storage: () => undefined });
    const { ledger } = await spawnTrainingLedger(system, {
      identity: me,
      dir,
      now: () => clock.t,
      models,
      challenge: { challengeProbability: 0 },
    });
    const trainer = Identity.generate();
    await ledger.ask({ type: "deposit", key: trainer.publicKey, amount: STAKE });
    const delta = zeroDelta();
    const { connection } = trainerConnection(trainer, async (body) => {
      // The round takes its time on the test's clock; the node's finalize tick runs meanwhile.
      clock.t += ROUND_TAKES_MS;
      await ledger.ask({ type: "finalize" });
      return report(trainer, body, delta);
    });
    const lines: string[] = [];
    const coordinator = await system.spawn<CoordinatorMessage>({
      name: "node/coordinator",
      factory: () =>
        new RoundCoordinator({
          identity: me,
          arch: TINY,
          seed: 0,
          rounds: ROUNDS,
          steps: H,
          roundDeadlineMs: DEADLINE_MS,
          minTrainers: 1,
          models,
          validator: "node/training-validator",
          trainerStake: STAKE,
          timers: clockTimers(clock),
          log: (line) => lines.push(line),
        }),
    });
    await coordinator.ask({
      type: "join",
      connection,
      shardSize: SHARD.size,
      shardRoot: SHARD.root,
    });
    const status = await eventually(
      async () => {
        const s = await coordinator.ask<CoordinatorStatus>({ type: "status" });
        return s.history.length === ROUNDS ? s : undefined;
      },
      `${ROUNDS} rounds to finish`,
      { timeoutMs: 60_000 },
    );
    // The rounds waited for their pace on the test's clock.
    const paceMs = roundPaceMs({ arch: TINY, steps: H, roundMs: DEADLINE_MS }, STAKE);
    assert.ok(
      lines.some((l) => l.includes(`a round at most every ${paceMs} ms`)),
      lines.join("\n"),
    );
    const key = toHex(trainer.publicKey);
    for (const round of status.history) {
      assert.deepEqual(
        round.excluded,
        [],
        `round ${round.round}: the honest trainer's report left out\n${lines.join("\n")}`,
      );
      assert.deepEqual(round.accepted, [key], `round ${round.round}`);
    }
    // Every round's credit is in: once every window has closed, the trainer is paid for each.
    await eventually(
      async () => {
        clock.t += DEFAULT_ECONOMICS.challengeWindowMs + 1;
        await ledger.ask({ type: "finalize" });
        const account = await ledger.ask<Account>({ type: "account", key: trainer.publicKey });
        return account.balance === ROUNDS * need.credit ? account : undefined;
      },
      "the trainer paid for every round",
      { timeoutMs: 10_000 },
    );
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the pace reads the start check's rule: at the stake the check names, a round at most every deadline; a larger stake, a faster pace; a stake below it, the deadline's pace; nothing locked, no pace", () => {
  const terms = { arch: TINY, steps: H, roundMs: DEADLINE_MS };
  const need = trainingStakeNeeded(terms);
  // 6 rounds' locks, the count, backed: 5 paces span the 600 s window.
  assert.equal(roundPaceMs(terms, need.stake), DEADLINE_MS);
  // The default stake backs 10: 9 paces span it.
  assert.equal(roundPaceMs(terms, STAKE), Math.ceil(DEFAULT_ECONOMICS.challengeWindowMs / 9));
  assert.equal(roundPaceMs(terms, need.stake - 1), DEADLINE_MS);
  const free = { ...DEFAULT_ECONOMICS, trainingCreditPerStep: 0 };
  assert.equal(roundPaceMs(terms, STAKE, free), 0);
});
