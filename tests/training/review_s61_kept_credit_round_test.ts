/**
 * Review s61: a training validator audits a round after the first from the momentum of the round
 * before (`round_audit.ts`), which its outcome gate (`training/_outcome_gate.ts`) kept in memory
 * only. A peer's outcome kept for a ledger that did not answer (`training/_outcome_audits.ts`, on
 * disk since stop 60) is read back at the next start and audited again, so after a restart the
 * validator could not reproduce it, took it unverified, and credited nothing: the round's honest
 * trainers, paid in every other ledger, went unpaid in this one — kept after its audit (its credit
 * unanswered) or at the gate (the coordinator's stake unanswered) alike. The momenta are now on
 * disk beside the round models; one that is not whole reads as not seen (the round taken
 * unverified, never refused for this node's own disk).
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import type { ActorRef } from "../../actors/actor_ref.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import { StorageActor } from "../../actors/storage_actor.ts";
import type { StorageMessage } from "../../actors/storage_actor_messages.ts";
import { ValidatorActor } from "../../actors/validator_actor.ts";
import type { ValidatorMessage } from "../../actors/validator_messages.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import type { Account } from "../../proof/ledger.ts";
import type { ReceiptRecord } from "../../proof/ledger_state.ts";
import { toHex } from "../../protocols/hash.ts";
import { Identity } from "../../protocols/identity.ts";
import type { OutcomeBody } from "../../protocols/training_messages.ts";
import { type GptWeights, seededGptWeights } from "../../training/gpt_weights.ts";
import { AUDITED_MOMENTA_DIR } from "../../training/_outcome_gate.ts";
import { RoundModels } from "../../training/round_models.ts";
import { signOutcome } from "../../training/signed_outcome.ts";
import { trainingReceiptId } from "../../training/training_receipt.ts";
import type {
  TrainingValidatorMessage,
  TrainingValidatorStats,
} from "../../training/training_validator.ts";
import { eventually } from "../_helpers/wait.ts";
import { TEST_ARCH, testSplit } from "./_fixtures.ts";
import { type RoundStart, trainedRound } from "./_honest_round.ts";
import { ledgerDownSwitch, spawnTrainingLedger } from "./_training_ledger.ts";

/** Local steps of each round. */
const H = 3;
/** Stake of the coordinator and the trainers here: above any bar to be audited or recorded. */
const ROUND_STAKE = 1_000_000;
/** The relaying peer (hex key). */
const PEER = "ee".repeat(32);

/** Two rounds of a run a peer's coordinator made, and a node's ledger side that audits them. */
interface RoundsHere {
  /** Round 0's outcome (from the genesis model) and round 1's (from round 0's model). */
  r0: OutcomeBody;
  r1: OutcomeBody;
  /** The round trainers' keys. */
  trainers: Identity[];
  ledger: ActorRef<ValidatorMessage>;
  /** The training validator now (it changes with each restart). */
  training(): ActorRef<TrainingValidatorMessage>;
  restartTraining(): Promise<unknown>;
  ledgerDown(down: boolean): void;
  /** The training validator's log. */
  log: string[];
  /** Where this node's round models are. */
  modelsDir: string;
  /** Wait until `model` is adopted (served) here. */
  adopted(model: string): Promise<unknown>;
  /** The validator's stats. */
  stats(): Promise<TrainingValidatorStats>;
  /** Pass the challenge window and finalize; each of `outcome`'s receipts as the ledger has it. */
  finalized(outcome: OutcomeBody): Promise<(ReceiptRecord | undefined)[]>;
}

/** Run `test` with two rounds made and a ledger side on a test clock; everything goes after. */
async function withRounds(name: string, test: (here: RoundsHere) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: `veriflow-s61-${name}-` });
  const system = new ActorSystem({ name: `s61-${name}` });
  const clock = { t: 1_000_000 };
  const log: string[] = [];
  try {
    const storage = await system.spawn<StorageMessage>({
      name: "node/storage",
      factory: () => new StorageActor({ dir: join(dir, "store") }),
    });
    // The coordinator's models and this node's: separate directories, one storage.
    const coordinator = new RoundModels({ modelsDir: join(dir, "c"), storage: () => storage });
    const models = new RoundModels({ modelsDir: join(dir, "a"), storage: () => storage });
    const split = await testSplit();
    const trainers = split.shards.map(() => Identity.generate());
    const coordinatorKey = Identity.generate();
    /** Round `n` from `start` (the momentum carried), as the coordinator signs it. */
    const round = async (n: number, start: RoundStart, momentum?: GptWeights) => {
      const made = await trainedRound(coordinator, {
        round: n,
        start,
        momentum,
        trainers,
        steps: H,
      });
      return { ...made, outcome: signOutcome(made.outcome, coordinatorKey) };
    };
    const seed = await coordinator.publish(TEST_ARCH, seededGptWeights(TEST_ARCH, 0));
    const r0 = await round(0, seed);
    const r1 = await round(1, r0.model, r0.momentum);

    const ledgerDown = ledgerDownSwitch(system);
    const { ledger, restartTraining } = await spawnTrainingLedger(system, {
      identity: Identity.generate(),
      dir,
      now: () => clock.t,
      models,
      challenge: {
        challengeProbability: 0,
        endRetryMs: 20,
        now: () => clock.t,
        log: (line) => log.push(line),
      },
      resumeOwnProofs: true,
    });
    for (const key of [coordinatorKey, ...trainers]) {
      await ledger.ask({ type: "deposit", key: key.publicKey, amount: ROUND_STAKE });
    }
    const training = () => system.lookup<TrainingValidatorMessage>("node/training-validator")!;
    const stats = () => training().ask<TrainingValidatorStats>({ type: "stats" });
    await test({
      r0: r0.outcome,
      r1: r1.outcome,
      trainers,
      ledger,
      training,
      restartTraining,
      ledgerDown,
      log,
      modelsDir: models.modelsDir,
      adopted: (model) =>
        eventually(
          async () => (await stats()).adopted.includes(model),
          `model ${model.slice(0, 8)} adopted`,
        ),
      stats,
      finalized: async (outcome) => {
        const ids = outcome.reports.map((r) => trainingReceiptId(r.receipt));
        const record = (id: string) =>
          ledger.ask<ReceiptRecord | undefined>({ type: "receipt_status", receiptId: id });
        // Waiting for the credit (a real event, the shared limit); failing here is the finding.
        await eventually(
          async () => (await Promise.all(ids.map(record))).every((r) => (r?.credit ?? 0) > 0),
          `round ${outcome.round}'s receipts credited`,
        ).catch(() => {});
        clock.t += DEFAULT_ECONOMICS.challengeWindowMs + 1;
        await ledger.ask({ type: "finalize" });
        return await Promise.all(ids.map(record));
      },
    });
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
}

/** Each of round 1's receipts final and credited here, and each trainer paid in this ledger. */
async function assertPaidHere(here: RoundsHere): Promise<void> {
  const records = await here.finalized(here.r1);
  for (const paid of records) {
    assert.equal(
      paid?.status,
      "final",
      `round 1's honest trainer paid here (${here.log.join("\n")})`,
    );
    assert.ok(paid.credit > 0);
  }
  for (const trainer of here.trainers) {
    const account = await here.ledger.ask<Account>({ type: "account", key: trainer.publicKey });
    assert.ok(account.balance > 0, `trainer ${toHex(trainer.publicKey).slice(0, 8)} paid here`);
  }
}

Deno.test("review s61: a peer's round-1 outcome audited here whose credit the ledger did not answer, kept across a restart of the training validator, pays its honest trainers here once the ledger is back", async () => {
  const receive = ValidatorActor.prototype.receive;
  try {
    await withRounds("kept-credit-round", async (here) => {
      // Round 0, audited and credited: its momentum is what round 1's audit starts from.
      await here.training().ask({ type: "outcome", body: here.r0, origin: PEER });
      await here.adopted(here.r0.model);
      // Round 1: the gate's stake question answered, then the ledger stops before the credit.
      let armed = true;
      ValidatorActor.prototype.receive = function (message, ctx) {
        const answer = receive.call(this, message, ctx);
        if (armed && message.type === "account") {
          armed = false;
          here.ledgerDown(true);
        }
        return answer;
      };
      await here.training().ask({ type: "outcome", body: here.r1, origin: PEER });
      await eventually(
        () =>
          here.log.some((l) =>
            l.includes("credit of the outcome of round 1") && l.includes("kept")
          ),
        "round 1's credit kept",
      );
      assert.deepEqual(
        (await here.stats()).unverified,
        [],
        "round 1 reproduced before the restart",
      );
      // The training validator restarts while the credit is kept; the ledger comes back after.
      await here.restartTraining();
      here.ledgerDown(false);
      await assertPaidHere(here);
    });
  } finally {
    ValidatorActor.prototype.receive = receive;
  }
});

Deno.test("review s61: a peer's round-1 outcome kept at the gate (the ledger did not answer for its coordinator's stake) across a restart of the training validator is audited from the momentum kept on disk and pays its honest trainers here", async () => {
  await withRounds("kept-gate-round", async (here) => {
    await here.training().ask({ type: "outcome", body: here.r0, origin: PEER });
    await here.adopted(here.r0.model);
    // Round 1 comes while the ledger does not answer: kept at the gate, not audited yet.
    here.ledgerDown(true);
    await here.training().ask({ type: "outcome", body: here.r1, origin: PEER });
    await eventually(
      () => here.log.some((l) => l.includes("round 1") && l.includes("(not audited) kept")),
      "round 1 kept at the gate",
    );
    await here.restartTraining();
    here.ledgerDown(false);
    await here.adopted(here.r1.model);
    assert.deepEqual((await here.stats()).unverified, [], "round 1 reproduced after the restart");
    await assertPaidHere(here);
  });
});

Deno.test("review s61: a kept momentum that is not whole reads as not seen after a restart: the next round is taken unverified, not refused, and its coordinator not benched", async () => {
  await withRounds("damaged-momentum", async (here) => {
    await here.training().ask({ type: "outcome", body: here.r0, origin: PEER });
    await here.adopted(here.r0.model);
    await here.restartTraining();
    const dir = join(here.modelsDir, AUDITED_MOMENTA_DIR);
    const files = [...Deno.readDirSync(dir)].filter((e) => e.name.includes(here.r0.model));
    assert.equal(files.length, 1, "round 0's momentum kept on disk");
    const path = join(dir, files[0].name);
    const bytes = await Deno.readFile(path);
    bytes[bytes.length - 9] ^= 0x01; // one bit of a weight flipped
    await Deno.writeFile(path, bytes);
    await here.training().ask({ type: "outcome", body: here.r1, origin: PEER });
    await here.adopted(here.r1.model);
    const stats = await here.stats();
    assert.deepEqual(stats.unverified, [here.r1.model], "round 1 served unverified");
    assert.deepEqual(stats.refused, [], "round 1 not refused");
    assert.ok(here.log.some((l) => l.includes("kept momentum") && l.includes("not read")));
    assert.ok(!here.log.some((l) => l.includes("failed its audit")), "its coordinator not benched");
  });
});
