/**
 * A training challenge ends in its validator's ledger by an ask to the ValidatorActor; when
 * that ask fails (the ValidatorActor restarting, a timeout) the verdict must still reach the
 * ledger. Before, a failed ending ask was dropped: the receipt stayed `challenged` with nobody
 * holding it, and the ValidatorActor's next start (or the training validator's) ended it
 * unresolved — an honest trainer whose challenge passed was never paid in that ledger, and a
 * lazy one whose fraud proof was confirmed had its stake released instead of slashed. Who pays
 * now, the first ask failed: a passed challenge's trainer is paid when the window closes, an
 * undecided one's is not, a convicted one is slashed.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ActorSystem } from "../../actors/actor_system.ts";
import { ValidatorActor } from "../../actors/validator_actor.ts";
import type { ValidatorMessage } from "../../actors/validator_messages.ts";
import type { Account, ReceiptRecord } from "../../proof/ledger.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import type { Connection } from "../../protocols/connection.ts";
import { encodeCbor } from "../../protocols/cbor.ts";
import { sha256Hex } from "../../protocols/hash.ts";
import { Identity } from "../../protocols/identity.ts";
import { seededGptWeights } from "../../training/gpt_weights.ts";
import { RoundModels } from "../../training/round_models.ts";
import type { TrainingFraudProof } from "../../training/training_fraud_proof.ts";
import { trainingReceiptId } from "../../training/training_receipt.ts";
import type { StepOpeningsCheck } from "../../training/step_check.ts";
import {
  type ChallengeOutcome,
  type ChallengeRequest,
  TrainingValidator,
  type TrainingValidatorMessage,
  type TrainingValidatorOptions,
} from "../../training/training_validator.ts";
import { eventually } from "../_helpers/wait.ts";
import { TEST_ARCH } from "./_fixtures.ts";
import { lossFraud } from "./_loss_fraud.ts";

const STAKE = 10_000_000;
const LEDGER = "node/validator";
const TRAINING = "node/training-validator";
/** The first re-ask of a failed ending, ms: short, so a test waits little once the ledger is back. */
const END_RETRY_MS = 10;

/** Round models whose `get`s after the first wait for `gate` (the challenge's own comes first). */
class GatedModels extends RoundModels {
  #calls = 0;
  constructor(dir: string, readonly gate: Promise<void>) {
    super({ modelsDir: dir, storage: () => undefined });
  }
  override get(...args: Parameters<RoundModels["get"]>): ReturnType<RoundModels["get"]> {
    if (this.#calls++ === 0) return super.get(...args);
    return this.gate.then(() => super.get(...args));
  }
}

/**
 * A node's ledger side as `node.ts` wires it (own training proofs kept and resumed), on clock
 * `clock`, with a training validator that challenges every receipt and whose step check is
 * `check`; the ValidatorActor can be stopped and started again alone.
 */
async function ledgerNode(
  dir: string,
  me: Identity,
  clock: { t: number },
  check: TrainingValidatorOptions["check"],
  models: RoundModels = new RoundModels({ modelsDir: dir, storage: () => undefined }),
) {
  const system = new ActorSystem({ name: "challenge-end-retry" });
  const lines: string[] = [];
  const startLedger = () =>
    system.spawn<ValidatorMessage>({
      name: LEDGER,
      factory: () =>
        new ValidatorActor({
          identity: me,
          ledgerDir: join(dir, "ledger"),
          ledger: { now: () => clock.t },
          finalizeIntervalMs: 0,
          models: { get: () => Promise.resolve(undefined) },
          trainingProofsResumed: true,
        }),
    });
  await startLedger();
  const training = await system.spawn<TrainingValidatorMessage>({
    name: TRAINING,
    factory: () =>
      new TrainingValidator({
        identity: me,
        models,
        ledger: LEDGER,
        ownProofsDir: join(dir, "ledger"),
        challengeProbability: 1,
        random: () => 0,
        check,
        log: (line) => lines.push(line),
        // Unknown to the code before the fix (ignored there): its retry is what is tested.
        ...{ endRetryMs: END_RETRY_MS },
      }),
  });
  const ledger = () => system.lookup<ValidatorMessage>(LEDGER)!;
  const status = async (id: string) =>
    (await ledger().ask<ReceiptRecord | undefined>({ type: "receipt_status", receiptId: id }))
      ?.status;
  const account = (key: Uint8Array) => ledger().ask<Account>({ type: "account", key });
  const closeWindow = async () => {
    clock.t += DEFAULT_ECONOMICS.challengeWindowMs + 1;
    await ledger().ask({ type: "finalize" });
  };
  /** The ValidatorActor alone stops (a crash, its supervisor's restart): its asks now fail. */
  const stopLedger = () => system.stop(LEDGER);
  /**
   * `report`'s trainer staked and its receipt credited, as an audited round's receipts are, then
   * challenged over `connection`: the receipt's id and the challenge's end.
   */
  const creditAndChallenge = async (report: ChallengeRequest["report"], connection: Connection) => {
    const { receipt } = report;
    const terms = { round: 0, startModel: receipt.startModel, steps: receipt.steps };
    await ledger().ask({ type: "deposit", key: receipt.trainer, amount: STAKE });
    await training.ask({ type: "credit", receipts: [receipt], terms });
    const { result } = await training.ask<{ result: Promise<ChallengeOutcome> }>({
      type: "challenge",
      report,
      connection,
      terms,
      arch: TEST_ARCH,
      shardSize: receipt.shardSize,
      shardRoot: receipt.shardRoot,
    });
    result.catch(() => {});
    return { id: trainingReceiptId(receipt), result };
  };
  return {
    system,
    lines,
    status,
    account,
    closeWindow,
    stopLedger,
    startLedger,
    creditAndChallenge,
  };
}

/** A connection that answers every challenge with `{}` (the injected check decides). */
function answeringConnection(): Connection {
  const body = encodeCbor({});
  return {
    peerKey: Identity.generate().publicKey,
    request: (_type: unknown, payload: { challenge?: unknown }) =>
      Promise.resolve(
        payload.challenge !== undefined
          ? { size: body.length, parts: 1, sha256: sha256Hex(body) }
          : { bytes: body },
      ),
  } as unknown as Connection;
}

/** A step check that waits for `gate` and then answers `answer`. */
function gatedCheck(
  gate: Promise<void>,
  answer: StepOpeningsCheck,
): TrainingValidatorOptions["check"] {
  return () => gate.then(() => answer);
}

/** A lazy receipt (its fraud proof by `me`) to challenge: no training needed. */
function lazyReceipt(me: Identity): { proof: TrainingFraudProof; startCid: string } {
  const startCid = RoundModels.cidOf(TEST_ARCH, seededGptWeights(TEST_ARCH, 0));
  return { proof: lossFraud(startCid, me), startCid };
}

/** A temporary directory with a published start model, removed after `body`. */
async function withDir(prefix: string, body: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix });
  try {
    await new RoundModels({ modelsDir: dir, storage: () => undefined })
      .publish(TEST_ARCH, seededGptWeights(TEST_ARCH, 0));
    await body(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("a passed training challenge whose ending ask fails while the ledger restarts is paid when its window closes", async () => {
  await withDir("veriflow-end-retry-pass-", async (dir) => {
    const me = Identity.generate();
    const clock = { t: Date.now() };
    const gate = Promise.withResolvers<void>();
    const n = await ledgerNode(dir, me, clock, gatedCheck(gate.promise, { ok: true }));
    try {
      const { proof: { receipt } } = lazyReceipt(me); // the check says it passes: an honest one
      const { id, result } = await n.creditAndChallenge(
        { receipt, delta: new Uint8Array(1) },
        answeringConnection(),
      );
      await eventually(async () => (await n.status(id)) === "challenged", "the hold");
      await n.stopLedger();
      gate.resolve(); // the check passes while the ledger is down: the ending ask fails
      assert.deepEqual(await result, { challenged: true, ok: true });
      await n.startLedger();
      await eventually(async () => (await n.status(id)) !== "challenged", "the hold to end");
      assert.equal(await n.status(id), "pending", "the pass did not reach the ledger");
      await n.closeWindow();
      assert.equal(await n.status(id), "final");
      assert.ok((await n.account(receipt.trainer)).balance > 0, "the honest trainer is paid");
    } finally {
      await n.system.shutdown();
    }
  });
});

Deno.test("a passed training challenge whose ending ask failed is ended passed at the node's next start, not unresolved", async () => {
  await withDir("veriflow-end-retry-restart-", async (dir) => {
    const me = Identity.generate();
    const clock = { t: Date.now() };
    const gate = Promise.withResolvers<void>();
    const first = await ledgerNode(dir, me, clock, gatedCheck(gate.promise, { ok: true }));
    let second: Awaited<ReturnType<typeof ledgerNode>> | undefined;
    try {
      const { proof: { receipt } } = lazyReceipt(me);
      const { id, result } = await first.creditAndChallenge(
        { receipt, delta: new Uint8Array(1) },
        answeringConnection(),
      );
      await eventually(async () => (await first.status(id)) === "challenged", "the hold");
      await first.stopLedger();
      gate.resolve();
      assert.deepEqual(await result, { challenged: true, ok: true });
      // The whole node stops before the ledger is back (its pending re-ask with it).
      await first.system.shutdown();

      second = await ledgerNode(dir, me, clock, gatedCheck(Promise.resolve(), { ok: true }));
      const n = second;
      await eventually(async () => (await n.status(id)) !== "challenged", "the hold to end");
      assert.equal(await n.status(id), "pending", "the pass was lost at the restart");
      await n.closeWindow();
      assert.ok((await n.account(receipt.trainer)).balance > 0, "the honest trainer is paid");
    } finally {
      await first.system.shutdown();
      await second?.system.shutdown();
    }
  });
});

Deno.test("a training fraud proof whose settlement ask fails while the ledger restarts still slashes the lazy trainer", async () => {
  await withDir("veriflow-end-retry-fraud-", async (dir) => {
    const me = Identity.generate();
    const clock = { t: Date.now() };
    const gate = Promise.withResolvers<void>();
    const { proof } = lazyReceipt(me);
    const { receipt } = proof;
    // The step check finds what the proof says; its re-check waits for `gate` (the models).
    const check: TrainingValidatorOptions["check"] = () =>
      Promise.resolve({ ok: false, reason: proof.reason, proof });
    const n = await ledgerNode(dir, me, clock, check, new GatedModels(dir, gate.promise));
    try {
      const { id, result } = await n.creditAndChallenge(
        { receipt, delta: new Uint8Array(1) },
        answeringConnection(),
      );
      const locked = (await n.account(receipt.trainer)).locked;
      const outcome = await result;
      assert.ok(outcome.challenged && !outcome.ok, "the challenge fails with the proof");
      assert.equal(await n.status(id), "challenged");
      await n.stopLedger();
      gate.resolve(); // the proof is checked while the ledger is down: its settlement ask fails
      await eventually(
        () => n.lines.some((line) => line.includes("not settled")),
        "the settlement to fail",
      );
      await n.startLedger();
      await eventually(async () => (await n.status(id)) !== "challenged", "the hold to end");
      assert.equal(await n.status(id), "fraud", "the confirmed proof did not reach the ledger");
      assert.equal((await n.account(receipt.trainer)).stake, STAKE - locked, "slashed");
    } finally {
      await n.system.shutdown();
    }
  });
});

Deno.test("an undecided training challenge whose ending ask fails while the ledger restarts leaves the trainer unpaid", async () => {
  await withDir("veriflow-end-retry-undecided-", async (dir) => {
    const me = Identity.generate();
    const clock = { t: Date.now() };
    const gate = Promise.withResolvers<void>();
    // Failed without a proof (nothing any checker could confirm): undecided.
    const undecided = { ok: false, reason: "opening_mismatch" } as StepOpeningsCheck;
    const n = await ledgerNode(dir, me, clock, gatedCheck(gate.promise, undecided));
    try {
      const { proof: { receipt } } = lazyReceipt(me);
      const { id, result } = await n.creditAndChallenge(
        { receipt, delta: new Uint8Array(1) },
        answeringConnection(),
      );
      await eventually(async () => (await n.status(id)) === "challenged", "the hold");
      await n.stopLedger();
      gate.resolve();
      const outcome = await result;
      assert.ok(outcome.challenged && !outcome.ok && outcome.proof === undefined);
      await n.startLedger();
      await eventually(async () => (await n.status(id)) !== "challenged", "the hold to end");
      assert.equal(await n.status(id), "unpaid");
      await n.closeWindow();
      const account = await n.account(receipt.trainer);
      assert.equal(account.balance, 0, "paid for an undecided challenge");
      assert.equal(account.stake, STAKE, "slashed without a proof");
    } finally {
      await n.system.shutdown();
    }
  });
});
