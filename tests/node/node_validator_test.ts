/**
 * The node's validator as wired by `node/node.ts`: it answers "can this ledger check it" from the
 * node's model registry, and a forwarding node hands each worker's checked receipt to it.
 */
import assert from "node:assert/strict";
import { parseNodeConfig } from "../../node/config.ts";
import { NODE_ACTORS, startNode, type VeriflowNode } from "../../node/node.ts";
import type { ValidatorMessage } from "../../actors/validator_actor.ts";
import { Ledger, type ReceiptRecord } from "../../proof/ledger.ts";
import { ModelRegistry } from "../../inference/model_registry.ts";
import { Identity } from "../../protocols/identity.ts";
import { toHex } from "../../protocols/hash.ts";
import { parseReceipt, receiptId } from "../../protocols/receipt.ts";
import { signAssignment } from "../../protocols/assignment.ts";
import { proveJob } from "../../proof/prover.ts";
import { loadFixture, manualStream } from "../proof/_models.ts";
import { settleJob, startValidatorNode, tellReceipt } from "./_validator_node.ts";
import { join } from "node:path";
import { buildGptModel } from "../../inference/model_builder.ts";
import type { NetworkMessage, PeerInfo } from "../../network/network_actor.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { paidFor } from "../proof/_receipt_pay.ts";
import type { ReceiptRecord as ReceiptRecordForwardedReceiptNode } from "../../proof/ledger_state.ts";
import { eventually } from "../_helpers/wait.ts";
import { queuedAt } from "../network/_validator_down.ts";
import { type HeldAppend, holdNextAppend } from "../actors/_ledger_write_fault.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { FraudProofHandled, ValidatorStats } from "../../actors/validator_messages.ts";
import { validateReceipt } from "../../proof/validation.ts";
import { fraudProofHash } from "../../protocols/fraud_proof.ts";
import { seededGptWeights } from "../../training/gpt_weights.ts";
import { RoundModels } from "../../training/round_models.ts";
import { trainingReceiptId } from "../../training/training_receipt.ts";
import type { TrainingValidatorStats } from "../../training/training_validator.ts";
import { RecordingNetwork } from "../_helpers/recording_network.ts";
import {
  f as validatorFixture,
  HONEST_MODELS,
  ledgerReads,
  proveOn,
  spawnValidator,
  START,
  textJob,
} from "../actors/_validator_fixture.ts";
import { TEST_ARCH } from "../training/_fixtures.ts";
import { lossFraud, recordLazyReceipt } from "../training/_loss_fraud.ts";
import { spawnTrainingLedger } from "../training/_training_ledger.ts";

// The node's validator answers "can this ledger check it" from the node's model registry at receipt
// intake, loading nothing: a peer's assigned receipt on a registered model is credited, one on a
// model not registered here is recorded without credit (`model_unavailable`), and neither loads a
// model.

const f = await loadFixture();

Deno.test("a node's validator credits a peer's receipt only on a model registered here, and loads no model to tell", async () => {
  const v = await startValidatorNode(f, 10_000);
  const { models, validator, worker } = v;
  try {
    const submit = async (model: string) => {
      const job = settleJob(v, model);
      const ids = f.honest.tokenizer.encode(job.prompt);
      const proved = await proveJob(job, manualStream(() => f.honest, ids, job.params), worker);
      const handled = await tellReceipt(v, proved.receipt, job);
      const record = await validator.ask<ReceiptRecord>({
        type: "receipt_status",
        receiptId: receiptId(proved.receipt),
      });
      return { handled, record };
    };
    const held = await submit(f.honest.info.cid);
    assert.equal(held.handled.uncredited, undefined);
    assert.ok(held.record.credit > 0);
    const unheld = await submit(f.otherSeed.info.cid);
    assert.equal(unheld.handled.uncredited, "model_unavailable");
    assert.equal(unheld.record.credit, 0);
    assert.deepEqual(models.health(), [], "no model was loaded to answer");
  } finally {
    await v.close();
  }
});

// At the node level: a forwarding node (no model runs its jobs) hands each worker's checked
// receipt, with the assignment it signed, to its own ValidatorActor through the node's
// `ValidatorInbox` — but only because `startNode` gives its `NetworkInferencePort` the actor system
// (`ForwardingOptions.system`, `node/node.ts`). Without it the port falls back to a bare `tell`,
// lost with the mailbox when the validator crashes with it queued: the assignment exists nowhere
// else, so the requester's ledger records only the worker's own (unassigned) announcement and no
// other ledger hears of the assignment: the honest worker that delivered every token is paid in
// none. `tests/network/validator_inbox_test.ts` builds the port by hand; this test
// pins the wiring.
//
// The set-up: three nodes in this process over 127.0.0.1 (tiny model): A forwards its client's
// job to W (the worker) and is dialled by nothing but dials W and C (a validator that hears of
// the receipt only through A). A's validator is busy with a ledger write that is made to fail
// (a disk error: the validator crashes, and its supervisor starts it again on the ledger it reads
// back from disk) while the job ends, so A's receipt is queued there when it crashes. The ledger
// outcome is read from A's and C's ledgers on disk once the nodes are down, on a clock past the
// challenge window (no real time waited for it).
//
// @module

/** The worker's stake in A's and C's ledgers. */
const WORKER_STAKE = 1_000_000;

/** Give-up time of a wait on the three nodes (a dial, a restart, an announcement). */
const ACROSS_NODES_MS = 20_000;

Deno.test({
  name:
    "a forwarded job's receipt queued at the forwarding node's validator when it crashes reaches its next incarnation: the honest worker is paid tokens × price in the forwarding node's ledger and in a peer's that hears of it only through it",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const root = await Deno.makeTempDir({ prefix: "veriflow-s60-wire-" });
    const nodes: VeriflowNode[] = [];
    let held: HeldAppend | undefined;
    try {
      await buildGptModel({ size: "tiny", seed: 0, outDir: join(root, "model") });
      const start = async (
        name: string,
        roles: Record<string, boolean>,
        peers: string[] = [],
      ) => {
        const models = new ModelRegistry({ intraOpThreads: 1 });
        await models.register(join(root, "model"));
        const node = await startNode(
          parseNodeConfig({
            dataDir: join(root, name),
            http: { port: 0, hostname: "127.0.0.1" },
            network: { listen: { port: 0, hostname: "127.0.0.1" }, peers },
            roles: { storage: false, ...roles },
            // Nobody challenges: the receipt is paid when its window closes.
            validator: { challengeProbability: 0 },
            dashboard: { enabled: false },
            heartbeatMs: 0,
            // Stakes are deposited below: no pledge reaches a ledger while the test runs.
            selfStake: 0,
          }),
          { models },
        );
        nodes.push(node);
        return node;
      };
      const address = async (node: VeriflowNode) => {
        const at = (await node.peerAddress())!;
        return `${at.hostname}:${at.port}`;
      };
      const forwarder = { inference: false, prover: false, validator: true };
      const w = await start("w", { inference: true, prover: true, validator: true });
      const c = await start("c", forwarder);
      const a = await start("a", forwarder, [await address(w), await address(c)]);
      const model = w.models.list()[0].cid;
      const networkOf = (node: VeriflowNode) =>
        node.system.lookup<NetworkMessage>(NODE_ACTORS.network)!;
      const validatorOf = (node: VeriflowNode) =>
        node.system.lookup<ValidatorMessage>(NODE_ACTORS.validator)!;
      await eventually(
        async () => {
          const peers = await networkOf(a).ask<PeerInfo[]>({ type: "peers" });
          return peers.length >= 2 && peers.some((p) => p.models.includes(model));
        },
        "A to be connected to W (a worker) and C",
        { timeoutMs: ACROSS_NODES_MS },
      );
      for (const node of [a, c]) {
        await validatorOf(node).ask({
          type: "deposit",
          key: w.identity.publicKey,
          amount: WORKER_STAKE,
        });
      }

      // A's validator is busy with a ledger write while the job ends.
      held = holdNextAppend(join(root, "a"));
      const busy = validatorOf(a).ask({
        type: "deposit",
        key: Identity.generate().publicKey,
        amount: 1,
      });
      busy.catch(() => {});
      await held.called;

      const response = await fetch(`${a.url}/v1/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model, prompt: "Settle this", max_tokens: 4, seed: 4 }),
      });
      assert.equal(response.status, 200);
      const body = await response.json();
      const receipt = parseReceipt(body.veriflow_receipt);
      assert.deepEqual(receipt.worker, w.identity.publicKey, "the job ran on W");
      const id = receiptId(receipt);
      // The receipt is handed over as the job ends: queued behind the write.
      await eventually(
        () => Promise.resolve((queuedAt(a.system.tree(), NODE_ACTORS.validator) ?? 0) >= 1),
        "A's receipt to be queued at A's validator",
        { timeoutMs: ACROSS_NODES_MS },
      );
      const seen: string[] = [];
      a.system.events.subscribe((event) => {
        if (event.name === NODE_ACTORS.validator) seen.push(event.type);
      });
      held.fail();
      await assert.rejects(busy);
      await eventually(
        () => seen.includes("crashed") && seen.includes("restarted"),
        "A's validator to crash and be started again",
        { timeoutMs: ACROSS_NODES_MS },
      );
      const aHex = toHex(a.identity.publicKey);
      const assigned = (node: VeriflowNode) => async () =>
        (await validatorOf(node).ask<ReceiptRecordForwardedReceiptNode | undefined>({
          type: "receipt_status",
          receiptId: id,
        }))?.requester === aHex;
      // Lost, these waits end without it: the ledgers below tell.
      for (const [node, what] of [[a, "A"], [c, "C"]] as const) {
        await eventually(assigned(node), `${what} to record the receipt as A's assignment`, {
          timeoutMs: ACROSS_NODES_MS,
        }).catch(() => {});
      }

      for (const node of nodes.splice(0)) await node.shutdown();
      // The ledger outcome, on a clock past the window.
      const paid = paidFor(receipt); // its tokens and its prompt (`_receipt_pay.ts`)
      for (const [name, identity] of [["a", a.identity], ["c", c.identity]] as const) {
        const ledger = await Ledger.open(join(root, name, "ledger"), identity, {
          now: () => Date.now() + 2 * DEFAULT_ECONOMICS.challengeWindowMs,
        });
        try {
          await ledger.finalizeDue();
          const record = ledger.receipt(id);
          assert.equal(
            record?.requester,
            aHex,
            `${name.toUpperCase()}'s ledger never recorded A's assignment of the job`,
          );
          assert.equal(record?.status, "final");
          assert.equal(
            ledger.account(w.identity.publicKey).balance,
            paid,
            `the honest worker was not paid in ${name.toUpperCase()}'s ledger`,
          );
        } finally {
          await ledger.close();
        }
      }
    } finally {
      held?.restore();
      for (const node of nodes) await node.shutdown();
      await Deno.remove(root, { recursive: true });
    }
  },
});

// A peer's fraud proof at a validator's intake (`ValidatorActor`, `TrainingValidator`):
//
// - The training intake took a peer's proof about a receipt left `unpaid` or already slashed
//   (`takesFraudProofs`) whatever its window: a proof about a receipt closed long ago was re-run
//   (a training step) and, confirmed, passed on to every peer, for a settlement every ledger
//   refuses (`challenge_window_closed`), so its accuser risked nothing. The inference intake
//   checks the window for such receipts; the training intake did not.
// - The inference intake now checks a peer's proof about a receipt already slashed here (only a
//   refuted one settles). A confirmed one is refused by the ledger (`not_pending`) and left no
//   trace of its accuser: the same accuser re-signing it (a new `issuedAt`) had it checked, and
//   passed on, again and again, where every other accusation is taken once per accuser and
//   receipt (`repeated_accusation`).

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
  const proved = await proveOn(job, worker, validatorFixture.otherSeed); // a cheat: another model
  const id = receiptId(proved.receipt);
  const material = { job, receipt: proved.receipt, proof: proved.proof };
  const proofOf = async (accuser: Identity, at: number) => {
    const { fraudProof } = await validateReceipt(material, validatorFixture.honest, accuser, {
      now: () => at,
    });
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
