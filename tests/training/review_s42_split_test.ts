/**
 * Review of today's split of `training/training_validator.ts` (2de9abd, 5ef8020, d11ebd0) and of
 * the behaviour commit between (54fc99d: peers' proofs taken and not settled kept on disk):
 *
 * - a check's failure used to change the state of the incarnation that ran it (a closure over
 *   it); it is now an `unchecked` message to `ctx.self`, which is the actor cell's ref and
 *   outlives a crash: the failure of a check the crashed incarnation ran lands in the restarted
 *   one and forgets the copy that one took again from `taken-training-proofs/` and is checking;
 *   the next stop writes the folder without it, and the lazy trainer is paid here;
 * - a proof released from its pledge hold and held again for its receipt is held from the time
 *   it is held again (its first `since` is not told with it): as before today, and harmless.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { NetworkMessage } from "../../network/network_actor.ts";
import type { Account, ReceiptRecord } from "../../proof/ledger.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { decodeCbor } from "../../protocols/cbor.ts";
import { Identity } from "../../protocols/identity.ts";
import { signStakePledge } from "../../protocols/stake_pledge.ts";
import type { GptArchitecture } from "../../inference/model_builder.ts";
import { seededGptWeights } from "../../training/gpt_weights.ts";
import { type RoundModel, RoundModels } from "../../training/round_models.ts";
import type { TrainingFraudProof } from "../../training/training_fraud_proof.ts";
import { trainingReceiptId } from "../../training/training_receipt.ts";
import type { TrainingValidatorMessage } from "../../training/training_validator.ts";
import { RecordingNetwork } from "../_helpers/recording_network.ts";
import { delay, eventually } from "../_helpers/wait.ts";
import { TEST_ARCH } from "./_fixtures.ts";
import { LAZY_TRAINER_STAKE, lossFraud, recordLazyReceipt } from "./_loss_fraud.ts";
import { spawnTrainingLedger, TRAINING_VALIDATOR } from "./_training_ledger.ts";

/** Where the gossip comes from. */
const PEER = "ee".repeat(32);
const PENALTY = DEFAULT_ECONOMICS.falseAccusationPenalty;
const WINDOW = DEFAULT_ECONOMICS.challengeWindowMs;

/** One `get` of {@link QueuedGateModels}: entered once it waits; opened or failed by the test. */
interface Gate {
  entered: Promise<void>;
  open: () => void;
  fail: (error: Error) => void;
}

/**
 * Round models whose next `get`s (each a fraud proof's check loading its start model) wait, one
 * gate each in the order they were asked for, until the test opens (or fails) them.
 */
class QueuedGateModels extends RoundModels {
  readonly #gates: { entered: PromiseWithResolvers<void>; pass: PromiseWithResolvers<void> }[] = [];

  /** The next `get` not gated yet waits on the gate returned. */
  gate(): Gate {
    const entered = Promise.withResolvers<void>();
    const pass = Promise.withResolvers<void>();
    pass.promise.catch(() => {});
    this.#gates.push({ entered, pass });
    return {
      entered: entered.promise,
      open: () => pass.resolve(),
      fail: (error) => pass.reject(error),
    };
  }

  override async get(cid: string, arch: GptArchitecture, file?: string): Promise<RoundModel> {
    const gate = this.#gates.shift();
    gate?.entered.resolve();
    await gate?.pass.promise;
    return await super.get(cid, arch, file);
  }
}

/** A ledger and a training validator on `dir` (the node's layout), on one test clock. */
async function ledgerNode(dir: string, name: string) {
  const system = new ActorSystem({ name });
  let clock = Date.now();
  const now = () => clock;
  const models = new QueuedGateModels({ modelsDir: dir, storage: () => undefined });
  const model = await models.publish(TEST_ARCH, seededGptWeights(TEST_ARCH, 0));
  await system.spawn<NetworkMessage>({
    name: "node/network",
    factory: () => new RecordingNetwork([]),
  });
  const { ledger, restartTraining } = await spawnTrainingLedger(system, {
    identity: Identity.generate(),
    dir,
    now,
    models,
    challenge: {
      challengeProbability: 0,
      network: "node/network",
      pledgeRecheckMs: 5,
      endRetryMs: 5,
      now,
    },
    resumeOwnProofs: true,
  });
  const training = () => system.lookup<TrainingValidatorMessage>(TRAINING_VALIDATOR)!;
  const status = async (id: string) =>
    (await ledger.ask<ReceiptRecord | undefined>({ type: "receipt_status", receiptId: id }))
      ?.status;
  const account = (key: Uint8Array) => ledger.ask<Account>({ type: "account", key });
  const pledge = async (key: Identity, amount: number) =>
    assert.equal(
      await ledger.ask({ type: "pledge", pledge: signStakePledge(key, amount, 1), origin: PEER }),
      true,
    );
  const send = (proof: TrainingFraudProof) =>
    training().ask<Record<string, unknown>>({
      type: "fraud_proof",
      body: { proof, arch: TEST_ARCH },
      origin: PEER,
    });
  /** The `.cbor` files of folder `folder` under the ledger's directory (none: []). */
  const kept = (folder: string) =>
    Array.fromAsync(Deno.readDir(join(dir, "ledger", folder))).then(
      (es) => es.map((e) => e.name).filter((n) => n.endsWith(".cbor")),
      () => [] as string[],
    );
  const advance = (ms: number) => clock += ms;
  const closeWindow = async () => {
    clock += WINDOW + 1;
    await ledger.ask({ type: "finalize" });
  };
  return {
    system,
    ledger,
    training,
    restartTraining,
    models,
    model,
    status,
    account,
    pledge,
    send,
    kept,
    advance,
    closeWindow,
    recordLazy: (proof: TrainingFraudProof) =>
      recordLazyReceipt(ledger, training(), proof, model.cid),
  };
}

/** A {@link ledgerNode}. */
type LedgerNode = Awaited<ReturnType<typeof ledgerNode>>;

/** Run `test` on a fresh {@link ledgerNode}, shut down and removed after it. */
async function onLedgerNode(
  name: string,
  test: (node: LedgerNode, dir: string) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: `veriflow-${name}-` });
  const node = await ledgerNode(dir, name);
  try {
    await test(node, dir);
  } finally {
    await node.system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("a check the crashed training validator ran, failing after its restart, does not make the restarted one forget the copy it took again from disk: a stop after it keeps the proof, and the lazy trainer is slashed", () =>
  onLedgerNode("s42-stale-unchecked", async (node) => {
    const accuser = Identity.generate();
    await node.pledge(accuser, 10 * PENALTY);
    const proof = lossFraud(node.model.cid, accuser, 8);
    const id = trainingReceiptId(proof.receipt);
    await node.recordLazy(proof);
    const first = node.models.gate();
    const second = node.models.gate();
    assert.deepEqual(await node.send(proof), { queued: true });
    await first.entered; // the first incarnation's check under way
    await eventually(async () => (await node.kept("taken-training-proofs")).length === 1, "kept");

    // A message it cannot take crashes the training validator; its supervisor restarts it in
    // the same cell, which takes the kept proof again and checks it.
    await node.training().tell({ type: "fraud_proof", body: undefined!, origin: PEER });
    await second.entered; // the restarted incarnation's check of the copy read back
    // The crashed incarnation's check fails now (its start model out of reach): nothing settled.
    first.fail(new Error("start model out of reach (simulated)"));
    // Told (after the microtasks of the failure) to the cell's mailbox, ahead of this ask.
    await delay(0);
    await node.training().ask({ type: "stats" });

    // The restarted incarnation's check is still under way when the node stops it (its stop
    // keeps what it has taken), and the next start takes up what was kept.
    await node.restartTraining();
    // The stopped incarnation's check ends unsettled too (two re-runs at once share tfjs's engine).
    second.fail(new Error("stopped (simulated)"));
    await eventually(async () => (await node.status(id)) === "fraud", "the proof to settle", {
      timeoutMs: 5_000,
    }).catch(() => undefined);
    await node.closeWindow();
    assert.equal(await node.status(id), "fraud", "the lazy trainer convicted here");
    const trainer = await node.account(proof.receipt.trainer);
    assert.ok(trainer.stake < LAZY_TRAINER_STAKE, "its stake slashed");
    assert.equal(trainer.balance, 0, "and it is not paid");
  }));

Deno.test("candidate: a training fraud proof released from its pledge hold and held again for its receipt is held from the time it is held again (as before today), and no hold's time bound is extended by it", () =>
  onLedgerNode("s42-since", async (node, dir) => {
    const accuser = Identity.generate();
    const proof = lossFraud(node.model.cid, accuser, 8);
    const heldAt = node.advance(0);
    // Neither its receipt nor its accuser's pledge here: held for the pledge.
    assert.deepEqual(await node.send(proof), {
      queued: false,
      skipped: "receipt_unknown",
      awaitingPledge: true,
    });
    const later = node.advance(60_000);
    await node.pledge(accuser, 10 * PENALTY);
    // Released at the recheck after the pledge, its receipt still unknown: held for it now.
    await eventually(
      async () => (await node.kept("receipt-held-training-proofs")).length === 1,
      "held again for the receipt",
    );
    await eventually(
      async () => (await node.kept("pledge-held-training-proofs")).length === 0,
      "out of the pledge hold",
    );
    const [name] = await node.kept("receipt-held-training-proofs");
    const kept = join(dir, "ledger", "receipt-held-training-proofs", name);
    const { since } = decodeCbor(await Deno.readFile(kept)) as { since: number };
    assert.notEqual(since, heldAt, "its hold time restarted when held again");
    assert.equal(since, later);
    // The receipt hold has no time bound: the proof still settles when its receipt comes.
    await node.recordLazy(proof);
    const id = trainingReceiptId(proof.receipt);
    await eventually(async () => (await node.status(id)) === "fraud", "the proof to settle", {
      timeoutMs: 5_000,
    });
  }));
