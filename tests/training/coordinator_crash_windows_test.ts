/**
 * A round ends one way in every ledger, wherever a coordinator's stop finds it. Stopped before
 * the round is saved as finished, it is lost: this node's ledger pays nothing for it and no
 * outcome goes out (so no other ledger pays either), and the restart runs the next number from
 * the same model. Stopped after — here, between its credit and its outcome — it stands: the
 * restart sends its outcome and credits it again, which pays nothing twice, then runs the next
 * round from its model. Each case is checked on the ledger's balances, and on the outcomes that
 * left the coordinator (what every other ledger credits from).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ActorSystem } from "../../actors/actor_system.ts";
import { Identity } from "../../protocols/identity.ts";
import type { Account } from "../../proof/ledger.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import {
  type CoordinatorMessage,
  type CoordinatorStatus,
  RoundCoordinator,
} from "../../training/round_coordinator.ts";
import { RoundModels } from "../../training/round_models.ts";
import type { TrainingValidatorMessage } from "../../training/training_validator.ts";
import { commitShard } from "../../training/training_state.ts";
import { eventually } from "../_helpers/wait.ts";
import { TEST_ARCH, TEST_HYPER, testSplit } from "./_fixtures.ts";
import { honestTrainer } from "./_coordinator_trainers.ts";
import { ValidatorTap } from "./_validator_tap.ts";
import { spawnTrainingLedger } from "./_training_ledger.ts";

/** Local steps: the rounds only have to happen. */
const H = 2;
/** The trainer's stake, as its pledge would bring it. */
const STAKE = 10_000_000;
/** What one round pays the trainer. */
const ROUND_CREDIT = H * DEFAULT_ECONOMICS.trainingCreditPerStep;
const COORDINATOR = "node/coordinator";

/** Round models whose publish (of a round's model) or delta storage can be held once. */
class GatedModels extends RoundModels {
  gate?: "publish" | "putFile";
  readonly reached = Promise.withResolvers<void>();
  readonly release = Promise.withResolvers<void>();
  /** Resolves when the held publish has returned. */
  readonly published = Promise.withResolvers<void>();

  override async publish(...args: Parameters<RoundModels["publish"]>) {
    const held = this.gate === "publish" && args[2] !== undefined;
    if (held) await this.#hold();
    const model = await super.publish(...args);
    if (held) this.published.resolve();
    return model;
  }

  override async putFile(bytes: Uint8Array, name: string) {
    if (this.gate === "putFile") await this.#hold();
    return await super.putFile(bytes, name);
  }

  async #hold(): Promise<void> {
    this.gate = undefined;
    this.reached.resolve();
    await this.release.promise;
  }
}

/**
 * One node: a ledger, its TrainingValidator behind a tap, and a coordinator that can be stopped
 * and started again over the same data.
 */
async function node(dir: string, system: ActorSystem) {
  const clock = { t: Date.now() };
  const me = Identity.generate();
  const trainer = { id: Identity.generate(), shard: (await testSplit()).shards[0] };
  const models = new GatedModels({ modelsDir: join(dir, "models"), storage: () => undefined });
  const { ledger } = await spawnTrainingLedger(system, {
    identity: me,
    dir,
    now: () => clock.t,
    models,
    challenge: { challengeProbability: 0 },
  });
  await ledger.ask({ type: "deposit", key: trainer.id.publicKey, amount: STAKE });
  const tap = new ValidatorTap("node/training-validator");
  await system.spawn<TrainingValidatorMessage>({ name: "node/tap", factory: () => tap });
  return {
    models,
    tap,
    /** Start a coordinator over the node's data (resuming its state) and join the trainer. */
    async start(rounds: number, lines: string[] = []) {
      const coordinator = await system.spawn<CoordinatorMessage>({
        name: COORDINATOR,
        factory: () =>
          new RoundCoordinator({
            identity: me,
            arch: TEST_ARCH,
            seed: 0,
            rounds,
            steps: H,
            hyper: TEST_HYPER,
            roundDeadlineMs: 600_000,
            minTrainers: 1,
            models,
            validator: "node/tap",
            statePath: join(dir, "training", "coordinator.json"),
            log: (line) => lines.push(line),
          }),
      });
      const { size, root } = commitShard(trainer.shard, TEST_HYPER.sampleBytes);
      await coordinator.ask({
        type: "join",
        connection: honestTrainer(trainer.id, trainer.shard, models).connection,
        shardSize: size,
        shardRoot: root,
      });
      return coordinator;
    },
    /** The trainer's account once every challenge window has closed. */
    async account(): Promise<Account> {
      clock.t += 24 * 60 * 60 * 1000;
      await ledger.ask({ type: "finalize" });
      return await ledger.ask<Account>({ type: "account", key: trainer.id.publicKey });
    },
  };
}

/** The coordinator's status once `rounds` rounds are in its history. */
function finished(
  coordinator: { ask: <R>(m: CoordinatorMessage) => Promise<R> },
  rounds: number,
): Promise<CoordinatorStatus> {
  return eventually(
    async () => {
      const s = await coordinator.ask<CoordinatorStatus>({ type: "status" });
      return s.history.length >= rounds ? s : undefined;
    },
    `${rounds} rounds to finish`,
    { timeoutMs: 60_000 },
  );
}

for (
  const [where, gate, resumeOld] of [
    ["while it aggregates (the stopped incarnation's loop runs on)", "publish", true],
    ["while it stores the deltas (the process died there)", "putFile", false],
  ] as const
) {
  Deno.test(`a round stopped ${where}, before it was saved as finished, is lost in every ledger: nobody paid, no outcome, the next number runs from the same model`, async () => {
    const dir = await Deno.makeTempDir({ prefix: "veriflow-crash-lost-" });
    const system = new ActorSystem({ name: "lost" });
    try {
      const n = await node(dir, system);
      n.models.gate = gate;
      const first = await n.start(1);
      const seeded = (await first.ask<CoordinatorStatus>({ type: "status" })).model;
      await n.models.reached.promise; // round 0: past its challenges, model not yet saved
      await system.stop(COORDINATOR);
      if (resumeOld) {
        n.models.release.resolve();
        // The stopped loop gets its model and would go on to pay and announce round 0 at once.
        await n.models.published.promise;
      }

      const second = await n.start(1);
      const [round] = (await finished(second, 1)).history;
      assert.equal(round.round, 1, "round 0 is not run again under its number");
      assert.equal(round.startModel, seeded, "from the same model");
      await eventually(() => n.tap.outcomes.some((o) => o.round === 1), "round 1's outcome");

      assert.deepEqual(
        await n.account(),
        { balance: ROUND_CREDIT, stake: STAKE, locked: 0 },
        "paid once, for round 1",
      );
      assert.deepEqual(n.tap.credits, [1], "credited: round 1 only");
      assert.deepEqual(n.tap.outcomes.map((o) => o.round), [1], "announced: round 1 only");
    } finally {
      await system.shutdown();
      await Deno.remove(dir, { recursive: true });
    }
  });
}

Deno.test("a round stopped between its credit and its outcome stands: the restart announces it, pays nothing twice, and runs the next round from its model", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-crash-credited-" });
  const system = new ActorSystem({ name: "credited" });
  const release = Promise.withResolvers<void>();
  try {
    const n = await node(dir, system);
    const held = n.tap.holdNextCredit(release.promise);
    await n.start(2);
    await held; // round 0 credited in the ledger, its outcome not yet sent
    const stopping = system.stop(COORDINATOR);
    release.resolve(); // the credit returns to a stopped incarnation
    await stopping;
    assert.equal(n.tap.outcomes.length, 0, "the stopped incarnation sent no outcome");

    const lines: string[] = [];
    const second = await n.start(2, lines);
    const status = await finished(second, 2);
    await eventually(() => n.tap.outcomes.some((o) => o.round === 1), "round 1's outcome");

    assert.deepEqual(
      await n.account(),
      { balance: 2 * ROUND_CREDIT, stake: STAKE, locked: 0 },
      "paid once per finished round: round 0 was not paid again",
    );
    assert.deepEqual(status.history.map((r) => r.round), [0, 1], "round 0 stands");
    assert.equal(status.history[1].startModel, status.history[0].model, "round 1 from round 0");
    assert.deepEqual(
      n.tap.outcomes.map((o) => [o.round, o.model]),
      status.history.map((r) => [r.round, r.model]),
      "each finished round announced once, with its model",
    );
    assert.deepEqual(n.tap.credits, [0, 0, 1], "round 0 credited again after the restart");
    assert.ok(
      lines.some((l) =>
        l.startsWith("training: resuming at round 1") &&
        l.includes("round 0 had finished: its credit and outcome go out again")
      ),
      lines.join("\n"),
    );
  } finally {
    release.resolve();
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
