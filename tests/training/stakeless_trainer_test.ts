/**
 * A trainer whose receipt the coordinator's ledger refuses (no stake to lock) has nothing at
 * risk: a fraud proof against it would settle nowhere. Its delta is left out of the round. It
 * used to be averaged in whatever the ledger said (found by a review at stop 33), so a fresh key
 * could push a made-up delta into the model every round the coin did not draw it.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { Identity } from "../../protocols/identity.ts";
import type { Connection } from "../../protocols/connection.ts";
import { toHex } from "../../protocols/hash.ts";
import { type RoundBody, RoundMessage } from "../../protocols/training_messages.ts";
import { type GptWeights, seededGptWeights } from "../../training/gpt_weights.ts";
import { deltaHash, encodeInt8Delta, quantizeDelta } from "../../training/int8_delta.ts";
import {
  type CoordinatorMessage,
  type CoordinatorStatus,
  RoundCoordinator,
} from "../../training/round_coordinator.ts";
import { RoundModels } from "../../training/round_models.ts";
import {
  signTrainingReceipt,
  TRAINING_RECEIPT_VERSION,
  type TrainingReceipt,
  trainingReceiptId,
} from "../../training/training_receipt.ts";
import { eventually } from "../_helpers/wait.ts";
import { TEST_ARCH, TEST_HYPER } from "./_fixtures.ts";
import { spawnTrainingLedger } from "./_training_ledger.ts";

const STEPS = 3;

/** A trainer that reports a large made-up "delta" (a poisoning attempt) without training. */
function poisoner(
  identity: Identity,
  start: GptWeights,
  shard: { size: number; root: string },
  sent: TrainingReceipt[],
): Connection {
  return {
    peerKey: identity.publicKey,
    closed: new Promise<void>(() => {}),
    request: (definition: unknown, body: unknown) => {
      if (definition !== RoundMessage) return Promise.reject(new Error("not asked"));
      const b = body as RoundBody;
      const delta = encodeInt8Delta(quantizeDelta(
        new Map([...start].map(([n, t]) => [n, {
          shape: [...t.shape],
          data: t.data.map(() => 500), // far from anything H AdamW steps give, under 1024
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
        checkpointsRoot: "bb".repeat(32),
        shardRoot: shard.root,
        shardSize: shard.size,
        losses: Array.from({ length: b.steps }, () => 3),
        deltaHash: deltaHash(delta),
        deltaBytes: delta.length,
      }, identity);
      sent.push(receipt);
      return Promise.resolve({ receipt, delta });
    },
  } as unknown as Connection;
}

Deno.test("a trainer with no stake has its receipt refused by the ledger and its delta left out of the round", async () => {
  const dir = await Deno.makeTempDir({ prefix: "review-stakeless-" });
  const system = new ActorSystem({ name: "review-stakeless" });
  try {
    const me = Identity.generate();
    const models = new RoundModels({ modelsDir: dir, storage: () => undefined });
    // Production default is 0.1: 9 rounds in 10 the coordinator challenges nothing. Here 0.
    const { ledger } = await spawnTrainingLedger(system, {
      identity: me,
      dir,
      now: Date.now,
      models,
      challenge: { challengeProbability: 0 },
    });
    const sybil = Identity.generate(); // fresh key, never deposited anything
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
    const sent: TrainingReceipt[] = [];
    await coordinator.ask({
      type: "join",
      connection: poisoner(sybil, start, shard, sent),
      shardSize: shard.size,
      shardRoot: shard.root,
    });
    const status = await eventually(async () => {
      const s = await coordinator.ask<CoordinatorStatus>({ type: "status" });
      return s.history.length === 1 ? s : undefined;
    }, "round 0 to end");
    const record = status.history[0];
    assert.deepEqual(record.accepted, []);
    assert.equal(record.model, record.startModel, "no model made of nothing");
    const why = record.excluded.find((e) => e.key === toHex(sybil.publicKey))?.reason ?? "";
    assert.match(why, /receipt not recorded \(insufficient_stake\)/);
    const inLedger = await ledger.ask({
      type: "receipt_status",
      receiptId: trainingReceiptId(sent[0]),
    });
    assert.equal(inLedger ?? undefined, undefined, "nothing recorded, nothing to pay");
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
