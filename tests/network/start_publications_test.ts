/**
 * What a validator decides or resumes at its start reaches the peers, also at a node's first
 * start. A node starts its NetworkActor after its ValidatorActor (`node/node.ts`), and its peers
 * connect after that: the verdict of a challenge ending kept on disk (`_challenge_endings.ts`)
 * and applied at the start, or an own fraud proof resumed at the start (`_own_fraud_proofs.ts`),
 * was told to a network that did not exist yet, or that had no peer yet, and was lost. A peer's
 * ledger then never heard that the worker withheld its proof data (it took over nothing, and paid
 * the work), or that it cheated (it paid the cheat). Now each ledger-keeping peer that connects
 * is sent them, while their receipts' windows are open.
 *
 * The node's start order is reproduced with its two actors (validator, then network), joined to
 * a peer node in memory. No clock is raced: both ledgers run on the test's clock.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { ActorRef } from "../../actors/actor_ref.ts";
import { ChallengeEndings } from "../../actors/_challenge_endings.ts";
import type { ValidatorMessage, ValidatorModelSource } from "../../actors/validator_messages.ts";
import type { ValidatorStats } from "../../actors/validator_actor.ts";
import { NetworkActor, type NetworkMessage } from "../../network/network_actor.ts";
import { signAssignment } from "../../protocols/assignment.ts";
import type { Connection } from "../../protocols/connection.ts";
import { Identity } from "../../protocols/identity.ts";
import type { TextJob } from "../../protocols/job.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import { type Receipt, receiptId } from "../../protocols/receipt.ts";
import { signVerdict } from "../../protocols/verdict.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { Ledger } from "../../proof/ledger.ts";
import { signServedProof } from "../../proof/served_proof.ts";
import { eventually } from "../_helpers/wait.ts";
import {
  announceAssigned,
  f,
  HONEST_MODELS,
  type LedgerClock,
  ledgerReads,
  proveOn,
  spawnValidator,
  START,
  textJob,
} from "../actors/_validator_fixture.ts";

const STAKE = 10_000;

interface Node {
  validator: ActorRef<ValidatorMessage>;
  network: ActorRef<NetworkMessage>;
}

/** A node's ledger-keeping actors in its start order: the validator first, then the network. */
async function startNode(
  system: ActorSystem,
  name: string,
  identity: Identity,
  ledgerDir: string,
  clock: LedgerClock,
  models: ValidatorModelSource = HONEST_MODELS,
): Promise<Node> {
  const validator = await spawnValidator(system, {
    name: `${name}/validator`,
    identity,
    ledgerDir,
    clock,
    models,
    challengeProbability: 0,
    network: `${name}/network`,
  });
  const network = await system.spawn<NetworkMessage>({
    name: `${name}/network`,
    factory: () => new NetworkActor({ identity, services: { validator: `${name}/validator` } }),
  });
  return { validator, network };
}

/** Join two nodes in memory (`x` dials). */
async function join(x: Node, y: Node): Promise<void> {
  const [dx, dy] = memoryDuplexPair();
  await Promise.all([
    x.network.ask<Connection>({ type: "attach", duplex: dx, address: "mem", outbound: true }),
    y.network.ask<Connection>({ type: "attach", duplex: dy, address: "mem", outbound: false }),
  ]);
}

/** The peer: a ledger that holds the worker's receipt (pending) and the stake of both keys. */
async function peerHolding(
  system: ActorSystem,
  dir: string,
  clock: LedgerClock,
  work: { receipt: Receipt; job: TextJob; requester: Identity; validator: Identity },
): Promise<Node> {
  const peer = await startNode(system, "b", Identity.generate(), `${dir}/b`, clock);
  await peer.validator.ask({ type: "deposit", key: work.receipt.worker, amount: STAKE });
  await peer.validator.ask({ type: "deposit", key: work.validator.publicKey, amount: STAKE });
  const handled = await announceAssigned(peer.validator, work.receipt, work.job, work.requester);
  assert.equal(handled.recorded, true);
  return peer;
}

const statsOf = (node: Node) => node.validator.ask<ValidatorStats>({ type: "stats" });

Deno.test("a fault applied from a kept ending at a node's first start is passed on to the peer that connects after it", async () => {
  const dir = await Deno.makeTempDir();
  const clock = { t: START };
  const system = new ActorSystem({ name: "start-publications-fault" });
  try {
    const [me, worker, requester] = Array.from({ length: 3 }, Identity.generate);
    const job = textJob(requester, crypto.randomUUID());
    const { receipt } = await proveOn(job, worker);
    const id = receiptId(receipt);
    // Before the stop: the challenge ended in a fault (the worker withheld its proof data),
    // kept on disk, and the stop came before the ledger had the verdict.
    const ledger = await Ledger.open(`${dir}/a`, me, { now: () => clock.t });
    await ledger.deposit(worker.publicKey, STAKE);
    await ledger.recordReceipt(receipt, {
      assignment: signAssignment({ job, worker: worker.publicKey, issuedAt: 0 }, requester),
    });
    await ledger.openChallenge(id);
    await ledger.close();
    const verdict = signVerdict({
      v: 1,
      subject: "inference",
      subjectId: id,
      target: worker.publicKey,
      outcome: "invalid",
      reason: "proof_unavailable",
      issuedAt: clock.t,
    }, me);
    await ChallengeEndings.in(`${dir}/a`).keep(id, {
      end: "fault",
      reason: "proof_unavailable",
      verdict,
    });

    const peer = await peerHolding(system, dir, clock, { receipt, job, requester, validator: me });
    const node = await startNode(system, "a", me, `${dir}/a`, clock);
    const reads = ledgerReads(() => node.validator, clock);
    assert.equal((await reads.record(id))?.status, "fraud", "the kept fault was not applied");
    await join(node, peer);
    await eventually(
      async () => (await statsOf(peer)).peerVerdicts > 0,
      "the peer to receive the fault verdict applied at the start",
      { timeoutMs: 5_000 },
    );
    // Once: the start's verdict is sent on connect, not again by another path.
    assert.equal((await statsOf(peer)).peerVerdicts, 1);
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("an own fraud proof resumed at a node's first start is passed on to the peer that connects after it: the cheat is slashed there too", async () => {
  const dir = await Deno.makeTempDir();
  const clock = { t: START };
  const [me, worker, requester] = Array.from({ length: 3 }, Identity.generate);
  const job = textJob(requester, crypto.randomUUID());
  const proved = await proveOn(job, worker, f.otherSeed); // a cheat: another model
  const id = receiptId(proved.receipt);
  // Before the stop: the challenge caught the cheat, and the stop came while its proof was
  // being checked (the check waits on a gate that never opens).
  const first = new ActorSystem({ name: "start-publications-caught" });
  const gate = Promise.withResolvers<void>();
  let gets = 0;
  const gated: ValidatorModelSource = {
    has: (cid) => cid === f.honest.info.cid,
    get: (cid) => gets++ === 0 ? HONEST_MODELS.get(cid) : gate.promise.then(() => undefined),
  };
  const caught = await spawnValidator(first, {
    identity: me,
    ledgerDir: `${dir}/a`,
    clock,
    models: gated,
    challengeProbability: 1,
    source: { proof: () => Promise.resolve(signServedProof(id, proved.proof, worker)) },
  });
  await caught.ask({ type: "deposit", key: worker.publicKey, amount: STAKE });
  (await announceAssigned(caught, proved.receipt, job, requester)).result?.catch(() => {});
  await eventually(
    async () => (await caught.ask<ValidatorStats>({ type: "stats" })).verdicts.fraud === 1,
    "the fraud verdict",
  );
  first.events.subscribe((event) => {
    if (event.type === "stopped" && event.name.endsWith("validator")) {
      gate.reject(new Error("stopped"));
    }
  });
  await first.shutdown();

  const system = new ActorSystem({ name: "start-publications-resumed" });
  try {
    const peer = await peerHolding(system, dir, clock, {
      receipt: proved.receipt,
      job,
      requester,
      validator: me,
    });
    const node = await startNode(system, "a", me, `${dir}/a`, clock);
    const reads = ledgerReads(() => node.validator, clock);
    await reads.drained();
    await eventually(
      async () => (await reads.record(id))?.status === "fraud",
      "the resumed proof to settle here",
    );
    await join(node, peer);
    await eventually(
      async () => (await statsOf(peer)).fraudProofsChecked > 0,
      "the peer to receive the resumed fraud proof",
      { timeoutMs: 5_000 },
    );
    const peerReads = ledgerReads(() => peer.validator, clock);
    await eventually(
      async () => (await peerReads.record(id))?.status === "fraud",
      "the cheat's receipt to settle as fraud at the peer",
    );
    const slash = proved.receipt.tokenCount * DEFAULT_ECONOMICS.defaultTokenPrice *
      DEFAULT_ECONOMICS.slashMultiplier;
    assert.equal((await peerReads.account(worker.publicKey)).stake, STAKE - slash);
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("what a start passed on is sent to peers only while its receipt's window is open", async () => {
  const dir = await Deno.makeTempDir();
  const clock = { t: START };
  const system = new ActorSystem({ name: "start-publications-window" });
  try {
    const [me, worker, requester] = Array.from({ length: 3 }, Identity.generate);
    const job = textJob(requester, crypto.randomUUID());
    const { receipt } = await proveOn(job, worker);
    const id = receiptId(receipt);
    const ledger = await Ledger.open(`${dir}/a`, me, { now: () => clock.t });
    await ledger.deposit(worker.publicKey, STAKE);
    await ledger.recordReceipt(receipt, {
      assignment: signAssignment({ job, worker: worker.publicKey, issuedAt: 0 }, requester),
    });
    await ledger.openChallenge(id);
    await ledger.close();
    const verdict = signVerdict({
      v: 1,
      subject: "inference",
      subjectId: id,
      target: worker.publicKey,
      outcome: "invalid",
      reason: "proof_unavailable",
      issuedAt: clock.t,
    }, me);
    await ChallengeEndings.in(`${dir}/a`).keep(id, {
      end: "fault",
      reason: "proof_unavailable",
      verdict,
    });
    const node = await startNode(system, "a", me, `${dir}/a`, clock);
    assert.equal(
      (await node.validator.ask<unknown[]>({ type: "start_publications" })).length,
      1,
    );
    clock.t += DEFAULT_ECONOMICS.challengeWindowMs + 1;
    assert.deepEqual(await node.validator.ask({ type: "start_publications" }), []);
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
