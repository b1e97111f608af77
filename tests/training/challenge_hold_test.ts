/**
 * A training receipt a validator challenges is `challenged` in its ledger from the challenge's open
 * to its end (asks to the ValidatorActor): not paid while the check runs, paid after a pass,
 * slashed on a conviction, also when an open or end ask fails.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { Account, ReceiptRecord } from "../../proof/ledger.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import type { Connection } from "../../protocols/connection.ts";
import { Identity } from "../../protocols/identity.ts";
import { seededGptWeights } from "../../training/gpt_weights.ts";
import { RoundModels } from "../../training/round_models.ts";
import { trainAndSign } from "../../training/training_round.ts";
import { trainingReceiptId } from "../../training/training_receipt.ts";
import {
  type ChallengeOutcome,
  type ChallengeRequest,
  TrainingValidator,
  type TrainingValidatorMessage,
  type TrainingValidatorOptions,
  type TrainingValidatorStats,
} from "../../training/training_validator.ts";
import { openChallengedSteps } from "../../training/step_opening.ts";
import type { TrainingChallenge } from "../../training/training_challenge.ts";
import { eventually } from "../_helpers/wait.ts";
import { TEST_ARCH, TEST_HYPER, testSplit } from "./_fixtures.ts";
import { spawnTrainingLedger } from "./_training_ledger.ts";
import { lossFraud } from "./_loss_fraud.ts";
import { OWN_TRAINING_FRAUD_PROOFS_DIR } from "../../actors/_receipt_files.ts";
import { encodeCbor } from "../../protocols/cbor.ts";
import { sha256Hex } from "../../protocols/hash.ts";
import { join } from "node:path";
import { ValidatorActor } from "../../actors/validator_actor.ts";
import type { ValidatorMessage } from "../../actors/validator_messages.ts";
import { answeringConnection, LosesOpenAnswer } from "./_lost_open_answer.ts";
import type { TrainingFraudProof } from "../../training/training_fraud_proof.ts";
import type { StepOpeningsCheck } from "../../training/step_check.ts";

// ------------------------------------------------------------------------------------------------
// A training receipt this validator is challenging is `challenged` in its ledger until the
// challenge ends, as an inference receipt is: not paid while the check runs, paid after a pass, and
// not paid at all when the validator stops mid-challenge. Before, a validator that audited a round
// (crediting its receipts) and then challenged a trainer on its own coin left the receipt
// `pending`: stopped mid-challenge (the lazy trainer's proof never made), it paid the trainer once
// the window closed — a validator-side gap finalized the receipt.
// ------------------------------------------------------------------------------------------------

const STAKE = 10_000_000;

/** An honest trainer's run of 2 steps from the test model, signed. */
async function honestRun(startModel: string, start: ReturnType<typeof seededGptWeights>) {
  const split = await testSplit();
  const trainer = Identity.generate();
  const run = await trainAndSign({
    arch: TEST_ARCH,
    round: 0,
    startModel,
    start,
    shard: split.shards[0],
    steps: 2,
    dataSeed: 3,
    hyper: TEST_HYPER,
    identity: trainer,
    keepEvery: 1,
  });
  return { trainer, run };
}

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

/** What a {@link ledgerNode} varies. */
interface LedgerNodeOptions {
  /** Models whose later `get`s wait for it (default: none wait). */
  gate?: Promise<void>;
  /** The step check (default: the real one). */
  check?: TrainingValidatorOptions["check"];
  /** Keep own fraud proofs and resume them at start, as a node does. */
  resume?: boolean;
}

/** A ledger with a training validator that challenges every receipt, on clock `clock`. */
async function ledgerNode(
  dir: string,
  me: Identity,
  clock: { t: number },
  { gate, check, resume }: LedgerNodeOptions = {},
) {
  const system = new ActorSystem({ name: "challenge-hold" });
  const models = gate === undefined
    ? new RoundModels({ modelsDir: dir, storage: () => undefined })
    : new GatedModels(dir, gate);
  const model = await models.publish(TEST_ARCH, seededGptWeights(TEST_ARCH, 0));
  const { ledger, training } = await spawnTrainingLedger(system, {
    identity: me,
    dir,
    now: () => clock.t,
    models,
    challenge: { challengeProbability: 1, random: () => 0, check },
    resumeOwnProofs: resume,
  });
  const status = (id: string) =>
    ledger.ask<ReceiptRecord | undefined>({ type: "receipt_status", receiptId: id });
  const account = (key: Uint8Array) => ledger.ask<Account>({ type: "account", key });
  const closeWindow = async () => {
    clock.t += DEFAULT_ECONOMICS.challengeWindowMs + 1;
    await ledger.ask({ type: "finalize" });
  };
  /**
   * `report`'s trainer staked and its receipt credited, as an audited round's receipts are, then
   * challenged on this node's coin over `connection`: the receipt's id and the challenge's end.
   */
  const creditAndChallenge = async (report: ChallengeRequest["report"], connection: Connection) => {
    const { receipt } = report;
    const terms = { round: 0, startModel: receipt.startModel, steps: receipt.steps };
    await ledger.ask({ type: "deposit", key: receipt.trainer, amount: STAKE });
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
  return { system, model, ledger, training, status, account, closeWindow, creditAndChallenge };
}

/** A connection to the trainer that answers with `answer` (never, when it is undefined). */
function trainerConnection(
  trainer: Identity,
  answer?: (challenge: TrainingChallenge) => Promise<Uint8Array>,
): Connection {
  let body: Uint8Array | undefined;
  return {
    peerKey: trainer.publicKey,
    request: async (_type: unknown, payload: { challenge?: TrainingChallenge; index?: number }) => {
      if (answer === undefined) return await new Promise(() => {});
      if (payload.challenge !== undefined) {
        body = await answer(payload.challenge);
        return { size: body.length, parts: 1, sha256: sha256Hex(body) };
      }
      return { bytes: body! };
    },
  } as unknown as Connection;
}

Deno.test("a validator stopped while it challenges a credited training receipt does not pay it at its next start", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-challenge-hold-" });
  const me = Identity.generate();
  const clock = { t: Date.now() };
  const first = await ledgerNode(dir, me, clock);
  let second: Awaited<ReturnType<typeof ledgerNode>> | undefined;
  try {
    const { trainer, run } = await honestRun(first.model.cid, first.model.weights);
    // The answer never comes before the stop.
    const { id } = await first.creditAndChallenge(run.report, trainerConnection(trainer));
    await eventually(
      async () =>
        (await first.training.ask<TrainingValidatorStats>({ type: "stats" })).challenged === 1,
      "the challenge to be drawn",
    );
    assert.equal((await first.status(id))?.status, "challenged", "not held while challenged");
    await first.system.shutdown();

    second = await ledgerNode(dir, me, clock);
    await second.closeWindow();
    assert.notEqual((await second.status(id))?.status, "final", "paid after the stop");
    assert.equal((await second.account(trainer.publicKey)).balance, 0);
  } finally {
    await first.system.shutdown();
    await second?.system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a credited training receipt whose challenge passes is paid when its window closes", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-challenge-pass-" });
  const me = Identity.generate();
  const clock = { t: Date.now() };
  const n = await ledgerNode(dir, me, clock);
  try {
    const { trainer, run } = await honestRun(n.model.cid, n.model.weights);
    const honest = trainerConnection(
      trainer,
      async (challenge) => encodeCbor(await openChallengedSteps(run.trace, challenge)),
    );
    const { id, result } = await n.creditAndChallenge(run.report, honest);
    assert.deepEqual(await result, { challenged: true, ok: true });
    assert.equal((await n.status(id))?.status, "pending", "open again after the pass");
    await n.closeWindow();
    assert.equal((await n.status(id))?.status, "final");
    assert.ok((await n.account(trainer.publicKey)).balance > 0, "the honest trainer is paid");
  } finally {
    await n.system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a validator stopped while it settles its own training fraud proof settles it at its next start: the lazy trainer is slashed, not left unresolved", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-challenge-resume-" });
  const me = Identity.generate();
  const clock = { t: Date.now() };
  const gate = Promise.withResolvers<void>();
  gate.promise.catch(() => {});
  const start = seededGptWeights(TEST_ARCH, 0);
  const startCid = RoundModels.cidOf(TEST_ARCH, start);
  const proof = lossFraud(startCid, me); // a lazy receipt, and this validator's proof of it
  const { receipt } = proof;
  // The step check finds what the proof says (the trainer's answer itself is not the point).
  const check: TrainingValidatorOptions["check"] = () =>
    Promise.resolve({ ok: false, reason: proof.reason, proof });
  const first = await ledgerNode(dir, me, clock, { gate: gate.promise, check, resume: true });
  let second: Awaited<ReturnType<typeof ledgerNode>> | undefined;
  try {
    // Any key: its connection only answers.
    const answers = trainerConnection(Identity.generate(), () => Promise.resolve(encodeCbor({})));
    const report = { receipt, delta: new Uint8Array(1) };
    const { id, result } = await first.creditAndChallenge(report, answers);
    const locked = (await first.account(receipt.trainer)).locked;
    const outcome = await result;
    assert.ok(outcome.challenged && !outcome.ok, "the challenge fails with the proof");
    assert.equal((await first.status(id))?.status, "challenged");
    // Stopped while the proof is checked, as a crash would: the check ends only once the
    // training validator stopped taking messages, so nothing settles.
    first.system.events.subscribe((event) => {
      if (event.type === "stopped" && event.name.endsWith("training-validator")) {
        gate.reject(new Error("stopped"));
      }
    });
    await first.system.shutdown();

    second = await ledgerNode(dir, me, clock, { resume: true });
    const n = second;
    await eventually(async () => (await n.status(id))?.status === "fraud", "the resumed proof");
    assert.equal((await n.account(receipt.trainer)).stake, STAKE - locked, "slashed");
    const keptDir = `${dir}/ledger/${OWN_TRAINING_FRAUD_PROOFS_DIR}`;
    // Removed once the settlement is answered (a moment after the ledger has it).
    await eventually(
      async () => (await Array.fromAsync(Deno.readDir(keptDir))).length === 0,
      "the settled proof to be forgotten",
    );
  } finally {
    await first.system.shutdown();
    await second?.system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a training validator restarted alone, the ledger running on, ends the challenge it had open without a proof: unresolved, not left challenged", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-challenge-alone-" });
  const me = Identity.generate();
  const clock = { t: Date.now() };
  const n = await ledgerNode(dir, me, clock);
  try {
    const { trainer, run } = await honestRun(n.model.cid, n.model.weights);
    const { id } = await n.creditAndChallenge(run.report, trainerConnection(trainer)); // silent
    await eventually(async () => (await n.status(id))?.status === "challenged", "the hold");
    // The training validator alone stops and starts again (as its supervisor restarts it).
    await n.system.stop("node/training-validator");
    await n.system.spawn<TrainingValidatorMessage>({
      name: "node/training-validator",
      factory: () =>
        new TrainingValidator({
          identity: me,
          models: new RoundModels({ modelsDir: dir, storage: () => undefined }),
          ledger: "node/validator",
        }),
    });
    await eventually(async () => (await n.status(id))?.status === "unpaid", "the hold to end");
    await n.closeWindow();
    assert.equal((await n.account(trainer.publicKey)).balance, 0, "paid after a lost challenge");
  } finally {
    await n.system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

// ------------------------------------------------------------------------------------------------
// A training challenge opens its hold in the ledger by an ask to the ValidatorActor
// (`training_challenge` `open`). An ask that fails (a timeout, the answer lost) does not take its
// message back: the ValidatorActor may still move the receipt to `challenged` after the ask gave
// up. Before, the training validator then did not hold the receipt, so its ending (passed,
// undecided) was never asked: the receipt stayed `challenged` with nobody holding it, and an honest
// trainer whose challenge passed was not paid when its window closed (the next start ended it
// unresolved, unpaid). Now a failed open ask holds the receipt all the same, and its ending is
// asked; a ledger that never opened it answers false.
// ------------------------------------------------------------------------------------------------

const LEDGER = "node/validator";
/** What the training validator asks: the ledger, behind a stand-in that loses one answer. */
const PROXY = "node/validator-proxy";

Deno.test("a training challenge whose open ask failed after the ledger took it still ends there: the honest trainer whose challenge passed is paid when its window closes", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-open-timeout-" });
  const system = new ActorSystem({ name: "open-timeout" });
  try {
    const models = new RoundModels({ modelsDir: dir, storage: () => undefined });
    const start = await models.publish(TEST_ARCH, seededGptWeights(TEST_ARCH, 0));
    const me = Identity.generate();
    let clock = Date.now();
    const ledger = await system.spawn<ValidatorMessage>({
      name: LEDGER,
      factory: () =>
        new ValidatorActor({
          identity: me,
          ledgerDir: join(dir, "ledger"),
          ledger: { now: () => clock },
          finalizeIntervalMs: 0,
          models: { get: () => Promise.resolve(undefined) },
          trainingProofsResumed: true,
        }),
    });
    const proxy = new LosesOpenAnswer(LEDGER);
    await system.spawn<ValidatorMessage>({ name: PROXY, factory: () => proxy });
    const training = await system.spawn<TrainingValidatorMessage>({
      name: "node/training-validator",
      factory: () =>
        new TrainingValidator({
          identity: me,
          models,
          ledger: PROXY,
          ownProofsDir: join(dir, "ledger"),
          challengeProbability: 1,
          random: () => 0,
          check: () => Promise.resolve({ ok: true }),
          endRetryMs: 10,
          now: () => clock,
        }),
    });
    // The check says it passes: an honest trainer's receipt.
    const { receipt } = lossFraud(start.cid, me);
    const id = trainingReceiptId(receipt);
    const terms = { round: 0, startModel: receipt.startModel, steps: receipt.steps };
    await ledger.ask({ type: "deposit", key: receipt.trainer, amount: STAKE });
    await training.ask({ type: "credit", receipts: [receipt], terms });
    const { result } = await training.ask<{ result: Promise<ChallengeOutcome> }>({
      type: "challenge",
      report: { receipt, delta: new Uint8Array(1) },
      connection: answeringConnection(),
      terms,
      arch: TEST_ARCH,
      shardSize: receipt.shardSize,
      shardRoot: receipt.shardRoot,
    });
    assert.deepEqual(await result, { challenged: true, ok: true });
    const status = async () =>
      (await ledger.ask<ReceiptRecord | undefined>({ type: "receipt_status", receiptId: id }))
        ?.status;
    await eventually(async () => (await status()) !== "challenged", "the hold to end")
      .catch(() => undefined);
    clock += DEFAULT_ECONOMICS.challengeWindowMs + 1;
    await ledger.ask({ type: "finalize" });

    assert.equal(proxy.lost, 1, "the open's answer was lost once");
    assert.equal(await status(), "final", "the pass reached the ledger");
    const paid = await ledger.ask<Account>({ type: "account", key: receipt.trainer });
    assert.ok(paid.balance > 0, "the honest trainer is paid");
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

// ------------------------------------------------------------------------------------------------
// A training challenge ends in its validator's ledger by an ask to the ValidatorActor; when that
// ask fails (the ValidatorActor restarting, a timeout) the verdict must still reach the ledger.
// Before, a failed ending ask was dropped: the receipt stayed `challenged` with nobody holding it,
// and the ValidatorActor's next start (or the training validator's) ended it unresolved — an honest
// trainer whose challenge passed was never paid in that ledger, and a lazy one whose fraud proof
// was confirmed had its stake released instead of slashed. Who pays now, the first ask failed: a
// passed challenge's trainer is paid when the window closes, an undecided one's is not, a convicted
// one is slashed.
// ------------------------------------------------------------------------------------------------

const TRAINING = "node/training-validator";
/** The first re-ask of a failed ending, ms: short, so a test waits little once the ledger is back. */
const END_RETRY_MS = 10;

/**
 * A node's ledger side as `node.ts` wires it (own training proofs kept and resumed), on clock
 * `clock`, with a training validator that challenges every receipt and whose step check is
 * `check`; the ValidatorActor can be stopped and started again alone.
 */
async function ledgerNodeEnd(
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
function answeringConnectionEnd(): Connection {
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
    const n = await ledgerNodeEnd(dir, me, clock, gatedCheck(gate.promise, { ok: true }));
    try {
      const { proof: { receipt } } = lazyReceipt(me); // the check says it passes: an honest one
      const { id, result } = await n.creditAndChallenge(
        { receipt, delta: new Uint8Array(1) },
        answeringConnectionEnd(),
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
    const first = await ledgerNodeEnd(dir, me, clock, gatedCheck(gate.promise, { ok: true }));
    let second: Awaited<ReturnType<typeof ledgerNodeEnd>> | undefined;
    try {
      const { proof: { receipt } } = lazyReceipt(me);
      const { id, result } = await first.creditAndChallenge(
        { receipt, delta: new Uint8Array(1) },
        answeringConnectionEnd(),
      );
      await eventually(async () => (await first.status(id)) === "challenged", "the hold");
      await first.stopLedger();
      gate.resolve();
      assert.deepEqual(await result, { challenged: true, ok: true });
      // The whole node stops before the ledger is back (its pending re-ask with it).
      await first.system.shutdown();

      second = await ledgerNodeEnd(dir, me, clock, gatedCheck(Promise.resolve(), { ok: true }));
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
    const n = await ledgerNodeEnd(dir, me, clock, check, new GatedModels(dir, gate.promise));
    try {
      const { id, result } = await n.creditAndChallenge(
        { receipt, delta: new Uint8Array(1) },
        answeringConnectionEnd(),
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
    const n = await ledgerNodeEnd(dir, me, clock, gatedCheck(gate.promise, undecided));
    try {
      const { proof: { receipt } } = lazyReceipt(me);
      const { id, result } = await n.creditAndChallenge(
        { receipt, delta: new Uint8Array(1) },
        answeringConnectionEnd(),
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
