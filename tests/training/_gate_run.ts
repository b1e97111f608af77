/**
 * Test fixture: rounds of a coordinator that evaluates held-out loss (the loss gate's), its ledger
 * with challenge probability 0 (no reporter is ever challenged: the gate alone decides), and
 * made-up reporters, each staked; the ledger finalized after the last round so each account reads
 * what it was paid.
 *
 * @module
 */
import { ActorSystem } from "../../actors/actor_system.ts";
import { Identity } from "../../protocols/identity.ts";
import { toHex } from "../../protocols/hash.ts";
import type { Account } from "../../proof/ledger.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { RoundModels } from "../../training/round_models.ts";
import { seededGptWeights } from "../../training/gpt_weights.ts";
import {
  type CoordinatorMessage,
  type CoordinatorStatus,
  RoundCoordinator,
} from "../../training/round_coordinator.ts";
import { eventually } from "../_helpers/wait.ts";
import { reportingTrainer, type ReportingTrainerOptions } from "./_reporting_trainer.ts";
import { spawnTrainingLedger } from "./_training_ledger.ts";
import { TEST_ARCH, TEST_HYPER, testSplit } from "./_fixtures.ts";

/** What each reporter holds in the ledger before the rounds. */
export const GATE_STAKE = 1_000_000;

/** What {@link gateRounds} returns. */
export interface GateRounds {
  /** The coordinator's status after the last round. */
  status: CoordinatorStatus;
  /** Each reporter's hex key, in the order given. */
  keys: string[];
  /** Each reporter's account after the challenge window, in the order given. */
  accounts: Account[];
}

/**
 * `rounds` rounds of `steps` steps; `reporters` made-up reporters (`_reporting_trainer.ts`), all
 * joined before round 0 and all asked every round.
 */
export async function gateRounds(options: {
  steps: number;
  rounds: number;
  reporters: Pick<ReportingTrainerOptions, "value" | "delta">[];
  /** Where the coordinator saves its state (absent: not saved). */
  statePath?: string;
}): Promise<GateRounds> {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-loss-gate-" });
  const system = new ActorSystem({ name: "loss-gate" });
  try {
    const me = Identity.generate();
    const ids = options.reporters.map(() => Identity.generate());
    const clock = { t: Date.now() };
    const models = new RoundModels({ modelsDir: dir, storage: () => undefined });
    const { ledger } = await spawnTrainingLedger(system, {
      identity: me,
      dir,
      now: () => clock.t,
      models,
      challenge: { challengeProbability: 0 },
    });
    for (const k of ids) {
      await ledger.ask({ type: "deposit", key: k.publicKey, amount: GATE_STAKE });
    }
    const split = await testSplit();
    const coordinator = await system.spawn<CoordinatorMessage>({
      name: "node/coordinator",
      factory: () =>
        new RoundCoordinator({
          identity: me,
          arch: TEST_ARCH,
          seed: 0,
          rounds: options.rounds,
          convicted: () => Promise.resolve(false),
          steps: options.steps,
          hyper: TEST_HYPER,
          roundDeadlineMs: 600_000,
          // Everyone in round 0: which rounds each is in does not race.
          minTrainers: ids.length,
          models,
          validator: "node/training-validator",
          heldOut: split.heldOut,
          statePath: options.statePath,
        }),
    });
    const start = seededGptWeights(TEST_ARCH, 0);
    const shard = { size: 100, root: "cc".repeat(32) };
    for (const [i, identity] of ids.entries()) {
      await coordinator.ask({
        type: "join",
        connection: reportingTrainer(identity, start, shard, options.reporters[i]),
        shardSize: shard.size,
        shardRoot: shard.root,
      });
    }
    const status = await eventually(
      async () => {
        const s = await coordinator.ask<CoordinatorStatus>({ type: "status" });
        return s.history.length === options.rounds ? s : undefined;
      },
      "the rounds to end",
      { timeoutMs: 120_000 },
    );
    clock.t += DEFAULT_ECONOMICS.challengeWindowMs + 1;
    await ledger.ask({ type: "finalize" });
    const accounts = await Promise.all(
      ids.map((k) => ledger.ask<Account>({ type: "account", key: k.publicKey })),
    );
    return { status, keys: ids.map((k) => toHex(k.publicKey)), accounts };
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
}
