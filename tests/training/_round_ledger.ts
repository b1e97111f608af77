/**
 * An honest round's outcome and a ledger side that may not answer for it: a ledger and a training
 * validator ({@link spawnTrainingLedger}) on one test clock, the round's coordinator and trainers
 * staked there, the outcome signed by the coordinator, and the ledger outcome read after the
 * window (every trainer's receipt final, its credit paid). The s59 and s60 tests that take the
 * ledger down (or restart the training validator) while an outcome or a credit is kept run on it.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import type { ActorRef } from "../../actors/actor_ref.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import { StorageActor } from "../../actors/storage_actor.ts";
import type { StorageMessage } from "../../actors/storage_actor_messages.ts";
import type { ConnectionTimers } from "../../protocols/connection_timers.ts";
import type { ValidatorMessage } from "../../actors/validator_messages.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import type { Account } from "../../proof/ledger.ts";
import type { ReceiptRecord } from "../../proof/ledger_state.ts";
import { Identity } from "../../protocols/identity.ts";
import type { OutcomeBody } from "../../protocols/training_messages.ts";
import { RoundModels } from "../../training/round_models.ts";
import { signOutcome } from "../../training/signed_outcome.ts";
import { trainingReceiptId } from "../../training/training_receipt.ts";
import type {
  TrainingValidatorMessage,
  TrainingValidatorStats,
} from "../../training/training_validator.ts";
import { eventually } from "../_helpers/wait.ts";
import { honestRound } from "./_honest_round.ts";
import { LEDGER, spawnTrainingLedger, TRAINING_VALIDATOR } from "./_training_ledger.ts";

/** Local steps of the round: what is paid does not depend on them. */
export const H = 3;
/** Stake of the round's coordinator and trainers here: above any bar to be audited or recorded. */
const ROUND_STAKE = 1_000_000;
/** The relaying peer (hex key). */
const PEER = "ee".repeat(32);
/**
 * First wait before an unanswered ledger ask is made again, ms: short, so the test waits little
 * once the ledger is back; doubling, so a slow machine does not run the asks out first.
 */
const RETRY_MS = 20;

/**
 * What storage answers a read (`get_bytes`) of one of the round's delta files with: its bytes, or
 * a rejection (the read failed).
 */
export type DeltaRead = (file: string) => Promise<Uint8Array>;

/** What a test run {@link onRoundLedger} gets. */
export interface RoundLedger {
  /** The test's temporary directory (the ledger's is `<dir>/ledger`). */
  dir: string;
  /** The round's outcome, signed by its (staked) coordinator. */
  signed: OutcomeBody;
  /** Hand `body` (default the round's) over as `origin`'s (default a peer's) `outcome`. */
  send: (body?: OutcomeBody, origin?: string) => Promise<unknown>;
  /** The training validator now registered (a new one after `restartTraining`). */
  training: () => ActorRef<TrainingValidatorMessage>;
  /** The ledger now registered (a new one after `startLedger`). */
  ledger: () => ActorRef<ValidatorMessage>;
  /** Each trainer's stake here before anything was recorded (the coordinator's too). */
  stake: number;
  /** Move the ledger's clock past the challenge window and finalize: what is paid is paid now. */
  closeWindow: () => Promise<void>;
  /** Stop the ledger (its directory kept). */
  stopLedger: () => Promise<void>;
  /** Spawn the ledger again as before, on the same directory. */
  startLedger: () => Promise<void>;
  /** Stop the training validator and start a new one on the same directory. */
  restartTraining: () => Promise<void>;
  stats: () => Promise<TrainingValidatorStats>;
  /** What the training validator logged. */
  log: string[];
  /**
   * From now on, every read of the round's delta files from storage (`get_bytes`, as the audit's
   * `RoundModels.getFile` asks) is answered by `read`; undefined: by the node's storage again.
   */
  deltaReads: (read: DeltaRead | undefined) => void;
  /**
   * After a bounded wait for every receipt's credit, close the window: every trainer's receipt
   * final and its credit paid here.
   */
  assertPaid: () => Promise<void>;
}

/** What {@link onRoundLedger} needs besides the test. */
export interface RoundLedgerOptions {
  /** Names the system and the temporary directory. */
  name: string;
  /** The first wait before an unanswered ledger ask is made again, ms (doubling; default 20). */
  retryMs?: number;
  /** The training validator keeps what it keeps in the ledger's directory, as a node does. */
  resumeOwnProofs?: boolean;
  /** The training validator's timers (its waits before a try again); default real time. */
  timers?: ConnectionTimers;
}

/** Run `test` on a fresh {@link RoundLedger}; everything is shut down and removed after. */
export async function onRoundLedger(
  options: RoundLedgerOptions,
  test: (node: RoundLedger) => Promise<void>,
): Promise<void> {
  const { name, retryMs = RETRY_MS, resumeOwnProofs, timers } = options;
  const dir = await Deno.makeTempDir({ prefix: `veriflow-${name}-` });
  const system = new ActorSystem({ name });
  const clock = { t: 1_000_000 };
  const log: string[] = [];
  try {
    const storageRef = await system.spawn<StorageMessage>({
      name: "node/storage",
      factory: () => new StorageActor({ dir: join(dir, "store") }),
    });
    let deltaRead: { files: Set<string>; read: DeltaRead } | undefined;
    // The node's storage, but for the round's delta files while a test answers their reads.
    const storage: ActorRef<StorageMessage> = {
      name: storageRef.name,
      tell: (message) => storageRef.tell(message),
      ask: <R>(message: StorageMessage, askOptions?: Parameters<typeof storageRef.ask>[1]) => {
        if (message.type !== "get_bytes" || !deltaRead?.files.has(message.cid)) {
          return storageRef.ask<R>(message, askOptions);
        }
        return deltaRead.read(message.cid).then(
          (value) => ({ ok: true, value }) as R,
          (error) => ({ ok: false, error }) as R,
        );
      },
    };
    const models = new RoundModels({ modelsDir: join(dir, "models"), storage: () => storage });
    const round = await honestRound(models, H);
    const coordinator = Identity.generate();
    const signed = signOutcome(round.outcome, coordinator);
    const { startLedger, restartTraining } = await spawnTrainingLedger(system, {
      identity: Identity.generate(),
      dir,
      now: () => clock.t,
      models,
      resumeOwnProofs,
      challenge: {
        challengeProbability: 0,
        now: () => clock.t,
        endRetryMs: retryMs,
        timers,
        serve: () => Promise.resolve(),
        log: (line) => log.push(line),
      },
    });
    const ledger = () => system.lookup<ValidatorMessage>(LEDGER)!;
    const training = () => system.lookup<TrainingValidatorMessage>(TRAINING_VALIDATOR)!;
    for (const key of [coordinator, ...round.trainers]) {
      await ledger().ask({ type: "deposit", key: key.publicKey, amount: ROUND_STAKE });
    }
    const receipts = round.outcome.reports.map((r) => r.receipt);
    const record = (id: string) =>
      ledger().ask<ReceiptRecord | undefined>({ type: "receipt_status", receiptId: id });
    await test({
      dir,
      signed,
      send: (body = signed, origin = PEER) => training().ask({ type: "outcome", body, origin }),
      training,
      ledger,
      stake: ROUND_STAKE,
      closeWindow: async () => {
        clock.t += DEFAULT_ECONOMICS.challengeWindowMs + 1;
        await ledger().ask({ type: "finalize" });
      },
      stopLedger: async () => assert.ok(await system.stop(LEDGER), "the ledger stops"),
      startLedger: async () => void await startLedger(),
      restartTraining: async () => void await restartTraining(),
      stats: () => training().ask<TrainingValidatorStats>({ type: "stats" }),
      log,
      deltaReads: (read) => {
        const files = new Set(round.outcome.reports.map((r) => r.deltaFile));
        deltaRead = read === undefined ? undefined : { files, read };
      },
      assertPaid: async () => {
        // A bounded wait for the credit (the audit redoes the outer step); then the ledger is read.
        await eventually(
          async () => {
            for (const receipt of receipts) {
              if (((await record(trainingReceiptId(receipt)))?.credit ?? 0) <= 0) return false;
            }
            return true;
          },
          "the round's receipts credited",
          { timeoutMs: 10_000 },
        ).catch(() => {});
        clock.t += DEFAULT_ECONOMICS.challengeWindowMs + 1;
        await ledger().ask({ type: "finalize" });
        for (const [i, receipt] of receipts.entries()) {
          const entry = await record(trainingReceiptId(receipt));
          assert.ok(entry !== undefined, `trainer ${i}'s receipt was never recorded here`);
          assert.equal(entry.status, "final", `trainer ${i}'s receipt final`);
          assert.ok(entry.credit > 0, `trainer ${i} went uncredited in this ledger`);
          const account = await ledger().ask<Account>({ type: "account", key: receipt.trainer });
          assert.equal(account.balance, entry.credit, `trainer ${i} paid its credit`);
        }
      },
    });
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
}

/**
 * After the audit's end (with or without a verdict): none of the round's trainers credited here
 * (no receipt with a credit), none slashed or charged (its stake whole, nothing locked, nothing
 * paid), and the round's coordinator neither paid nor charged.
 */
export async function assertNobodyPaidNorSlashed(node: RoundLedger): Promise<void> {
  // The audit's verdict (or its end without one) is in: what it credited is in the ledger by now.
  await node.stats();
  const ledger = node.ledger();
  for (const [i, { receipt }] of node.signed.reports.entries()) {
    const record = await ledger.ask<ReceiptRecord | undefined>({
      type: "receipt_status",
      receiptId: trainingReceiptId(receipt),
    });
    assert.equal(record?.credit ?? 0, 0, `trainer ${i} credited for an outcome not checked here`);
    assert.notEqual(record?.status, "fraud", `trainer ${i} slashed for storage's failure`);
    assert.deepEqual(
      await ledger.ask<Account>({ type: "account", key: receipt.trainer }),
      { balance: 0, stake: node.stake, locked: 0 } satisfies Account,
      `trainer ${i} neither paid nor slashed nor charged here`,
    );
  }
  assert.deepEqual(
    await ledger.ask<Account>({ type: "account", key: node.signed.coordinator! }),
    { balance: 0, stake: node.stake, locked: 0 } satisfies Account,
    "the coordinator neither paid nor charged",
  );
}

/** Close the window: every trainer of the round still unpaid here, and none slashed. */
export async function assertUnpaidAfterWindow(node: RoundLedger): Promise<void> {
  await node.closeWindow();
  for (const [i, { receipt }] of node.signed.reports.entries()) {
    const account = await node.ledger().ask<Account>({ type: "account", key: receipt.trainer });
    assert.equal(account.balance, 0, `trainer ${i} paid for an outcome not checked here`);
    assert.equal(account.stake, node.stake, `trainer ${i} slashed for storage's failure`);
  }
}
