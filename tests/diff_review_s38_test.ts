/**
 * Review of stop 38's changes (`git diff 9f0613e..HEAD`): each test pins a defect found there.
 *
 * - An architecture "no round can carry" was bounded by its parameter count, while a report
 *   carries the encoded int8 delta: one scale (4 bytes) per row and a header per tensor on top
 *   of a byte per parameter. Architectures between the two passed the wire schema and the
 *   configuration, and every report of theirs was refused (`delta over 983040 bytes`).
 * - The training intake took a peer's proof about a receipt left `unpaid` or already slashed
 *   (`takesFraudProofs`) whatever its window: a proof about a receipt closed long ago was re-run
 *   (a training step) and, confirmed, passed on to every peer, for a settlement every ledger
 *   refuses (`challenge_window_closed`), so its accuser risked nothing. The inference intake
 *   checks the window for such receipts; the training intake did not.
 * - The inference intake now checks a peer's proof about a receipt already slashed here (only a
 *   refuted one settles). A confirmed one is refused by the ledger (`not_pending`) and left no
 *   trace of its accuser: the same accuser re-signing it (a new `issuedAt`) had it checked, and
 *   passed on, again and again, where every other accusation is taken once per accuser and
 *   receipt (`repeated_accusation`).
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../actors/actor_system.ts";
import type { FraudProofHandled, ValidatorStats } from "../actors/validator_messages.ts";
import type { NetworkMessage } from "../network/network_actor.ts";
import { ConfigError, parseNodeConfig } from "../node/config.ts";
import { Ledger, type ReceiptRecord } from "../proof/ledger.ts";
import { DEFAULT_ECONOMICS } from "../proof/economics.ts";
import { validateReceipt } from "../proof/validation.ts";
import { signAssignment } from "../protocols/assignment.ts";
import { fraudProofHash } from "../protocols/fraud_proof.ts";
import { Identity } from "../protocols/identity.ts";
import { receiptId } from "../protocols/receipt.ts";
import {
  ArchitectureSchema,
  MAX_REPORT_DELTA_BYTES,
  MAX_WIRE_MODEL_PARAMETERS,
} from "../protocols/training_messages.ts";
import { gptWeightShapes, seededGptWeights } from "../training/gpt_weights.ts";
import { encodeInt8Delta, quantizeDelta } from "../training/int8_delta.ts";
import { RoundModels } from "../training/round_models.ts";
import { trainingReceiptId } from "../training/training_receipt.ts";
import type { TrainingValidatorStats } from "../training/training_validator.ts";
import { RecordingNetwork } from "./_helpers/recording_network.ts";
import {
  f,
  HONEST_MODELS,
  ledgerReads,
  proveOn,
  spawnValidator,
  START,
  textJob,
} from "./actors/_validator_fixture.ts";
import { TEST_ARCH } from "./training/_fixtures.ts";
import { lossFraud, recordLazyReceipt } from "./training/_loss_fraud.ts";
import { spawnTrainingLedger } from "./training/_training_ledger.ts";

Deno.test("an architecture on the wire is refused when its encoded delta would not fit a report, not only past a byte a parameter", () => {
  // 975,604 parameters (under the 983,040 bound), 20,096 rows of scales and 29 tensor headers.
  const arch = { numLayers: 2, hiddenSize: 188, numHeads: 4, contextLength: 128 };
  const parameters = gptWeightShapes(arch).reduce(
    (n, [, shape]) => n + shape.reduce((a, b) => a * b, 1),
    0,
  );
  assert.ok(parameters <= MAX_WIRE_MODEL_PARAMETERS, "under a byte a parameter");
  // The delta a trainer of it reports: every report of this model is refused on the wire.
  const delta = encodeInt8Delta(quantizeDelta(seededGptWeights(arch, 0)));
  assert.ok(delta.byteLength > MAX_REPORT_DELTA_BYTES, `its delta is ${delta.byteLength} bytes`);
  assert.equal(ArchitectureSchema.safeParse(arch).success, false, "so the architecture is too");
  assert.throws(
    () => parseNodeConfig({ training: { arch } }),
    (error: unknown) => error instanceof ConfigError && /training\.arch/.test(error.message),
    "and a node configured to train it does not start",
  );
  // The largest the bound's own test admits still fits, delta and all.
  const widest = { numLayers: 1, hiddenSize: 256, numHeads: 4, contextLength: 64 };
  const widestDelta = encodeInt8Delta(quantizeDelta(seededGptWeights(widest, 0)));
  assert.ok(widestDelta.byteLength <= MAX_REPORT_DELTA_BYTES);
  assert.ok(ArchitectureSchema.safeParse(widest).success);
});

Deno.test("a peer's training fraud proof about a receipt left unpaid here is not re-run once its window has closed", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-s38-training-window-" });
  const system = new ActorSystem({ name: "s38-training-window" });
  try {
    const window = DEFAULT_ECONOMICS.challengeWindowMs;
    // The ledger recorded the receipt long enough ago that its window closed a minute ago.
    const clock = { t: Date.now() - window - 60_000 };
    const models = new RoundModels({ modelsDir: dir, storage: () => undefined });
    const model = await models.publish(TEST_ARCH, seededGptWeights(TEST_ARCH, 0));
    const told: NetworkMessage[] = [];
    await system.spawn<NetworkMessage>({
      name: "node/network",
      factory: () => new RecordingNetwork(told),
    });
    const { ledger, training } = await spawnTrainingLedger(system, {
      identity: Identity.generate(),
      dir,
      now: () => clock.t,
      models,
      challenge: { challengeProbability: 0, network: "node/network" },
    });
    const accuser = Identity.generate();
    const proof = lossFraud(model.cid, accuser, 8);
    await ledger.ask({ type: "deposit", key: accuser.publicKey, amount: 10_000 });
    await recordLazyReceipt(ledger, training, proof, model.cid);
    const id = trainingReceiptId(proof.receipt);
    for (const step of ["open", "undecided"] as const) {
      assert.equal(await ledger.ask({ type: "training_challenge", receiptId: id, step }), true);
    }
    const record = await ledger.ask<ReceiptRecord | undefined>({
      type: "receipt_status",
      receiptId: id,
    });
    assert.equal(record?.status, "unpaid");
    clock.t = Date.now();
    assert.ok(clock.t > record!.pendingUntil, "its window has closed");

    const handled = await training.ask<{ queued: boolean; skipped?: string }>({
      type: "fraud_proof",
      body: { proof, arch: TEST_ARCH },
      origin: "stranger",
    });
    assert.deepEqual(handled, { queued: false, skipped: "not_pending" });
    const stats = await training.ask<TrainingValidatorStats>({ type: "stats" });
    assert.equal(stats.checked, 0, "nothing re-run");
    const passedOn = told.map((m) => (m as { gossip?: { kind: string } }).gossip?.kind);
    assert.ok(!passedOn.includes("fraud_proof"), "nor passed on");
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a peer's confirmed proof about a receipt already slashed here is checked once per accuser, not once per signature", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-s38-slashed-resign-" });
  const clock = { t: START };
  const [me, worker, first, copier, requester] = Array.from({ length: 5 }, Identity.generate);
  const job = textJob(requester, "slashed-then-resigned");
  const proved = await proveOn(job, worker, f.otherSeed); // a cheat: another model
  const id = receiptId(proved.receipt);
  const material = { job, receipt: proved.receipt, proof: proved.proof };
  const proofOf = async (accuser: Identity, at: number) => {
    const { fraudProof } = await validateReceipt(material, f.honest, accuser, { now: () => at });
    assert.ok(fraudProof, "the cheat is caught");
    return fraudProof;
  };
  const firstProof = await proofOf(first, START);
  const copies = [await proofOf(copier, START), await proofOf(copier, START + 1)];
  assert.notEqual(fraudProofHash(copies[0]), fraudProofHash(copies[1]), "two signatures");

  // The receipt was slashed here on the first accuser's proof.
  const ledgerDir = `${dir}/ledger`;
  const before = await Ledger.open(ledgerDir, me, { now: () => clock.t });
  for (const key of [worker, first, copier]) await before.deposit(key.publicKey, 10_000);
  const assignment = signAssignment({ job, worker: worker.publicKey, issuedAt: 0 }, requester);
  await before.recordReceipt(proved.receipt, { assignment });
  await before.settleFraud({
    receiptId: id,
    fraudProofHash: fraudProofHash(firstProof),
    validator: first.publicKey,
    confirmed: true,
    reason: "fingerprint_mismatch",
  });
  await before.close();

  const system = new ActorSystem({ name: "s38-slashed-resign" });
  try {
    const told: NetworkMessage[] = [];
    await system.spawn<NetworkMessage>({
      name: "node/network",
      factory: () => new RecordingNetwork(told),
    });
    const validator = await spawnValidator(system, {
      identity: me,
      ledgerDir,
      clock,
      challengeProbability: 0,
      models: HONEST_MODELS,
      network: "node/network",
    });
    const ledger = ledgerReads(() => validator, clock);
    assert.equal((await ledger.record(id))?.status, "fraud");
    const stake = (await ledger.account(worker.publicKey)).stake;

    const handled = await validator.ask<FraudProofHandled>({
      type: "fraud_proof",
      proof: copies[0],
      origin: "ab".repeat(32),
    });
    assert.equal(handled.skipped, undefined, "inside the window: checked (it might be refuted)");
    await handled.result;
    const again = await validator.ask<FraudProofHandled>({
      type: "fraud_proof",
      proof: copies[1],
      origin: "ab".repeat(32),
    });
    await again.result?.catch(() => {});
    assert.equal(again.skipped, "repeated_accusation", "the same claim re-signed");
    const stats = await validator.ask<ValidatorStats>({ type: "stats" });
    assert.equal(stats.fraudProofsChecked, 1);
    assert.equal((await ledger.account(worker.publicKey)).stake, stake, "slashed once");
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
