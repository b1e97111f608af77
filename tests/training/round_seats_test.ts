/**
 * Who a coordinator's round asks (`training/_round_seats.ts`): seats go only to joined trainers
 * whose free stake in the coordinator's ledger backs the lock of the round's receipt. Review s73
 * F3: seats went by hash rank alone and stake was read only after the reports, so 256 stakeless
 * keys ground to rank first took every seat, every report was refused, no model was made and the
 * staked honest trainer was never asked. The check after the reports stays: stake can move between
 * the seating and the report.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { Connection } from "../../protocols/connection.ts";
import { Identity } from "../../protocols/identity.ts";
import { toHex } from "../../protocols/hash.ts";
import { MAX_OUTCOME_TRAINERS, RoundMessage } from "../../protocols/training_messages.ts";
import { DEFAULT_ECONOMICS, trainingLock } from "../../proof/economics.ts";
import type { Account } from "../../proof/ledger.ts";
import { gptDeltaBytes } from "../../training/delta_bytes.ts";
import { DEFAULT_LOCAL_HYPER_PARAMS } from "../../training/hyper_params.ts";
import { excludedCountsOf } from "../../training/excluded_summary.ts";
import type { CoordinatorStatus } from "../../training/round_coordinator.ts";
import { dataSeedOf } from "../../training/round_coordinator.ts";
import {
  signTrainingReceipt,
  TRAINING_RECEIPT_VERSION,
  type TrainingReceipt,
  type UnsignedTrainingReceipt,
} from "../../training/training_receipt.ts";
import { NO_SEAT_STAKE } from "../../training/_round_seats.ts";
import { TEST_ARCH, TEST_HYPER } from "./_fixtures.ts";
import { oneRound, reportingTrainer } from "./_reporting_trainer.ts";

/** Local steps of the rounds here: what a seat needs does not depend on them. */
const STEPS = 2;
/** What one receipt of these rounds locks in a ledger of the default economics. */
const LOCK = trainingLock(DEFAULT_ECONOMICS, {
  steps: STEPS,
  deltaBytes: gptDeltaBytes(TEST_ARCH),
  hyper: TEST_HYPER,
});

/** Keys whose data seed for round 0 ranks before `than`'s: they would take the seats first. */
function rankedBefore(than: Identity, count: number): Identity[] {
  const rank = dataSeedOf(0, toHex(than.publicKey));
  const keys: Identity[] = [];
  while (keys.length < count) {
    const key = Identity.generate();
    if (dataSeedOf(0, toHex(key.publicKey)) < rank) keys.push(key);
  }
  return keys;
}

/** A staked trainer's key that ranks late in round 0 (a crowd ranked before it is cheap to make). */
function lateRanked(): Identity {
  for (;;) {
    const key = Identity.generate();
    if (dataSeedOf(0, toHex(key.publicKey)) > 0.75 * 2 ** 32) return key;
  }
}

Deno.test("a crowd of stakeless joiners ranked first takes no seat: the staked trainer is asked and its delta goes in, the crowd is counted as not seated", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-seats-" });
  const system = new ActorSystem({ name: "seats-crowd" });
  try {
    const honest = lateRanked();
    const crowd = rankedBefore(honest, MAX_OUTCOME_TRAINERS);
    const { ledger, coordinator, start, shard, join, ended } = await oneRound(system, dir, {
      challenge: { challengeProbability: 0 },
      steps: STEPS,
      // Every join is in before round 0 is seated.
      minTrainers: crowd.length + 1,
      stakes: [[honest, 1_000_000]],
    });
    const asked = new Set<string>();
    /** `key`'s reporting trainer, noting each round it is asked. */
    const trainer = (key: Identity): Connection => {
      const inner = reportingTrainer(key, start, shard);
      return {
        ...inner,
        request: (definition: unknown, body: unknown) => {
          if (definition === RoundMessage) asked.add(toHex(key.publicKey));
          return (inner.request as (d: unknown, b: unknown) => Promise<unknown>)(definition, body);
        },
      } as unknown as Connection;
    };
    await join(trainer(honest));
    for (const key of crowd) await join(trainer(key));
    const record = await ended();
    const honestKey = toHex(honest.publicKey);
    assert.deepEqual(record.accepted, [honestKey], "the staked trainer's delta went in");
    assert.notEqual(record.model, record.startModel, "a model was made");
    assert.deepEqual([...asked], [honestKey], "no stakeless key was asked");
    // Each one is told why, in the round's record and the status.
    assert.deepEqual(excludedCountsOf(record), [{ reason: NO_SEAT_STAKE, count: crowd.length }]);
    assert.match(
      record.excluded[0].reason,
      new RegExp(
        `^${NO_SEAT_STAKE.replace(/[()]/g, "\\$&")}: free stake 0 here, a receipt locks ${LOCK}$`,
      ),
    );
    const status = await coordinator.ask<CoordinatorStatus>({ type: "status" });
    assert.deepEqual(status.trainers, [honestKey], "only the trainer it can ask is counted");
    assert.equal(status.unbacked, crowd.length);
    const account = await ledger.ask<Account>({ type: "account", key: honest.publicKey });
    assert.equal(account.locked, LOCK, "its receipt recorded, its stake locked for it");
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a trainer whose stake is locked between its seat and its report is still left out: the ledger's check after the reports stays", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-seats-moved-" });
  const system = new ActorSystem({ name: "seats-moved" });
  try {
    const trainerId = Identity.generate();
    // Exactly one receipt's lock: seated, then the lock of another claim takes it all.
    const { ledger, training, start, shard, join, ended } = await oneRound(system, dir, {
      challenge: { challengeProbability: 0 },
      steps: STEPS,
      minTrainers: 1,
      stakes: [[trainerId, LOCK]],
    });
    const sent: TrainingReceipt[] = [];
    const inner = reportingTrainer(trainerId, start, shard, { sent });
    const other: Omit<UnsignedTrainingReceipt, "trainer"> = {
      v: TRAINING_RECEIPT_VERSION,
      round: 999,
      startModel: "bafkother",
      steps: STEPS,
      dataSeed: 1,
      hyper: { ...DEFAULT_LOCAL_HYPER_PARAMS, ...TEST_HYPER },
      samplesRoot: "aa".repeat(32),
      sampleCount: STEPS * TEST_HYPER.batchSize,
      checkpointsRoot: "bb".repeat(32),
      shardRoot: shard.root,
      shardSize: shard.size,
      losses: Array.from({ length: STEPS }, () => 1),
      deltaHash: "dd".repeat(32),
      deltaBytes: gptDeltaBytes(TEST_ARCH),
    };
    const connection = {
      ...inner,
      request: async (definition: unknown, body: unknown) => {
        if (definition === RoundMessage) {
          // Its other claim (gossiped from a peer's round) is recorded first: its stake is locked.
          const receipt = signTrainingReceipt(other, trainerId);
          const terms = { round: 999, startModel: "bafkother", steps: STEPS };
          const recorded = await training.ask<{ recorded: boolean }>({
            type: "receipt",
            body: { receipt, terms },
            origin: "ee".repeat(32),
          });
          assert.equal(recorded.recorded, true, "the other claim locks the whole stake");
        }
        return await (inner.request as (d: unknown, b: unknown) => Promise<unknown>)(
          definition,
          body,
        );
      },
    } as unknown as Connection;
    await join(connection);
    const record = await ended();
    assert.equal(sent.length, 1, "seated: it was asked and reported");
    assert.deepEqual(record.accepted, []);
    assert.equal(record.model, record.startModel, "no model made of an unbacked delta");
    assert.match(record.excluded[0]?.reason ?? "", /receipt not recorded \(insufficient_stake\)/);
    const account = await ledger.ask<Account>({ type: "account", key: trainerId.publicKey });
    assert.equal(account.locked, LOCK, "only the other claim's lock");
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
