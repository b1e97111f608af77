/**
 * Review of the signed-outcome gate (`training/signed_outcome.ts`, the TrainingValidator's
 * `#mayAudit`): what a third party can make a node refuse of an honest coordinator's outcomes.
 * A signature proves who made an outcome, not when: anyone holding a staked coordinator's
 * earlier outcomes can send them again, and each is charged to that coordinator.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ActorSystem } from "../../actors/actor_system.ts";
import { StorageActor } from "../../actors/storage_actor.ts";
import type { StorageMessage } from "../../actors/storage_actor_messages.ts";
import { cidOf } from "../../protocols/cid.ts";
import { toHex } from "../../protocols/hash.ts";
import { Identity } from "../../protocols/identity.ts";
import type { OutcomeBody } from "../../protocols/training_messages.ts";
import { RoundModels } from "../../training/round_models.ts";
import { signOutcome } from "../../training/signed_outcome.ts";
import type { TrainingReceipt } from "../../training/training_receipt.ts";
import {
  MAX_AUDITS_PER_COORDINATOR,
  PEER_AUDIT_WINDOW_MS,
  TrainingValidator,
  type TrainingValidatorMessage,
  type TrainingValidatorStats,
} from "../../training/training_validator.ts";
import { eventually } from "../_helpers/wait.ts";
import { spawnStakesLedger } from "./_stakes_ledger.ts";
import { placeholderReceipt } from "./_placeholder_receipt.ts";
import { TEST_ARCH } from "./_fixtures.ts";
import { honestRound } from "./_honest_round.ts";

const STAKE = 1_000_000;
const file = (text: string) => cidOf(new TextEncoder().encode(text));

/** An outcome from a start model this node never saw: audited without a fetch, `unverified`. */
function outcomeOf(n: string, model = file(`model ${n}`), receipt?: TrainingReceipt): OutcomeBody {
  const start = file(`a start model never seen ${n}`);
  const r = receipt ?? placeholderReceipt(5, start);
  return {
    round: 5,
    startModel: start,
    model,
    file: file(`model file ${n}`),
    arch: TEST_ARCH,
    accepted: [toHex(r.trainer)],
    reports: [{ receipt: r, deltaFile: file(`delta ${n}`) }],
    excluded: [],
  };
}

async function spawnNode(system: ActorSystem, clock: { t: number }, staked: Identity[]) {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-signed-outcome-review-" });
  await spawnStakesLedger(system, staked.map((k) => [k.publicKey, STAKE]));
  const training = await system.spawn<TrainingValidatorMessage>({
    name: "node/training-validator",
    factory: () =>
      new TrainingValidator({
        identity: Identity.generate(),
        models: new RoundModels({ modelsDir: dir, storage: () => undefined }),
        ledger: "node/validator",
        challengeProbability: 0,
        now: () => clock.t,
      }),
  });
  const stats = () => training.ask<TrainingValidatorStats>({ type: "stats" });
  return { dir, training, stats };
}

Deno.test("an honest coordinator's outcome refused for a budget that replays of its old outcomes spent is audited when relayed again after the window", async () => {
  const system = new ActorSystem({ name: "signed-outcome-review-replay" });
  const clock = { t: 1_000_000 };
  const coordinator = Identity.generate();
  const node = await spawnNode(system, clock, [coordinator]);
  try {
    // The coordinator's earlier rounds, genuine and signed; a node that restarted has none of
    // them in memory. One peer sends them all again: each is charged to the coordinator.
    const old = Array.from(
      { length: MAX_AUDITS_PER_COORDINATOR },
      (_, i) => signOutcome(outcomeOf(`old ${i}`), coordinator),
    );
    for (const body of old) {
      await node.training.tell({ type: "outcome", body, origin: "replayer" });
    }
    await eventually(
      async () => (await node.stats()).unverified.length === old.length,
      "the replays audited",
    );
    // Its new round's outcome, from an honest relay: refused for the spent budget.
    const fresh = signOutcome(outcomeOf("new round"), coordinator);
    await node.training.tell({ type: "outcome", body: fresh, origin: "honest-relay" });
    await eventually(
      async () =>
        (await node.stats()).outcomesRefused.some((r) => r.reason === "coordinator_budget"),
      "refused for the coordinator's budget",
    );
    // The window passes; the same outcome comes again (another relay, or its coordinator
    // sending it again): the budget is back, so it is audited, not dropped as seen.
    clock.t += PEER_AUDIT_WINDOW_MS;
    await node.training.tell({ type: "outcome", body: fresh, origin: "another-relay" });
    const stats = await eventually(
      async () => {
        const s = await node.stats();
        return s.unverified.includes(fresh.model) ? s : undefined;
      },
      "the new outcome audited after the window",
    ).catch(() => undefined);
    console.log(
      "after the window:",
      stats === undefined ? "the new outcome was dropped (seen)" : "audited",
    );
    assert.ok(stats !== undefined, "the honest outcome is audited once the budget is back");
  } finally {
    await system.shutdown();
    await Deno.remove(node.dir, { recursive: true });
  }
});

Deno.test("an outcome the per-model bound refuses takes nothing from its coordinator's budget", async () => {
  const system = new ActorSystem({ name: "signed-outcome-review-model-bound" });
  const clock = { t: 1_000_000 };
  const coordinator = Identity.generate();
  const attackers = Array.from({ length: 4 }, () => Identity.generate());
  const node = await spawnNode(system, clock, [coordinator, ...attackers]);
  try {
    // Staked keys each sign a copy naming the honest model's CID, with a receipt its trainer
    // did not sign: each fails its audit at once, and the model's copies are spent.
    const model = file("the honest model");
    for (const [i, key] of attackers.entries()) {
      const start = file(`a start model never seen bad ${i}`);
      const receipt = { ...placeholderReceipt(5, start), sig: placeholderReceipt(5, start).sig };
      const body = signOutcome(outcomeOf(`bad ${i}`, model, receipt), key);
      await node.training.tell({ type: "outcome", body, origin: `attacker-${i}` });
    }
    await eventually(
      async () => (await node.stats()).refused.length === attackers.length,
      "the bad copies audited",
    );
    // The honest coordinator's outcome for that model: not audited (the model's copies are
    // spent), and then its own next outcomes, each from a fresh relay.
    const honest = signOutcome(outcomeOf("honest", model), coordinator);
    await node.training.tell({ type: "outcome", body: honest, origin: "honest-relay" });
    for (let i = 0; i < MAX_AUDITS_PER_COORDINATOR; i++) {
      const body = signOutcome(outcomeOf(`next ${i}`), coordinator);
      await node.training.tell({ type: "outcome", body, origin: `relay-${i}` });
    }
    await eventually(async () => {
      const s = await node.stats();
      return s.unverified.length + s.outcomesRefused.length >= MAX_AUDITS_PER_COORDINATOR;
    }, "its next outcomes taken up");
    const s = await node.stats();
    console.log(
      `next outcomes audited: ${s.unverified.length}, refused:`,
      s.outcomesRefused.map((r) => r.reason),
    );
    assert.equal(s.unverified.length, MAX_AUDITS_PER_COORDINATOR, "each of its next audited");
  } finally {
    await system.shutdown();
    await Deno.remove(node.dir, { recursive: true });
  }
});

/**
 * An honest round 0 (trained for real, its deltas and start model in `storage`), signed by
 * `coordinator`.
 */
async function signedHonestRound(models: RoundModels, coordinator: Identity) {
  return signOutcome((await honestRound(models, 2)).outcome, coordinator);
}

// Failed on 0aeef43: round_audit.ts turned any error of `aggregateRound` into `delta_mismatch`,
// this node's own I/O errors included (writing the reproduced model), and the validator benched
// the signer for it.
Deno.test({
  name: "an honest coordinator is not benched when this node cannot write the model it reproduced",
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "veriflow-signed-outcome-review-io-" });
    const system = new ActorSystem({ name: "signed-outcome-review-io" });
    const clock = { t: 1_000_000 };
    const lines: string[] = [];
    try {
      const storageRef = await system.spawn<StorageMessage>({
        name: "node/storage",
        factory: () => new StorageActor({ dir: join(dir, "store") }),
      });
      const storage = () => storageRef;
      const coordinator = Identity.generate();
      const signed = await signedHonestRound(
        new RoundModels({ modelsDir: join(dir, "coordinator"), storage }),
        coordinator,
      );
      await spawnStakesLedger(system, [[coordinator.publicKey, STAKE]]);
      const modelsDir = join(dir, "node-models");
      await Deno.mkdir(modelsDir, { recursive: true });
      // This node's disk cannot take the reproduced model (a file where its directory goes:
      // as a full disk or a permission error would).
      await Deno.writeTextFile(join(modelsDir, signed.model), "in the way");
      const training = await system.spawn<TrainingValidatorMessage>({
        name: "node/training-validator",
        factory: () =>
          new TrainingValidator({
            identity: Identity.generate(),
            models: new RoundModels({ modelsDir, storage }),
            ledger: "node/validator",
            challengeProbability: 0,
            now: () => clock.t,
            log: (line) => lines.push(line),
          }),
      });
      const stats = () => training.ask<TrainingValidatorStats>({ type: "stats" });
      await training.tell({ type: "outcome", body: signed, origin: "peer" });
      // The audit ends without a verdict (this node's error, logged), not refused.
      const ended = await eventually(
        () => lines.find((l) => l.includes("not adopted")),
        "the audit ended",
      );
      assert.deepEqual((await stats()).refused, [], "the honest model is not refused");
      // The coordinator's next outcome, from another relay.
      const next = signOutcome(outcomeOf("next"), coordinator);
      await training.tell({ type: "outcome", body: next, origin: "another-peer" });
      const s = await eventually(async () => {
        const s = await stats();
        return s.unverified.length + s.outcomesRefused.length > 0 ? s : undefined;
      }, "the next outcome taken up");
      console.log("audit:", ended, "next:", s.outcomesRefused.map((r) => r.reason));
      assert.deepEqual(s.outcomesRefused, [], "the coordinator is not benched");
    } finally {
      await system.shutdown();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
