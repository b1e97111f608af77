/**
 * A peer's training fraud proof held for its accuser's pledge survives a stop and start of the
 * training validator: the lazy trainer is slashed and its accuser paid when the pledge comes
 * after the restart, as it is without one.
 *
 * The hold (`training/_pledge_held_training_proofs.ts`) was memory only: a restart between the
 * proof and the pledge forgot the proof, and this ledger paid, at its window's end, the lazy
 * trainer every other ledger slashed. The held proofs are now kept beside the ledger
 * (`<ledger>/pledge-held-training-proofs/`, `training/_kept_held_training_proofs.ts`) and
 * go through the intake again at the start, re-verified, never trusted from the disk.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { NetworkMessage } from "../../network/network_actor.ts";
import type { Account, ReceiptRecord } from "../../proof/ledger.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { encodeCanonical } from "../../protocols/cbor.ts";
import { Identity } from "../../protocols/identity.ts";
import { signStakePledge } from "../../protocols/stake_pledge.ts";
import { seededGptWeights } from "../../training/gpt_weights.ts";
import { RoundModels } from "../../training/round_models.ts";
import { trainingFraudProofHash } from "../../training/training_fraud_proof.ts";
import { trainingReceiptId } from "../../training/training_receipt.ts";
import type {
  TrainingValidatorMessage,
  TrainingValidatorStats,
} from "../../training/training_validator.ts";
import { RecordingNetwork } from "../_helpers/recording_network.ts";
import { eventually } from "../_helpers/wait.ts";
import { TEST_ARCH } from "./_fixtures.ts";
import { LAZY_TRAINER_STAKE, lossFraud, recordLazyReceipt } from "./_loss_fraud.ts";
import { spawnTrainingLedger } from "./_training_ledger.ts";

/** The accuser's pledge: well above the false-accusation penalty. */
const ACCUSER_PLEDGE = 10_000;
/** Where the gossip comes from. */
const PEER = "ee".repeat(32);
/** The training validator's registry name (`_training_ledger.ts`). */
const TRAINING = "node/training-validator";
/** Where the held proofs are kept, under the ledger's directory. */
const KEPT_DIR = "pledge-held-training-proofs";

/**
 * A ledger and training validator on `dir` (the node's layout: own proofs and held proofs beside
 * the ledger), a fast pledge recheck, and a way to stop and start the training validator alone.
 */
async function ledgerNode(dir: string, name: string) {
  const system = new ActorSystem({ name });
  let clock = Date.now();
  const me = Identity.generate();
  const models = new RoundModels({ modelsDir: dir, storage: () => undefined });
  const model = await models.publish(TEST_ARCH, seededGptWeights(TEST_ARCH, 0));
  await system.spawn<NetworkMessage>({
    name: "node/network",
    factory: () => new RecordingNetwork([]),
  });
  const challenge = { challengeProbability: 0, network: "node/network", pledgeRecheckMs: 5 };
  const { ledger, restartTraining } = await spawnTrainingLedger(system, {
    identity: me,
    dir,
    now: () => clock,
    models,
    challenge,
    resumeOwnProofs: true,
  });
  const training = () => system.lookup<TrainingValidatorMessage>(TRAINING)!;
  const status = async (id: string) =>
    (await ledger.ask<ReceiptRecord | undefined>({ type: "receipt_status", receiptId: id }))
      ?.status;
  const account = (key: Uint8Array) => ledger.ask<Account>({ type: "account", key });
  const closeWindow = async () => {
    clock += DEFAULT_ECONOMICS.challengeWindowMs + 1;
    await ledger.ask({ type: "finalize" });
  };
  return { system, ledger, training, restartTraining, status, account, closeWindow, model };
}

Deno.test("a training fraud proof held for its accuser's pledge survives a restart of the training validator: the pledge after it still slashes the lazy trainer and pays its accuser", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-pledge-restart-" });
  const node = await ledgerNode(dir, "pledge-restart");
  try {
    const accuser = Identity.generate();
    const proof = lossFraud(node.model.cid, accuser, 8);
    const id = trainingReceiptId(proof.receipt);
    await recordLazyReceipt(node.ledger, node.training(), proof, node.model.cid);
    assert.deepEqual(
      await node.training().ask({
        type: "fraud_proof",
        body: { proof, arch: TEST_ARCH },
        origin: PEER,
      }),
      { queued: false, skipped: "unstaked_accuser", awaitingPledge: true },
    );

    // Kept at the recheck, not only at the stop: a process killed outright keeps it too.
    const kept = join(dir, "ledger", KEPT_DIR);
    const keptBeforeStop = await eventually(
      async () =>
        (await Array.fromAsync(Deno.readDir(kept)).catch(() => [])).map((e) => e.name)
          .join() === `${trainingFraudProofHash(proof)}.cbor`,
      "the held proof to be kept on disk",
      { timeoutMs: 5_000 },
    ).then(() => true, () => false);

    await node.restartTraining();
    const pledge = signStakePledge(accuser, ACCUSER_PLEDGE, 1);
    assert.equal(await node.ledger.ask({ type: "pledge", pledge, origin: PEER }), true);
    // The proof is re-run and settled outside the mailbox; before the fix it never was here.
    await eventually(async () => (await node.status(id)) === "fraud", "the held proof to settle", {
      timeoutMs: 5_000,
    }).catch(() => undefined);
    await node.closeWindow();

    assert.equal(await node.status(id), "fraud", "the lazy trainer convicted here too");
    const trainer = await node.account(proof.receipt.trainer);
    assert.ok(trainer.stake < LAZY_TRAINER_STAKE, "its stake slashed");
    assert.equal(trainer.balance, 0, "and it is not paid");
    const paid = await node.account(accuser.publicKey);
    assert.ok(paid.balance > 0, "its accuser rewarded");
    assert.equal(paid.stake, ACCUSER_PLEDGE, "and charged nothing");
    const stats = await node.training().ask<TrainingValidatorStats>({ type: "stats" });
    assert.equal(stats.checked, 1, "re-run once, after the pledge");
    assert.ok(keptBeforeStop, "kept at a recheck, before any stop");
    // Removed at the recheck after it was taken up (5 ms here), not at once.
    await eventually(
      async () => (await Array.fromAsync(Deno.readDir(kept))).length === 0,
      "taken up: no longer kept",
      { timeoutMs: 5_000 },
    );
  } finally {
    await node.system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("held training proofs read back at a start are not trusted from the disk: a forged, a garbled and a 'local' entry are dropped, nothing re-run, and the folder is cleaned", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-pledge-restart-kept-" });
  const node = await ledgerNode(dir, "pledge-restart-kept");
  try {
    const accuser = Identity.generate();
    const proof = lossFraud(node.model.cid, accuser, 8);
    const id = trainingReceiptId(proof.receipt);
    await recordLazyReceipt(node.ledger, node.training(), proof, node.model.cid);
    const kept = join(dir, "ledger", KEPT_DIR);
    await Deno.mkdir(kept, { recursive: true });
    // Its signature broken: re-verified, it is held for nothing.
    const forged = { ...proof, issuedAt: proof.issuedAt + 1 };
    const write = (name: string, bytes: Uint8Array) => Deno.writeFile(join(kept, name), bytes);
    await write(
      `${trainingFraudProofHash(forged)}.cbor`,
      encodeCanonical({
        body: { proof: forged, arch: TEST_ARCH },
        origin: PEER,
        since: Date.now(),
      }),
    );
    await write(`${"ab".repeat(32)}.cbor`, new Uint8Array([0xff, 0x00, 0x13]));
    // Written as this validator's own: its stake would not be asked for. Never from the disk.
    await write(
      `${trainingFraudProofHash(proof)}.cbor`,
      encodeCanonical({
        body: { proof, arch: TEST_ARCH },
        origin: "local",
        since: Date.now(),
      }),
    );

    await node.restartTraining();
    // The start's intake and its first recheck have run once the folder is cleaned.
    await eventually(
      async () => (await Array.fromAsync(Deno.readDir(kept))).length === 0,
      "the kept folder to be cleaned",
      { timeoutMs: 5_000 },
    );
    const stats = await node.training().ask<TrainingValidatorStats>({ type: "stats" });
    assert.equal(stats.checked, 0, "nothing re-run for an unstaked key's proof read from disk");
    assert.equal(await node.status(id), "pending", "the receipt untouched");
    await node.closeWindow();
    assert.deepEqual(await node.account(accuser.publicKey), { balance: 0, stake: 0, locked: 0 });
  } finally {
    await node.system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
