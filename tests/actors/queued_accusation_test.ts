/**
 * One accuser's second proof of a receipt that comes while its first is still being checked here
 * is queued behind it and settles once the first has (`actors/_queued_accusations.ts`,
 * `actors/_fraud_proofs.ts`). Stop 77 (G2): it was refused `repeated_accusation`, so a confirmed
 * proof that came while the same accuser's refuted one was checked was lost, and the cheat was
 * paid in that ledger while a ledger that heard them the other way round slashed it. The check
 * of the first proof waits on a gate (its model's load) the test opens once both were sent.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { ActorRef } from "../../actors/actor_ref.ts";
import type {
  FraudProofHandled,
  ValidatorMessage,
  ValidatorModelSource,
  ValidatorStats,
} from "../../actors/validator_actor.ts";
import { MAX_QUEUED_PER_ACCUSATION } from "../../actors/_queued_accusations.ts";
import { Identity } from "../../protocols/identity.ts";
import { signAssignment } from "../../protocols/assignment.ts";
import type { TextJob } from "../../protocols/job.ts";
import { type Receipt, receiptId } from "../../protocols/receipt.ts";
import { type FraudProof, signFraudProof } from "../../protocols/fraud_proof.ts";
import { signStakePledge } from "../../protocols/stake_pledge.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { validateReceipt } from "../../proof/validation.ts";
import type { Account, ReceiptRecord } from "../../proof/ledger.ts";
import { eventually } from "../_helpers/wait.ts";
import { f, HONEST_MODELS, proveOn, spawnValidator, START, textJob } from "./_validator_fixture.ts";

const PEER = "ee".repeat(32);
const PENALTY = DEFAULT_ECONOMICS.falseAccusationPenalty;
const WORKER_STAKE = 1_000_000;
const ACCUSER_STAKE = 100 * PENALTY;
const requester = Identity.generate();
const worker = Identity.generate();
const accuser = Identity.generate();

const job = textJob(requester, "queued-accusation", { prompt: "The validator" });
const cheat = await proveOn(job, worker, f.otherSeed);
const assignment = signAssignment({ job, worker: worker.publicKey, issuedAt: 0 }, requester);
const id = receiptId(cheat.receipt);
const { fraudProof: confirmed } = await validateReceipt(
  { job, receipt: cheat.receipt, proof: cheat.proof },
  f.honest,
  accuser,
  { now: () => START },
);
assert.ok(confirmed, "the cheat is caught");

/**
 * A false `receipt`-kind proof by `by` (it cites another job: every checker refutes it), signed
 * at `issuedAt`: each `issuedAt` another proof, as an accuser re-signing.
 */
function refutedProof(receipt: Receipt, by: Identity, issuedAt: number): FraudProof {
  const unrelated = { kind: "text", model: receipt.model, nonce: "x", prompt: "", params: {} };
  return signFraudProof({
    v: 1,
    kind: "receipt",
    job: unrelated as unknown as TextJob,
    receipt,
    chunks: [],
    cited: [],
    issuedAt,
  } as never, by);
}
const refuted = refutedProof(cheat.receipt, accuser, 1);

/** Models that load only once `gate` opens: a check taken before it is still running. */
function gated(gate: Promise<void>): ValidatorModelSource {
  return {
    get: async (cid) => (await gate, await HONEST_MODELS.get(cid)),
    // The intake asks without loading: the gate holds the checks only.
    has: (cid) => cid === f.honest.info.cid,
  };
}

/** A validator holding the worker's and accuser's pledges and the cheat's receipt, pending. */
async function ledger(
  system: ActorSystem,
  name: string,
  dir: string,
  clock: { t: number },
  gate: Promise<void>,
) {
  const ref: ActorRef<ValidatorMessage> = await spawnValidator(system, {
    name,
    identity: Identity.generate(),
    ledgerDir: dir,
    clock,
    challengeProbability: 0,
    models: gated(gate),
  });
  const pledge = (who: Identity, amount: number) =>
    ref.ask({ type: "pledge", pledge: signStakePledge(who, amount, 1), origin: PEER });
  await pledge(worker, WORKER_STAKE);
  await pledge(accuser, ACCUSER_STAKE);
  await ref.ask({ type: "receipt", receipt: cheat.receipt, job, assignment, origin: PEER });
  return ref;
}

/** Send every proof at once (none checked yet): how each was handled. */
async function send(ref: ActorRef<ValidatorMessage>, proofs: FraudProof[]) {
  const handled: FraudProofHandled[] = [];
  for (const proof of proofs) {
    handled.push(await ref.ask<FraudProofHandled>({ type: "fraud_proof", proof, origin: PEER }));
  }
  return handled;
}

/** What each proof's check said, once all are settled ("skipped:..." or "dropped"). */
async function outcomes(ref: ActorRef<ValidatorMessage>, handled: FraudProofHandled[]) {
  const answers: string[] = [];
  for (const h of handled) {
    if (!h.result) answers.push(`skipped:${h.skipped}`);
    else answers.push(await h.result.then((c) => `checked:${c.confirmed}`, () => "dropped"));
  }
  await eventually(async () =>
    (await ref.ask<ValidatorStats>({ type: "stats" })).fraudProofsChecking === 0
  );
  return answers;
}

/** After the window: the receipt's status, the worker's and the accuser's accounts. */
async function ending(ref: ActorRef<ValidatorMessage>) {
  await ref.ask({ type: "finalize" });
  return {
    status: (await ref.ask<ReceiptRecord>({ type: "receipt_status", receiptId: id })).status,
    worker: await ref.ask<Account>({ type: "account", key: worker.publicKey }),
    accuser: await ref.ask<Account>({ type: "account", key: accuser.publicKey }),
  };
}

Deno.test("an accuser's confirmed proof that comes while its refuted one is still checked, and the other way round: queued, each settles, the cheat slashed and the accuser charged and rewarded alike in both ledgers", async () => {
  const root = await Deno.makeTempDir();
  const system = new ActorSystem({ name: "queued-accusation" });
  const clock = { t: START };
  const gate = Promise.withResolvers<void>();
  try {
    const a = await ledger(system, "a/validator", `${root}/a`, clock, gate.promise);
    const b = await ledger(system, "b/validator", `${root}/b`, clock, gate.promise);
    const inA = await send(a, [refuted, confirmed]);
    const inB = await send(b, [confirmed, refuted]);
    for (const handled of [inA, inB]) {
      assert.equal(handled[0].queued, true, "the first is being checked");
      assert.equal(handled[1].awaitingAccusation, true, "the second waits behind it");
    }
    gate.resolve();
    assert.deepEqual(await outcomes(a, inA), ["checked:false", "checked:true"]);
    assert.deepEqual(await outcomes(b, inB), ["checked:true", "checked:false"]);
    clock.t += DEFAULT_ECONOMICS.challengeWindowMs + 1;
    const [endA, endB] = [await ending(a), await ending(b)];
    assert.equal(endA.status, "fraud", "slashed where the false proof came first");
    assert.equal(endA.worker.balance, 0);
    assert.ok(endA.worker.stake < WORKER_STAKE);
    assert.equal(endA.accuser.stake, ACCUSER_STAKE - PENALTY, "charged once for its false proof");
    assert.ok(endA.accuser.balance > 0, "rewarded for its confirmed proof");
    assert.deepEqual(endA, endB, "both ledgers end the same");
  } finally {
    gate.resolve();
    await system.shutdown();
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("the queue behind one accusation is bounded: past it the oldest queued proof goes, and the rest settle in order after the one being checked", async () => {
  const root = await Deno.makeTempDir();
  const system = new ActorSystem({ name: "queued-accusation-bound" });
  const clock = { t: START };
  const gate = Promise.withResolvers<void>();
  try {
    const v = await ledger(system, "v/validator", `${root}/v`, clock, gate.promise);
    const copies = Array.from(
      { length: MAX_QUEUED_PER_ACCUSATION + 2 },
      (_, i) => refutedProof(cheat.receipt, accuser, i + 2),
    );
    const handled = await send(v, [...copies, confirmed]);
    gate.resolve();
    const answers = await outcomes(v, handled);
    // The first is checked; of the rest, queued one after another, the oldest go past the bound
    // and the newest (the confirmed proof last) settle.
    const dropped = copies.length - MAX_QUEUED_PER_ACCUSATION;
    assert.deepEqual(answers, [
      "checked:false",
      ...Array(dropped).fill("dropped"),
      ...Array(MAX_QUEUED_PER_ACCUSATION - 1).fill("checked:false"),
      "checked:true",
    ]);
    clock.t += DEFAULT_ECONOMICS.challengeWindowMs + 1;
    const end = await ending(v);
    assert.equal(end.status, "fraud");
    assert.equal(end.accuser.stake, ACCUSER_STAKE - MAX_QUEUED_PER_ACCUSATION * PENALTY);
  } finally {
    gate.resolve();
    await system.shutdown();
    await Deno.remove(root, { recursive: true });
  }
});
