/**
 * The training validator's intake waits on the validator's `timers`, as every other wait before a
 * try again does: its rechecks of the proofs held for their accuser's pledge (`pledges_again`) and
 * the waits of the peers' proofs kept because the ledger did not answer their intake
 * (`unanswered_again`, `training/_unanswered_training_proofs.ts`).
 *
 * Before (stop 62) both ran on real time whatever `timers` said: a test that passed fake timers
 * could not fire them, and had to sleep past them on the wall clock. Here the recheck's period and
 * the first wait are long (an hour, half a minute): only the fake timers firing bring them, and
 * each test reads the ledger outcome, the lazy trainer slashed and its accuser rewarded.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { ActorRef } from "../../actors/actor_ref.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { ValidatorMessage } from "../../actors/validator_messages.ts";
import type { NetworkMessage } from "../../network/network_actor.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import type { Account } from "../../proof/ledger.ts";
import { type ReceiptRecord, roundCredits } from "../../proof/ledger_state.ts";
import { Identity } from "../../protocols/identity.ts";
import { signStakePledge } from "../../protocols/stake_pledge.ts";
import { seededGptWeights } from "../../training/gpt_weights.ts";
import { RoundModels } from "../../training/round_models.ts";
import type { TrainingFraudProof } from "../../training/training_fraud_proof.ts";
import { trainingReceiptId } from "../../training/training_receipt.ts";
import type {
  TrainingValidatorMessage,
  TrainingValidatorStats,
} from "../../training/training_validator.ts";
import { retryWait } from "../../training/_ledger_retries.ts";
import { FakeTimers } from "../_helpers/fake_timers.ts";
import { RecordingNetwork } from "../_helpers/recording_network.ts";
import { eventually } from "../_helpers/wait.ts";
import { TEST_ARCH } from "./_fixtures.ts";
import { LAZY_TRAINER_STAKE, lossFraud } from "./_loss_fraud.ts";
import { ledgerDownSwitch, spawnTrainingLedger } from "./_training_ledger.ts";

/** The intake's recheck period here: an hour, that no test waits out on the wall clock. */
const RECHECK_MS = 60 * 60_000;
/**
 * First wait before a proof the ledger did not answer for is taken again: half a minute (below
 * `MAX_END_RETRY_MS`, so the second wait, doubled, differs from it).
 */
const RETRY_MS = 30_000;
/** The accuser's stake here (pledged or deposited): well above the false-accusation penalty. */
const ACCUSER_STAKE = 10_000;
/** Where the gossip comes from. */
const PEER = "ee".repeat(32);

/** What a test gets: a ledger side on fake timers, a lazy receipt credited there, its proof. */
interface TimedIntake {
  timers: FakeTimers;
  ledger: ActorRef<ValidatorMessage>;
  training: ActorRef<TrainingValidatorMessage>;
  /** The ledger looks stopped to the training validator while on. */
  down: (down: boolean) => void;
  /** The accuser of {@link TimedIntake.proof} (not staked here yet). */
  accuser: Identity;
  /** A `loss_mismatch` proof every checker confirms, against the lazy receipt. */
  proof: TrainingFraudProof;
  /** Hand the proof over as a peer's. */
  send: () => Promise<unknown>;
  /** The lazy receipt's record here. */
  record: () => Promise<ReceiptRecord>;
  /** An account here. */
  account: (key: Uint8Array) => Promise<Account>;
  /** The validator's mailbox drained: what it was told before has been handled. */
  drained: () => Promise<TrainingValidatorStats>;
  /** The durations of the waits armed on the fake timers, ms. */
  armed: () => number[];
  /** Move the ledger's clock past the challenge window and finalize: what is paid is paid now. */
  closeWindow: () => Promise<void>;
}

/**
 * Run `test` on a fresh ledger and training validator (its waits on {@link FakeTimers}, its
 * intake's recheck every {@link RECHECK_MS}, its first retry after {@link RETRY_MS}; no challenges;
 * its holds kept on disk) on a test clock, with a lazy trainer's receipt credited here (paid when
 * its window closes) and an accuser's proof of it at hand.
 */
async function onTimedIntake(name: string, test: (run: TimedIntake) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: `veriflow-${name}-` });
  const system = new ActorSystem({ name });
  const timers = new FakeTimers();
  let clock = 1_000_000;
  const now = () => clock;
  try {
    const down = ledgerDownSwitch(system);
    const models = new RoundModels({ modelsDir: dir, storage: () => undefined });
    const model = await models.publish(TEST_ARCH, seededGptWeights(TEST_ARCH, 0));
    await system.spawn<NetworkMessage>({
      name: "node/network",
      factory: () => new RecordingNetwork([]),
    });
    const { ledger, training } = await spawnTrainingLedger(system, {
      identity: Identity.generate(),
      dir,
      now,
      models,
      resumeOwnProofs: true,
      challenge: {
        challengeProbability: 0,
        network: "node/network",
        timers,
        pledgeRecheckMs: RECHECK_MS,
        endRetryMs: RETRY_MS,
        now,
        log: () => {},
      },
    });
    const accuser = Identity.generate();
    const proof = lossFraud(model.cid, accuser, 8);
    const id = trainingReceiptId(proof.receipt);
    const record = async () =>
      (await ledger.ask<ReceiptRecord | undefined>({ type: "receipt_status", receiptId: id }))!;
    // The round's outcome credits the lazy receipt here: paid when its window closes.
    await ledger.ask({ type: "deposit", key: proof.receipt.trainer, amount: LAZY_TRAINER_STAKE });
    await training.ask({
      type: "credit",
      receipts: [proof.receipt],
      terms: { round: 0, startModel: model.cid, steps: proof.receipt.steps },
    });
    const credited = await record();
    assert.ok(credited.credit > 0 && credited.status === "pending", "credited, paid when final");
    await test({
      timers,
      ledger,
      training,
      down,
      accuser,
      proof,
      send: () =>
        training.ask({ type: "fraud_proof", body: { proof, arch: TEST_ARCH }, origin: PEER }),
      record,
      account: (key) => ledger.ask<Account>({ type: "account", key }),
      drained: () => training.ask<TrainingValidatorStats>({ type: "stats" }),
      armed: () => [...timers.armed.values()].map(({ ms }) => ms),
      closeWindow: async () => {
        clock += DEFAULT_ECONOMICS.challengeWindowMs + 1;
        await ledger.ask({ type: "finalize" });
      },
    });
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
}

/**
 * After the window: the lazy receipt `fraud` here, the lazy trainer's locked slash taken and
 * nothing paid, its accuser rewarded `validatorRewardShare` of the slash and charged nothing.
 */
async function assertConvicted(run: TimedIntake, locked: number): Promise<void> {
  await run.closeWindow();
  assert.equal((await run.record()).status, "fraud", "the lazy trainer was paid here");
  assert.deepEqual(
    await run.account(run.proof.receipt.trainer),
    { balance: 0, stake: LAZY_TRAINER_STAKE - locked, locked: 0 } satisfies Account,
    "the lazy trainer loses its locked slash and is not paid",
  );
  assert.deepEqual(
    await run.account(run.accuser.publicKey),
    {
      balance: roundCredits(locked * DEFAULT_ECONOMICS.validatorRewardShare),
      stake: ACCUSER_STAKE,
      locked: 0,
    } satisfies Account,
    "the accuser earns its share of the slash, and is charged nothing",
  );
}

Deno.test("a peer's fraud proof held for its accuser's pledge is taken again at the intake's recheck on the validator's timers once the pledge came: the lazy trainer slashed, the accuser rewarded", () =>
  onTimedIntake("intake-timers-pledge", async (run) => {
    const { locked } = await run.record();
    assert.deepEqual(
      await run.send(),
      { queued: false, skipped: "unstaked_accuser", awaitingPledge: true },
      "held for its accuser's pledge",
    );
    const pledge = signStakePledge(run.accuser, ACCUSER_STAKE, 1);
    assert.equal(await run.ledger.ask({ type: "pledge", pledge, origin: PEER }), true);
    await run.drained();
    assert.equal((await run.record()).status, "pending", "nothing taken before the recheck");
    // The recheck waits on the validator's timers (before: on real time, an hour away).
    await eventually(
      () => run.armed().includes(RECHECK_MS),
      "the intake's recheck armed on the validator's timers",
    );
    run.timers.fireAll();
    await eventually(async () => (await run.record()).status === "fraud", "the proof to settle");
    assert.equal((await run.drained()).checked, 1, "re-run once");
    await assertConvicted(run, locked);
  }));

Deno.test("a peer's fraud proof kept because the ledger did not answer its intake is taken again at each wait the validator's timers fire, doubling: the lazy trainer slashed once the ledger answers", () =>
  onTimedIntake("intake-timers-unanswered", async (run) => {
    const { locked } = await run.record();
    await run.ledger.ask({ type: "deposit", key: run.accuser.publicKey, amount: ACCUSER_STAKE });
    run.down(true);
    await run.send();
    await run.drained();
    // Kept: its first wait is armed on the validator's timers (before: due on the wall clock,
    // taken at a recheck on real time).
    await eventually(
      () => run.armed().includes(retryWait(RETRY_MS, 1)),
      "the kept proof's first wait armed on the validator's timers",
    );
    // Fired while the ledger is still down: taken again, unanswered, kept with a doubled wait.
    run.timers.fireAll();
    await eventually(
      () => run.armed().includes(retryWait(RETRY_MS, 2)),
      "the kept proof's second wait, doubled",
    );
    await run.drained();
    assert.equal((await run.record()).status, "pending", "not settled while the ledger is down");
    assert.equal((await run.drained()).checked, 0, "nothing re-run while the ledger is down");
    run.down(false);
    await run.drained();
    assert.equal((await run.record()).status, "pending", "nothing taken before the wait fires");
    run.timers.fireAll();
    await eventually(async () => (await run.record()).status === "fraud", "the proof to settle");
    assert.equal((await run.drained()).checked, 1, "re-run once");
    await assertConvicted(run, locked);
  }));
