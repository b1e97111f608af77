/**
 * A node's ledger side for the training tests that run a coordinator alone: a ValidatorActor
 * (`node/validator`) on a test clock, and a TrainingValidator (`node/training-validator`) that
 * records into it, with whatever challenge options the test needs; a way to make the ledger look
 * stopped to the training validator, or to take it down right after it released a claim's hold;
 * and such a ledger side with a lazy trainer's receipt and a peer's fraud proof of it at hand
 * (`spawnLazyReceiptLedger`; `onLazyReceiptLedger` runs a test on one in a system of its own),
 * with the ledger outcome that proof must have: the lazy trainer slashed here.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import type { ActorRef } from "../../actors/actor_ref.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import { ValidatorActor } from "../../actors/validator_actor.ts";
import type { ValidatorMessage } from "../../actors/validator_messages.ts";
import type { NetworkMessage } from "../../network/network_actor.ts";
import { DEFAULT_ECONOMICS, type EconomicParams } from "../../proof/economics.ts";
import type { Account } from "../../proof/ledger.ts";
import type { ReceiptRecord } from "../../proof/ledger_state.ts";
import { Identity } from "../../protocols/identity.ts";
import { seededGptWeights } from "../../training/gpt_weights.ts";
import { type RoundModel, RoundModels } from "../../training/round_models.ts";
import type { TrainingFraudProof } from "../../training/training_fraud_proof.ts";
import { trainingReceiptId } from "../../training/training_receipt.ts";
import { IN_PROCESS_STEP_RERUN } from "../../training/step_rerun.ts";
import { RecordingNetwork } from "../_helpers/recording_network.ts";
import { eventually } from "../_helpers/wait.ts";
import { TEST_ARCH } from "./_fixtures.ts";
import { LAZY_TRAINER_STAKE, lossFraud } from "./_loss_fraud.ts";
import {
  TrainingValidator,
  type TrainingValidatorMessage,
  type TrainingValidatorOptions,
} from "../../training/training_validator.ts";

/** The training validator's registry name. */
export const TRAINING_VALIDATOR = "node/training-validator";
/** The ledger's (the ValidatorActor's) registry name. */
export const LEDGER = "node/validator";
/** The peer a fraud proof comes from (hex key). */
const PEER = "ee".repeat(32);

/**
 * A switch that makes the ledger look stopped to whoever looks it up by name in `system` (the
 * training validator does, per ask): while on, `system.lookup(LEDGER)` finds none, as after
 * `system.stop`, and a test that holds the ledger's ref still reads it. Lasts as long as `system`.
 */
export function ledgerDownSwitch(system: ActorSystem): (down: boolean) => void {
  let down = false;
  const lookup = system.lookup.bind(system);
  system.lookup =
    ((registered: string) =>
      down && registered === LEDGER ? undefined : lookup(registered)) as typeof system.lookup;
  return (value) => {
    down = value;
  };
}

/** What {@link spawnTrainingLedger} needs. */
export interface TrainingLedgerOptions {
  /** The node's key. */
  identity: Identity;
  /** The ledger goes in `<dir>/ledger`. */
  dir: string;
  /** The ledger's clock, ms. */
  now: () => number;
  /** Round models the training validator reads. */
  models: RoundModels;
  /** The training validator's challenge options (probability, deadline, an injected check). */
  challenge: Omit<TrainingValidatorOptions, "identity" | "models" | "ledger">;
  /** Keep the training validator's own fraud proofs and resume them at start, as a node does. */
  resumeOwnProofs?: boolean;
  /**
   * The ledger's economics (default the defaults): given to the ledger and to the training
   * validator, as a node gives both the same.
   */
  economics?: Partial<EconomicParams>;
}

/** Spawn the ledger and the training validator under `system`. */
export async function spawnTrainingLedger(
  system: ActorSystem,
  options: TrainingLedgerOptions,
): Promise<{
  ledger: ActorRef<ValidatorMessage>;
  training: ActorRef<TrainingValidatorMessage>;
  /**
   * Stop the training validator and start it again as before (a restart of it alone), running
   * `meanwhile` while it is stopped.
   */
  restartTraining: (meanwhile?: () => void) => Promise<ActorRef<TrainingValidatorMessage>>;
  /**
   * Spawn the ledger again as before, on the same directory (after the test stopped it with
   * `system.stop(LEDGER)`); look it up by name from then on.
   */
  startLedger: () => Promise<ActorRef<ValidatorMessage>>;
}> {
  const { identity, dir, now, models, challenge, resumeOwnProofs, economics } = options;
  const startLedger = () =>
    system.spawn<ValidatorMessage>({
      name: LEDGER,
      factory: () =>
        new ValidatorActor({
          identity,
          ledgerDir: join(dir, "ledger"),
          ledger: { now, economics },
          finalizeIntervalMs: 0,
          models: { get: () => Promise.resolve(undefined) },
          trainingProofsResumed: resumeOwnProofs,
        }),
    });
  const ledger = await startLedger();
  const spawnTraining = () =>
    system.spawn<TrainingValidatorMessage>({
      name: TRAINING_VALIDATOR,
      factory: () =>
        new TrainingValidator({
          identity,
          models,
          ledger: LEDGER,
          ownProofsDir: resumeOwnProofs ? join(dir, "ledger") : undefined,
          economics,
          // On the test's thread unless the test gives a worker (`step_rerun.ts`): these tests
          // are about what the ledger does with a verdict, and several wait 5 s for one, which a
          // worker's cold start (tfjs and its wasm loaded again) can take on a loaded machine.
          rerun: IN_PROCESS_STEP_RERUN,
          ...challenge,
        }),
    });
  const training = await spawnTraining();
  const restartTraining = async (meanwhile?: () => void) => {
    if (!await system.stop(TRAINING_VALIDATOR)) throw new Error("the training validator stops");
    meanwhile?.();
    return await spawnTraining();
  };
  return { ledger, training, restartTraining, startLedger };
}

/**
 * Take the ledger down (`ledgerDown(true)`, from {@link ledgerDownSwitch}) right after it released
 * a claim's hold, so that the takeover's first ask (where the receipt stands) finds none;
 * `armed()` is false once it went down. `restore()` puts the ValidatorActor's `receive` back.
 */
export function downAfterHoldReleased(
  ledgerDown: (down: boolean) => void,
): { armed: () => boolean; restore: () => void } {
  const receive = ValidatorActor.prototype.receive;
  let armed = true;
  ValidatorActor.prototype.receive = function (message, ctx) {
    if (armed && message.type === "training_checking" && message.hold === undefined) {
      armed = false;
      ledgerDown(true);
    }
    return receive.call(this, message, ctx);
  };
  return {
    armed: () => armed,
    restore: () => {
      ValidatorActor.prototype.receive = receive;
    },
  };
}

/** What {@link spawnLazyReceiptLedger} needs besides the system and the directory. */
export interface LazyReceiptLedgerOptions {
  /** The ledger's and the training validator's clock, ms. */
  now: () => number;
  /** Where `node/network` (a {@link RecordingNetwork}) notes what it is told (default nowhere). */
  told?: NetworkMessage[];
  /** Where the training validator logs (default its own). */
  log?: (line: string) => void;
  /**
   * The training validator keeps its own fraud proofs and resumes them at start, as a node does
   * (default true; false: kept in memory only).
   */
  resumeOwnProofs?: boolean;
}

/** A training ledger side with a lazy trainer's receipt, and the fraud proof that convicts it. */
export interface LazyReceiptLedger {
  /** The ledger looks stopped to the training validator while on ({@link ledgerDownSwitch}). */
  down: (down: boolean) => void;
  /** The published model the receipt starts from. */
  model: RoundModel;
  ledger: ActorRef<ValidatorMessage>;
  training: ActorRef<TrainingValidatorMessage>;
  /** Stop the training validator and start it again on the same directory. */
  restartTraining: () => Promise<ActorRef<TrainingValidatorMessage>>;
  /** An accuser's `loss_mismatch` proof against the lazy receipt (`proof.receipt`). */
  proof: TrainingFraudProof;
  /** The lazy receipt's id. */
  id: string;
  /**
   * The round's outcome credits the lazy receipt here (paid when its window closes), through the
   * training validator first spawned; resolves with its record, asserted credited and pending.
   */
  credit: () => Promise<ReceiptRecord>;
  /** The lazy receipt's record here. */
  record: () => Promise<ReceiptRecord>;
  /** The lazy trainer's account here. */
  trainer: () => Promise<Account>;
  /** Hand `proof` over as a peer's, to the training validator first spawned. */
  send: () => Promise<unknown>;
  /**
   * After a bounded wait for the proof to settle, `closeWindow()`: the lazy receipt `fraud` here
   * (else fail with `paidHere`), the lazy trainer's stake cut and nothing paid.
   */
  assertSlashed: (closeWindow: () => Promise<void>, paidHere: string) => Promise<void>;
}

/**
 * In `system`, on `dir`: a recording `node/network`, a {@link spawnTrainingLedger} ledger side
 * that keeps and resumes its own proofs unless told not to (no challenges; retries after 5 ms, doubling; a pledge
 * rechecked after 50 ms), a seeded `TEST_ARCH` model published, and a lazy trainer's receipt from
 * it with an accuser's proof of it ({@link lossFraud}); the accuser and the lazy trainer
 * ({@link LAZY_TRAINER_STAKE}) staked. Nothing of the receipt is handed to the node yet.
 */
export async function spawnLazyReceiptLedger(
  system: ActorSystem,
  dir: string,
  options: LazyReceiptLedgerOptions,
): Promise<LazyReceiptLedger> {
  const { now, told = [], log, resumeOwnProofs = true } = options;
  const down = ledgerDownSwitch(system);
  const models = new RoundModels({ modelsDir: dir, storage: () => undefined });
  const model = await models.publish(TEST_ARCH, seededGptWeights(TEST_ARCH, 0));
  await system.spawn<NetworkMessage>({
    name: "node/network",
    factory: () => new RecordingNetwork(told),
  });
  const { ledger, training, restartTraining } = await spawnTrainingLedger(system, {
    identity: Identity.generate(),
    dir,
    now,
    models,
    resumeOwnProofs,
    challenge: {
      challengeProbability: 0,
      network: "node/network",
      endRetryMs: 5,
      pledgeRecheckMs: 50,
      now,
      ...(log === undefined ? {} : { log }),
    },
  });
  const accuser = Identity.generate();
  const proof = lossFraud(model.cid, accuser, 8);
  const id = trainingReceiptId(proof.receipt);
  await ledger.ask({ type: "deposit", key: accuser.publicKey, amount: 10_000 });
  await ledger.ask({ type: "deposit", key: proof.receipt.trainer, amount: LAZY_TRAINER_STAKE });
  const record = async () =>
    (await ledger.ask<ReceiptRecord | undefined>({ type: "receipt_status", receiptId: id }))!;
  const trainer = () => ledger.ask<Account>({ type: "account", key: proof.receipt.trainer });
  return {
    down,
    model,
    ledger,
    training,
    restartTraining,
    proof,
    id,
    credit: async () => {
      await training.ask({
        type: "credit",
        receipts: [proof.receipt],
        terms: { round: 0, startModel: model.cid, steps: proof.receipt.steps },
      });
      const credited = await record();
      assert.ok(credited.credit > 0 && credited.status === "pending", "credited, paid when final");
      return credited;
    },
    record,
    trainer,
    send: () =>
      training.ask({ type: "fraud_proof", body: { proof, arch: TEST_ARCH }, origin: PEER }),
    assertSlashed: async (closeWindow, paidHere) => {
      await eventually(
        async () => (await record()).status === "fraud",
        "the proof to settle",
        { timeoutMs: 10_000 },
      ).catch(() => {});
      await closeWindow();
      assert.equal((await record()).status, "fraud", paidHere);
      const account = await trainer();
      assert.ok(account.stake < LAZY_TRAINER_STAKE, "the lazy trainer's stake is cut");
      assert.equal(account.balance, 0, "nothing paid");
    },
  };
}

/** What a test run {@link onLazyReceiptLedger} gets. */
export interface LazyReceiptRun extends LazyReceiptLedger {
  /** What the training validator logged. */
  log: string[];
  /** Move the ledger's clock past the challenge window and finalize: what is paid is paid now. */
  closeWindow: () => Promise<void>;
  /** {@link LazyReceiptLedger.assertSlashed} with {@link LazyReceiptRun.closeWindow}. */
  slashed: (paidHere: string) => Promise<void>;
}

/**
 * Run `test` on a {@link spawnLazyReceiptLedger} ledger side in a system and a temporary directory
 * of its own (both named after `name`), on a test clock that only `closeWindow` moves; both are
 * shut down and removed after.
 */
export async function onLazyReceiptLedger(
  name: string,
  options: Pick<LazyReceiptLedgerOptions, "resumeOwnProofs">,
  test: (run: LazyReceiptRun) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: `veriflow-${name}-` });
  const system = new ActorSystem({ name });
  let clock = 1_000_000;
  const log: string[] = [];
  try {
    const lazy = await spawnLazyReceiptLedger(system, dir, {
      now: () => clock,
      log: (line) => log.push(line),
      ...options,
    });
    const closeWindow = async () => {
      clock += DEFAULT_ECONOMICS.challengeWindowMs + 1;
      await lazy.ledger.ask({ type: "finalize" });
    };
    await test({
      ...lazy,
      log,
      closeWindow,
      slashed: (paidHere) => lazy.assertSlashed(closeWindow, paidHere),
    });
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
}
