/**
 * Signed outcomes (`training/signed_outcome.ts`): a node audits a round's outcome only when its
 * coordinator signed it and holds stake in the node's ledger, charges the audit to that
 * coordinator whoever relayed it, and stops auditing a coordinator whose signed outcome did not
 * reproduce. Each branch is seen in what the node serves and in its ledger: an audited outcome's
 * receipts are recorded there with their credit; a refused one records nothing.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import type { ActorRef } from "../../actors/actor_ref.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import { StorageActor } from "../../actors/storage_actor.ts";
import type { StorageMessage } from "../../actors/storage_actor_messages.ts";
import { ValidatorActor } from "../../actors/validator_actor.ts";
import type { ValidatorMessage } from "../../actors/validator_messages.ts";
import { decodeCbor, encodeCbor } from "../../protocols/cbor.ts";
import { toHex } from "../../protocols/hash.ts";
import { Identity } from "../../protocols/identity.ts";
import { OutcomeMessage } from "../../protocols/training_messages.ts";
import type { ReceiptRecord } from "../../proof/ledger_state.ts";
import { RoundModels } from "../../training/round_models.ts";
import { outcomeSignature, signOutcome } from "../../training/signed_outcome.ts";
import { type TrainingReceipt, trainingReceiptId } from "../../training/training_receipt.ts";
import {
  FALSE_OUTCOME_BENCH_MS,
  MAX_AUDITS_PER_COORDINATOR,
  TrainingValidator,
  type TrainingValidatorMessage,
  type TrainingValidatorStats,
} from "../../training/training_validator.ts";
import { eventually } from "../_helpers/wait.ts";
import { honestRound } from "./_honest_round.ts";
import { uncheckableOutcome } from "./_uncheckable_outcome.ts";

/** Local steps: the gate does not depend on how far the trainers got. */
const H = 3;
/** Stake of every key deposited here: above any ledger's bar for a peer's claim. */
const STAKE = 1_000_000;

/** One node's ledger and training validator (named apart, so that each step has its own). */
async function spawnNode(
  system: ActorSystem,
  dir: string,
  name: string,
  storage: () => ActorRef<StorageMessage>,
  clock: { t: number },
) {
  const served: string[] = [];
  const ledger = await system.spawn<ValidatorMessage>({
    name: `${name}/validator`,
    factory: () =>
      new ValidatorActor({
        identity: Identity.generate(),
        ledgerDir: join(dir, name, "ledger"),
        ledger: { now: () => clock.t },
        finalizeIntervalMs: 0,
        models: { get: () => Promise.resolve(undefined) },
      }),
  });
  const models = new RoundModels({ modelsDir: join(dir, name, "models"), storage });
  const training = await system.spawn<TrainingValidatorMessage>({
    name: `${name}/training-validator`,
    factory: () =>
      new TrainingValidator({
        identity: Identity.generate(),
        models,
        ledger: `${name}/validator`,
        challengeProbability: 0,
        now: () => clock.t,
        serve: (modelDir) => Promise.resolve(void served.push(modelDir)),
      }),
  });
  const stats = () => training.ask<TrainingValidatorStats>({ type: "stats" });
  const deposit = (key: Identity) =>
    ledger.ask({ type: "deposit", key: key.publicKey, amount: STAKE });
  const recorded = (receipt: TrainingReceipt) =>
    ledger.ask<ReceiptRecord | undefined>({
      type: "receipt_status",
      receiptId: trainingReceiptId(receipt),
    });
  return { ledger, training, served, stats, deposit, recorded };
}

Deno.test("a round's outcome is audited only when a coordinator staked in this ledger signed it, charged to that coordinator, and a coordinator whose signed outcome fails is not audited for a while", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-signed-outcome-" });
  const system = new ActorSystem({ name: "signed-outcome" });
  const clock = { t: 1_000_000 };
  try {
    const storageRef = await system.spawn<StorageMessage>({
      name: "node/storage",
      factory: () => new StorageActor({ dir: join(dir, "store") }),
    });
    const storage = () => storageRef;
    const round = await honestRound(
      new RoundModels({ modelsDir: join(dir, "coordinator"), storage }),
      H,
    );
    const coordinator = Identity.generate();
    const signed = signOutcome(round.outcome, coordinator);
    assert.equal(outcomeSignature(signed), "signed");
    // Over the wire (CBOR, then the schema): the signature still holds.
    const parsed = OutcomeMessage.schema.safeParse(decodeCbor(encodeCbor(signed)));
    assert.ok(parsed.success, "the wire takes it");
    assert.equal(outcomeSignature(parsed.data), "signed", "as the schema parsed it");
    const refusals = async (node: Awaited<ReturnType<typeof spawnNode>>, n: number) =>
      await eventually(async () => {
        const s = await node.stats();
        return s.outcomesRefused.length === n ? s.outcomesRefused : undefined;
      }, `${n} refusals`);
    /** The node recorded none of the round's receipts and served nothing. */
    const untouched = async (node: Awaited<ReturnType<typeof spawnNode>>) => {
      for (const { receipt } of round.outcome.reports) {
        assert.equal(await node.recorded(receipt), undefined, "no receipt recorded");
      }
      assert.deepEqual(node.served, [], "nothing served");
      assert.deepEqual((await node.stats()).adopted, []);
    };

    await t.step(
      "signed by a staked coordinator: audited, served, its receipts credited",
      async () => {
        const node = await spawnNode(system, dir, "staked", storage, clock);
        await node.deposit(coordinator);
        for (const trainer of round.trainers) await node.deposit(trainer);
        await node.training.tell({ type: "outcome", body: signed, origin: "coordinator" });
        await eventually(async () => (await node.stats()).adopted.length === 1, "adopted");
        assert.deepEqual(node.served, [join(dir, "staked", "models", round.outcome.model)]);
        assert.deepEqual((await node.stats()).unverified, [], "reproduced");
        for (const { receipt } of round.outcome.reports) {
          const record = await eventually(() => node.recorded(receipt), "the receipt recorded");
          assert.ok(record.credit > 0, "credited: the outcome that names it was reproduced");
        }
      },
    );

    await t.step("unsigned: refused (outcome_unsigned), nothing served or recorded", async () => {
      const node = await spawnNode(system, dir, "unsigned", storage, clock);
      await node.deposit(coordinator);
      for (const trainer of round.trainers) await node.deposit(trainer);
      await node.training.tell({ type: "outcome", body: round.outcome, origin: "peer" });
      const [refusal] = await refusals(node, 1);
      assert.deepEqual(refusal, {
        model: round.outcome.model,
        coordinator: null,
        reason: "outcome_unsigned",
      });
      await untouched(node);
    });

    await t.step(
      "a forged signature: refused (outcome_bad_signature), nothing served or recorded",
      async () => {
        const node = await spawnNode(system, dir, "forged", storage, clock);
        await node.deposit(coordinator);
        for (const trainer of round.trainers) await node.deposit(trainer);
        // Another key's signature under the staked coordinator's name, and the coordinator's own
        // signature over another outcome (its excluded list changed after signing).
        const otherKey = signOutcome(round.outcome, Identity.generate());
        const forged = { ...otherKey, coordinator: coordinator.publicKey };
        const altered = { ...signed, excluded: [toHex(Identity.generate().publicKey)] };
        await node.training.tell({ type: "outcome", body: forged, origin: "peer" });
        await node.training.tell({ type: "outcome", body: altered, origin: "peer" });
        const refused = await refusals(node, 2);
        assert.deepEqual(refused.map((r) => r.reason), [
          "outcome_bad_signature",
          "outcome_bad_signature",
        ]);
        await untouched(node);
      },
    );

    await t.step(
      "signed by a coordinator with no stake here: refused (unstaked_coordinator) until it stakes",
      async () => {
        const node = await spawnNode(system, dir, "unstaked", storage, clock);
        for (const trainer of round.trainers) await node.deposit(trainer);
        await node.training.tell({ type: "outcome", body: signed, origin: "peer" });
        const [refusal] = await refusals(node, 1);
        assert.deepEqual(refusal, {
          model: round.outcome.model,
          coordinator: toHex(coordinator.publicKey),
          reason: "unstaked_coordinator",
        });
        await untouched(node);
        // Its pledge arrives: the same outcome, relayed again, is audited (not taken as seen).
        await node.deposit(coordinator);
        await node.training.tell({ type: "outcome", body: signed, origin: "peer" });
        await eventually(async () => (await node.stats()).adopted.length === 1, "adopted");
      },
    );

    await t.step(
      "relayed by third peers: audited once, charged to its coordinator, whose budget no relay refills",
      async () => {
        const node = await spawnNode(system, dir, "relayed", storage, clock);
        await node.deposit(coordinator);
        for (const trainer of round.trainers) await node.deposit(trainer);
        await node.training.tell({ type: "outcome", body: signed, origin: "relay-a" });
        await node.training.tell({ type: "outcome", body: signed, origin: "relay-b" });
        await node.training.tell({ type: "outcome", body: signed, origin: "coordinator" });
        await eventually(async () => (await node.stats()).adopted.length === 1, "adopted");
        assert.equal(node.served.length, 1, "served once");
        // The honest outcome took one of the coordinator's audits: the rest, each from a fresh
        // relay with a budget of its own, are audited, and the next one is not.
        for (let i = 1; i < MAX_AUDITS_PER_COORDINATOR; i++) {
          const body = uncheckableOutcome(i, coordinator);
          await node.training.tell({ type: "outcome", body, origin: `relay-${i}` });
        }
        await eventually(
          async () => (await node.stats()).unverified.length === MAX_AUDITS_PER_COORDINATOR - 1,
          "the coordinator's other outcomes audited",
        );
        const over = uncheckableOutcome(MAX_AUDITS_PER_COORDINATOR, coordinator);
        await node.training.tell({ type: "outcome", body: over, origin: "a-fresh-relay" });
        const [refusal] = await refusals(node, 1);
        assert.deepEqual(refusal, {
          model: over.model,
          coordinator: toHex(coordinator.publicKey),
          reason: "coordinator_budget",
        });
        // Another coordinator, through the same fresh relay, is audited: the bound was its signer's.
        const other = Identity.generate();
        await node.deposit(other);
        const theirs = uncheckableOutcome(MAX_AUDITS_PER_COORDINATOR + 1, other);
        await node.training.tell({ type: "outcome", body: theirs, origin: "a-fresh-relay" });
        await eventually(
          async () => (await node.stats()).unverified.includes(theirs.model),
          "another coordinator's outcome audited",
        );
      },
    );

    await t.step(
      "a signed outcome that does not reproduce: refused, and its coordinator's next outcomes are not audited for a while",
      async () => {
        const node = await spawnNode(system, dir, "benched", storage, clock);
        await node.deposit(coordinator);
        for (const trainer of round.trainers) await node.deposit(trainer);
        // The coordinator signs its start model as the round's result.
        const lie = signOutcome(
          { ...round.outcome, model: round.seed.cid, file: round.seed.file! },
          coordinator,
        );
        await node.training.tell({ type: "outcome", body: lie, origin: "peer" });
        await eventually(async () => (await node.stats()).refused.length === 1, "the lie audited");
        assert.deepEqual((await node.stats()).refused, [
          { model: round.seed.cid, reason: "aggregate_mismatch" },
        ]);
        // Its honest outcome now: not audited, nothing recorded.
        await node.training.tell({ type: "outcome", body: signed, origin: "peer" });
        const [refusal] = await refusals(node, 1);
        assert.equal(refusal.reason, "coordinator_benched");
        await untouched(node);
        // Past the bench, the same outcome (from another relay) is audited.
        clock.t += FALSE_OUTCOME_BENCH_MS;
        await node.training.tell({ type: "outcome", body: signed, origin: "another-peer" });
        await eventually(async () => (await node.stats()).adopted.length === 1, "adopted");
      },
    );
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
