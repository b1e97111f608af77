/**
 * A trainer that trains nothing, as a coordinator sees it: it answers each round with a signed
 * report on a made-up delta, and each challenge with bytes of the test's choosing as its sealed
 * opening; and a coordinator of one round over the trainers that join it. For the tests of what
 * a round and its ledgers do with such a trainer (left out, slashed, paid nothing).
 */
import type { ActorRef } from "../../actors/actor_ref.ts";
import type { ActorSystem } from "../../actors/actor_system.ts";
import type { Connection } from "../../protocols/connection.ts";
import { Identity } from "../../protocols/identity.ts";
import { sha256Hex } from "../../protocols/hash.ts";
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
import { eventually } from "../_helpers/wait.ts";
import { RoundModels } from "../../training/round_models.ts";
import type { TrainingChallenge } from "../../training/training_challenge.ts";
import {
  signTrainingReceipt,
  TRAINING_RECEIPT_VERSION,
  type TrainingReceipt,
} from "../../training/training_receipt.ts";
import { TEST_ARCH, TEST_HYPER } from "./_fixtures.ts";
import { spawnTrainingLedger, type TrainingLedgerOptions } from "./_training_ledger.ts";

/** What a {@link reportingTrainer} answers. */
export interface ReportingTrainerOptions {
  /**
   * Each delta value by its index (default: small, 1e-3 · sin(i + 1 + k), k from the key's first
   * two bytes: two trainers' made-up work differs, as a coordinator pays one piece of work once).
   */
  value?: (i: number) => number;
  /** The whole made-up delta, tensor by tensor (instead of `value`). */
  delta?: GptWeights;
  /** The bytes of its answer to a challenge (default: none: the challenge is refused). */
  answer?: (challenge: TrainingChallenge) => Uint8Array;
  /** Where each receipt it signs is recorded. */
  sent?: TrainingReceipt[];
}

/** See the module doc; `shard` is the commitment it joined with. */
export function reportingTrainer(
  identity: Identity,
  start: GptWeights,
  shard: { size: number; root: string },
  options: ReportingTrainerOptions = {},
): Connection {
  // Two key bytes, not one: with one, 3 reporters share a phase in 1.2 % of runs
  // (1 − 255·254/256²), send the same delta, and one is refused as `duplicate_work`.
  const phase = identity.publicKey[0] * 256 + identity.publicKey[1];
  const value = options.value ?? ((i: number) => 1e-3 * Math.sin(i + 1 + phase));
  let answer: Uint8Array | undefined;
  return {
    peerKey: identity.publicKey,
    closed: new Promise<void>(() => {}),
    request: (definition: unknown, body: unknown) => {
      if (definition === RoundMessage) {
        const b = body as RoundBody;
        const delta = encodeInt8Delta(quantizeDelta(
          options.delta ?? new Map([...start].map(([n, t]) => [n, {
            shape: [...t.shape],
            data: t.data.map((_x, i) => value(i)),
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
          // No training was done at all: a root of nothing, the trainer's own.
          checkpointsRoot: sha256Hex(identity.publicKey),
          shardRoot: shard.root,
          shardSize: shard.size,
          losses: Array.from({ length: b.steps }, () => 3),
          deltaHash: deltaHash(delta),
          deltaBytes: delta.length,
        }, identity);
        options.sent?.push(receipt);
        return Promise.resolve({ receipt, delta });
      }
      if (definition === ChallengeMessage && options.answer !== undefined) {
        answer = options.answer((body as { challenge: TrainingChallenge }).challenge);
        return Promise.resolve({ size: answer.length, parts: 1, sha256: sha256Hex(answer) });
      }
      if (definition === OpeningPartMessage && answer !== undefined) {
        return Promise.resolve({ bytes: answer });
      }
      return Promise.reject(new Error("not asked in this test"));
    },
  } as unknown as Connection;
}

/**
 * One node's round, ready for trainers to join: its ledger and training validator (challenge
 * options as given, a ledger clock the test moves), each key of `stakes` staked, and a
 * coordinator of one round of `steps` steps; the seeded start weights and a shard commitment
 * for the trainers.
 */
export async function oneRound(
  system: ActorSystem,
  dir: string,
  options: {
    challenge: TrainingLedgerOptions["challenge"];
    steps: number;
    minTrainers: number;
    stakes: [Identity, number][];
  },
) {
  const me = Identity.generate();
  const clock = { t: Date.now() };
  const models = new RoundModels({ modelsDir: dir, storage: () => undefined });
  const { ledger, training } = await spawnTrainingLedger(system, {
    identity: me,
    dir,
    now: () => clock.t,
    models,
    challenge: options.challenge,
  });
  for (const [key, amount] of options.stakes) {
    await ledger.ask({ type: "deposit", key: key.publicKey, amount });
  }
  const coordinator = await oneRoundCoordinator(system, { identity: me, models, ...options });
  const start = seededGptWeights(TEST_ARCH, 0);
  const shard = { size: 100, root: "cc".repeat(32) };
  /** `connection` joins the round with the shard commitment. */
  const join = (connection: Connection) =>
    coordinator.ask({ type: "join", connection, shardSize: shard.size, shardRoot: shard.root });
  /** The round's record, once it ended. */
  const ended = async () =>
    (await eventually(async () => {
      const status = await coordinator.ask<CoordinatorStatus>({ type: "status" });
      return status.history.length === 1 ? status : undefined;
    }, "round 0 to end")).history[0];
  return { me, clock, models, ledger, training, coordinator, start, shard, join, ended };
}

/** A coordinator (`node/coordinator`) of one round of `steps` steps, its validator the node's. */
export function oneRoundCoordinator(
  system: ActorSystem,
  options: { identity: Identity; models: RoundModels; steps: number; minTrainers: number },
): Promise<ActorRef<CoordinatorMessage>> {
  return system.spawn<CoordinatorMessage>({
    name: "node/coordinator",
    factory: () =>
      new RoundCoordinator({
        identity: options.identity,
        arch: TEST_ARCH,
        seed: 0,
        rounds: 1,
        steps: options.steps,
        hyper: TEST_HYPER,
        roundDeadlineMs: 600_000,
        minTrainers: options.minTrainers,
        models: options.models,
        validator: "node/training-validator",
      }),
  });
}
