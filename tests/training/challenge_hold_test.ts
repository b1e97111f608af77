/**
 * A training receipt this validator is challenging is `challenged` in its ledger until the
 * challenge ends, as an inference receipt is: not paid while the check runs, paid after a pass,
 * and not paid at all when the validator stops mid-challenge. Before, a validator that audited
 * a round (crediting its receipts) and then challenged a trainer on its own coin left the
 * receipt `pending`: stopped mid-challenge (the lazy trainer's proof never made), it paid the
 * trainer once the window closed — a validator-side gap finalized the receipt.
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
