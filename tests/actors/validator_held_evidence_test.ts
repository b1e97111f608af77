/**
 * What a validator holds waiting for something else (`actors/_held_evidence.ts`): kept across its
 * restart, bounded in what it keeps of peers' fraud proofs taken and not settled, and taken again
 * at a start with the time it was first taken.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { ActorRef } from "../../actors/actor_ref.ts";
import {
  HELD_EVIDENCE_FILE,
  type HeldEvidence,
  HeldEvidenceFile,
} from "../../actors/_held_evidence.ts";
import type {
  FraudProofHandled,
  ValidatorMessage,
  ValidatorModelSource,
  ValidatorStats,
} from "../../actors/validator_messages.ts";
import { validateReceipt } from "../../proof/validation.ts";
import { Identity } from "../../protocols/identity.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { signStakePledge } from "../../protocols/stake_pledge.ts";
import { pathExists } from "../../storage/path_exists.ts";
import { eventually } from "../_helpers/wait.ts";
import {
  announceAssigned,
  f,
  falseProof,
  HONEST_MODELS,
  ledgerReads,
  proveOn,
  spawnValidator,
  START,
  textJob,
} from "./_validator_fixture.ts";
import { MAX_PLEDGE_HELD_PROOFS } from "../../actors/_pledge_held_proofs.ts";
import { MAX_KEPT_TAKEN_FRAUD_PROOFS, ValidatorMemory } from "../../actors/_validator_memory.ts";
import type { TextModel } from "../../inference/text_model.ts";
import { decodeCbor } from "../../protocols/cbor.ts";
import { type FraudProof, fraudProofHash, signFraudProof } from "../../protocols/fraud_proof.ts";
import { bytesEqual } from "../../protocols/bytes_equal.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import type { FraudCheckResult } from "../../proof/fraud_check.ts";
import { slashOf, STAKE } from "./_ledger_write_fault.ts";
import { slowModels, STAKE as FIXTURE_STAKE } from "./_held_receipt_fixture.ts";

// -------------------------------------------------------------------------------------------------
// What a validator holds waiting for something else survives its restart
// (`actors/_held_evidence.ts`): a peer's receipt refused for want of its worker's pledge is
// recorded when the pledge comes after the restart, and a peer's fraud proof that outran its
// receipt settles when the receipt comes after the restart. Before, both were in memory only: the
// honest work went unpaid here for good, and the cheat the proof caught was paid here.

const HELD_STAKE = 100_000;

/**
 * A cheat's work (another model under the honest CID), and `accuser`'s proof of it sent to
 * `validator` before the receipt: held for the receipt.
 */
async function caughtBeforeItsReceipt(
  validator: ActorRef<ValidatorMessage>,
  nonce: string,
  who: { requester: Identity; cheat: Identity; accuser: Identity; peer: string },
) {
  const cheatJob = textJob(who.requester, nonce);
  const cheatWork = await proveOn(cheatJob, who.cheat, f.otherSeed);
  const { fraudProof } = await validateReceipt(
    { job: cheatJob, receipt: cheatWork.receipt, proof: cheatWork.proof },
    f.honest,
    who.accuser,
    { now: () => START },
  );
  assert.ok(fraudProof);
  const held = await validator.ask<FraudProofHandled>({
    type: "fraud_proof",
    proof: fraudProof,
    origin: who.peer,
  });
  assert.equal(held.awaitingReceipt, true);
  return { cheatJob, cheatWork };
}

Deno.test("a receipt waiting for its worker's pledge and a fraud proof waiting for its receipt are taken up after a restart: the work is recorded, the cheat slashed", async () => {
  const dir = await Deno.makeTempDir();
  const clock = { t: START };
  const [me, honest, cheat, accuser, requester] = Array.from({ length: 5 }, Identity.generate);
  const peer = "ab".repeat(32);
  const system = new ActorSystem({ name: "held-evidence" });
  try {
    const ledgerDir = join(dir, "ledger");
    const spawn = () =>
      spawnValidator(system, {
        identity: me,
        ledgerDir,
        clock,
        challengeProbability: 0,
        models: HONEST_MODELS,
      });
    let validator: ActorRef<ValidatorMessage> = await spawn();
    const ledger = ledgerReads(() => validator, clock);
    const pledge = (key: Identity) =>
      validator.ask({ type: "pledge", pledge: signStakePledge(key, HELD_STAKE, 1), origin: peer });
    await pledge(cheat);
    await pledge(accuser);

    // Honest work whose worker's pledge has not come yet: refused, kept until it does.
    const honestJob = textJob(requester, "held-honest");
    const honestWork = await proveOn(honestJob, honest);
    const refused = await announceAssigned(validator, honestWork.receipt, honestJob, requester);
    assert.equal(refused.refusal, "insufficient_stake");

    // A cheat caught elsewhere: the accuser's proof comes before the receipt.
    const { cheatJob, cheatWork } = await caughtBeforeItsReceipt(validator, "held-cheat", {
      requester,
      cheat,
      accuser,
      peer,
    });

    await system.stop("node/validator");
    assert.ok(await pathExists(join(ledgerDir, HELD_EVIDENCE_FILE)), "kept at the stop");
    validator = await spawn();
    // Taken in at the start, and kept on disk until a keep replaces it (a process killed now
    // still has it).
    assert.ok(await pathExists(join(ledgerDir, HELD_EVIDENCE_FILE)), "kept past the start");

    await pledge(honest);
    assert.equal((await ledger.record(receiptId(honestWork.receipt)))?.status, "pending");
    const announced = await announceAssigned(validator, cheatWork.receipt, cheatJob, requester);
    assert.equal(announced.recorded, true);
    const cheatId = receiptId(cheatWork.receipt);
    // The held proof's check runs off the mailbox; its settlement comes back through it.
    await eventually(
      async () => (await ledger.stats()).fraudProofsChecked === 1,
      "the held proof to be checked",
    );
    assert.equal((await ledger.record(cheatId))?.status, "fraud");
    assert.ok((await ledger.account(cheat.publicKey)).stake < HELD_STAKE);

    await ledger.closeWindow();
    assert.ok((await ledger.account(honest.publicKey)).balance > 0, "the honest work is paid");
    assert.equal((await ledger.account(cheat.publicKey)).balance, 0, "the cheat is not");
    // Nothing waits any more: the tick removed the file.
    assert.equal(await pathExists(join(ledgerDir, HELD_EVIDENCE_FILE)), false, "removed");
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("what a validator holds is kept at each finalize tick, not only at its stop: a ledger directory as a kill -9 leaves it still takes up the held proof, and the cheat is slashed", async () => {
  const dir = await Deno.makeTempDir();
  const clock = { t: START };
  const [me, cheat, accuser, requester] = Array.from({ length: 4 }, Identity.generate);
  const peer = "ab".repeat(32);
  const system = new ActorSystem({ name: "held-evidence-kill" });
  try {
    const ledgerDir = join(dir, "ledger");
    const spawnIn = (name: string, ledgerDir: string) =>
      spawnValidator(system, {
        name,
        identity: me,
        ledgerDir,
        clock,
        challengeProbability: 0,
        models: HONEST_MODELS,
      });
    const validator = await spawnIn("validator", ledgerDir);
    for (const key of [cheat, accuser]) {
      await validator.ask({
        type: "pledge",
        pledge: signStakePledge(key, HELD_STAKE, 1),
        origin: peer,
      });
    }
    const { cheatJob, cheatWork } = await caughtBeforeItsReceipt(validator, "held-kill", {
      requester,
      cheat,
      accuser,
      peer,
    });
    assert.equal(await pathExists(join(ledgerDir, HELD_EVIDENCE_FILE)), false, "not yet kept");
    await validator.ask({ type: "finalize" });
    assert.ok(await pathExists(join(ledgerDir, HELD_EVIDENCE_FILE)), "kept at the tick");
    // The directory as a process killed outright now leaves it: copied while the validator runs
    // (its ledger's entries are fsync'd as they are appended), never stopped.
    const killed = join(dir, "killed");
    await Deno.mkdir(killed);
    for await (const entry of Deno.readDir(ledgerDir)) {
      if (entry.isFile) await Deno.copyFile(join(ledgerDir, entry.name), join(killed, entry.name));
    }
    const restarted = await spawnIn("validator-after-kill", killed);
    const ledger = ledgerReads(() => restarted, clock);
    const announced = await announceAssigned(restarted, cheatWork.receipt, cheatJob, requester);
    assert.equal(announced.recorded, true);
    await eventually(
      async () => (await ledger.stats()).fraudProofsChecked === 1,
      "the kept proof to be checked",
    );
    assert.equal((await ledger.record(receiptId(cheatWork.receipt)))?.status, "fraud");
    await ledger.closeWindow();
    assert.equal((await ledger.account(cheat.publicKey)).balance, 0, "the cheat is not paid");
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a held-evidence file that is not CBOR is removed at the start, which goes on", async () => {
  const dir = await Deno.makeTempDir();
  const clock = { t: START };
  const system = new ActorSystem({ name: "held-evidence-garbage" });
  try {
    await Deno.writeFile(join(dir, HELD_EVIDENCE_FILE), new Uint8Array([0xff, 0x00, 0x13]));
    const validator = await spawnValidator(system, {
      identity: Identity.generate(),
      ledgerDir: dir,
      clock,
      challengeProbability: 0,
      models: HONEST_MODELS,
    });
    assert.equal((await ledgerReads(() => validator, clock).stats()).received, 0);
    assert.equal(await pathExists(join(dir, HELD_EVIDENCE_FILE)), false);
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

// -------------------------------------------------------------------------------------------------
// A peer's fraud proof taken and not settled (queued, being checked) is kept in the held evidence
// (`actors/_held_evidence.ts`), which is documented as "bounded by what the memory holds": 64
// proofs held for their receipt and 64 for their accuser's pledge. The proofs taken are bounded
// only by their accusers' stake (one per `falseAccusationPenalty`: a default self-stake of
// 1,000,000 backs 10,000, the memory remembers 4,096), and one accuser may re-sign one accusation
// of one receipt any number of times (a repeat is refused only once one settled). Each is up to a
// frame (1 MiB), and the whole file is re-encoded and written durably at every finalize tick where
// it changed — up to 4 GiB a tick for one staked key. The training validator keeps at most 32 of
// its taken proofs on disk (`MAX_KEPT_TAKEN_PROOFS`) for this reason.
//
// Mended: an accuser has one accusation of a receipt taken at a time (a re-signed copy is refused
// as a repeat while the first is in flight), at most `MAX_KEPT_TAKEN_FRAUD_PROOFS` proofs in
// flight are kept (each accuser's oldest first), and the unbacked check of a proof left out stays
// counted as spent.

/** The proofs held for their receipt (`_validator_memory.ts`'s `MAX_HELD_FRAUD_PROOFS`). */
const MAX_HELD_FRAUD_PROOFS = 64;
const PEER = "ab".repeat(32);

/**
 * A validator whose model loads only once `gate` resolves (never, unless the test lets it: the
 * proofs it is sent stay in flight), with `worker`'s receipt (its work run on `model`) recorded.
 */
async function gatedRun(name: string, model: TextModel = f.honest) {
  const [worker, requester] = Array.from({ length: 2 }, Identity.generate);
  const job = textJob(requester, crypto.randomUUID());
  const work = await proveOn(job, worker, model);
  const dir = await Deno.makeTempDir();
  const clock = { t: START };
  const system = new ActorSystem({ name });
  const gate = Promise.withResolvers<void>();
  gate.promise.catch(() => {});
  const close = async () => {
    gate.reject(new Error("test over"));
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  };
  try {
    // `has` answers at the intake without loading; every check waits on `get`.
    const models: ValidatorModelSource = {
      has: (cid) => cid === f.honest.info.cid,
      get: (cid) => gate.promise.then(() => HONEST_MODELS.get(cid)),
    };
    const validator = await spawnValidator(system, {
      identity: Identity.generate(),
      ledgerDir: dir,
      clock,
      models,
      challengeProbability: 0,
    });
    await validator.ask({ type: "deposit", key: worker.publicKey, amount: STAKE });
    assert.equal((await announceAssigned(validator, work.receipt, job, requester)).recorded, true);
    return {
      validator,
      clock,
      gate,
      worker,
      job,
      work,
      close,
      /** `proof` from a peer. */
      send: (proof: FraudProof) =>
        validator.ask<FraudProofHandled>({ type: "fraud_proof", proof, origin: PEER }),
      /** The held evidence as the last keep left it. */
      held: async () =>
        decodeCbor(await Deno.readFile(join(dir, HELD_EVIDENCE_FILE))) as HeldEvidence,
    };
  } catch (error) {
    await close();
    throw error;
  }
}

/** `proof` re-signed by `by` with another `issuedAt`: the same accusation, another hash. */
function resigned(proof: FraudProof, by: Identity, issuedAt: number): FraudProof {
  const { sig: _sig, validator: _by, ...unsigned } = proof;
  return signFraudProof({ ...unsigned, issuedAt }, by);
}

Deno.test("the held evidence keeps no more proofs than its documented bounds, however many one staked accuser has in flight", async () => {
  const run = await gatedRun("s42-held-evidence-bound");
  try {
    const { validator, work: { receipt } } = run;
    const accuser = Identity.generate();
    const flood = 2 * (MAX_HELD_FRAUD_PROOFS + MAX_PLEDGE_HELD_PROOFS);
    await validator.ask({
      type: "deposit",
      key: accuser.publicKey,
      amount: flood * DEFAULT_ECONOMICS.falseAccusationPenalty,
    });
    const accusation = falseProof(receipt, accuser);
    for (let i = 0; i < flood; i++) {
      // The same accusation of the same receipt, re-signed: a new hash each time.
      const handled = await run.send(resigned(accusation, accuser, 1 + i));
      handled.result?.catch(() => {});
    }
    await validator.ask({ type: "finalize" }); // the tick that keeps the held evidence
    const kept = await run.held();
    assert.ok(
      kept.proofs.length <= MAX_HELD_FRAUD_PROOFS + MAX_PLEDGE_HELD_PROOFS,
      `the held evidence kept ${kept.proofs.length} proofs of one accuser about one receipt`,
    );
  } finally {
    await run.close();
  }
});

Deno.test("a re-signed copy of an accusation still being checked waits behind it, not checked beside it; the first settles, the copy after it, and the cheat is slashed once", async () => {
  const run = await gatedRun("s42-accusation-in-flight", f.otherSeed);
  try {
    const { validator, clock, work, job, worker: cheat } = run;
    const accuser = Identity.generate();
    await validator.ask({ type: "deposit", key: accuser.publicKey, amount: STAKE });
    const { fraudProof } = await validateReceipt(
      { job, receipt: work.receipt, proof: work.proof },
      f.honest,
      accuser,
      { now: () => START },
    );
    assert.ok(fraudProof);
    const first = await run.send(fraudProof);
    assert.equal(first.queued, true);
    const copy = await run.send(resigned(fraudProof, accuser, fraudProof.issuedAt + 1));
    // Queued behind the first since stop 77 (refused `repeated_accusation` before: an accuser's
    // confirmed proof behind its refuted one was lost, `queued_accusation_test.ts`).
    assert.deepEqual(
      { queued: copy.queued, awaitingAccusation: copy.awaitingAccusation },
      { queued: false, awaitingAccusation: true },
      "the copy was taken beside the first",
    );
    const stats = () => validator.ask<ValidatorStats>({ type: "stats" });
    assert.equal((await stats()).fraudProofsSkipped, 0);
    assert.equal((await stats()).fraudProofsChecking, 1);
    run.gate.resolve();
    assert.equal((await first.result)?.confirmed, true);
    // Checked once the first settled, and settling nothing more (the receipt is `fraud`).
    await copy.result;
    const ledger = ledgerReads(() => validator, clock);
    await ledger.closeWindow();
    const slash = slashOf(work.receipt);
    assert.equal((await ledger.record(receiptId(work.receipt)))?.status, "fraud");
    assert.equal(
      (await ledger.account(cheat.publicKey)).stake,
      STAKE - slash,
      "slashed other than once",
    );
    assert.equal((await ledger.account(cheat.publicKey)).balance, 0, "the cheat was paid");
    assert.equal(
      (await ledger.account(accuser.publicKey)).balance,
      slash * DEFAULT_ECONOMICS.validatorRewardShare,
      "the accuser was rewarded other than once",
    );
    assert.equal((await stats()).slashes, 1);
  } finally {
    await run.close();
  }
});

Deno.test("past the bound, the held evidence leaves out the newest proof in flight, and its unbacked check stays spent for the restart", async () => {
  const run = await gatedRun("s42-unbacked-left-out");
  try {
    const { validator, work: { receipt } } = run;
    // As many accusers as proofs are kept, each backed for one accusation, each in flight.
    for (const key of Array.from({ length: MAX_KEPT_TAKEN_FRAUD_PROOFS }, Identity.generate)) {
      const penalty = DEFAULT_ECONOMICS.falseAccusationPenalty;
      await validator.ask({ type: "deposit", key: key.publicKey, amount: penalty });
      assert.equal((await run.send(falseProof(receipt, key))).queued, true);
    }
    // Then a key pledged below the penalty: its proof is checked unbacked, the newest in flight.
    const late = Identity.generate();
    const pledge = signStakePledge(late, DEFAULT_ECONOMICS.falseAccusationPenalty / 10, 1);
    assert.equal(await validator.ask({ type: "pledge", pledge, origin: PEER }), true);
    assert.equal((await run.send(falseProof(receipt, late))).queued, true);
    await validator.ask({ type: "finalize" });
    const kept = await run.held();
    assert.equal(kept.proofs.length, MAX_KEPT_TAKEN_FRAUD_PROOFS);
    const by = (p: HeldEvidence["proofs"][number]) => (p.proof as FraudProof).validator;
    assert.ok(!kept.proofs.some((p) => bytesEqual(by(p), late.publicKey)), "the newest was kept");
    // Left out, its check counts as spent: the restart does not grant the receipt it again.
    assert.deepEqual(
      kept.unbacked.map(({ receiptId, checks }) => ({ receiptId, checks })),
      [{ receiptId: receiptId(receipt), checks: 1 }],
    );
  } finally {
    await run.close();
  }
});

Deno.test("past the bound, each accuser's oldest proof in flight is kept before any accuser's second: a flooding key's newest are left out, not another accuser's one", async () => {
  const [worker, requester, flooder, finder] = Array.from({ length: 4 }, Identity.generate);
  const { receipt } = await proveOn(textJob(requester, crypto.randomUUID()), worker);
  const memory = new ValidatorMemory();
  const take = (proof: FraudProof) =>
    memory.takeFraudProof(fraudProofHash(proof), {
      proof,
      own: false,
      waiting: Promise.withResolvers<FraudCheckResult>(),
    });
  const flood = Array.from(
    { length: MAX_KEPT_TAKEN_FRAUD_PROOFS + 8 },
    (_, i) => resigned(falseProof(receipt, flooder), flooder, 1 + i),
  );
  for (const proof of flood) take(proof);
  const found = falseProof(receipt, finder);
  take(found);
  const { proofs, keptTaken } = memory.waiting();
  assert.deepEqual(
    proofs.map(({ proof }) => fraudProofHash(proof as FraudProof)),
    [...flood.slice(0, MAX_KEPT_TAKEN_FRAUD_PROOFS - 1), found].map(fraudProofHash),
    "not the flooder's oldest then the finder's, oldest first",
  );
  assert.deepEqual(
    keptTaken,
    new Set(proofs.map(({ proof }) => fraudProofHash(proof as FraudProof))),
  );
});

// -------------------------------------------------------------------------------------------------
// When a peer's fraud proof was taken, across a restart: a proof taken inside its receipt's window
// and not settled at the stop is kept in the held evidence (`actors/_held_evidence.ts`) and taken
// again at the start. It was taken again with the restart's time: the window closed meanwhile, the
// confirmed proof was refused and the cheat paid at the next finalize tick. Each test asserts the
// balances, not only the verdicts.

Deno.test("a peer's fraud proof taken inside the window, kept at a kill and taken again after the window closed, still slashes the cheat, which no finalize pays meanwhile", async () => {
  const dir = await Deno.makeTempDir();
  const clock = { t: START };
  const [me, worker, accuser, requester] = Array.from({ length: 4 }, Identity.generate);
  const job = textJob(requester, "taken-across-a-restart");
  const proved = await proveOn(job, worker, f.otherSeed); // a cheat: another model
  const id = receiptId(proved.receipt);
  const { fraudProof } = await validateReceipt(
    { job, receipt: proved.receipt, proof: proved.proof },
    f.honest,
    accuser,
    { now: () => START },
  );
  assert.ok(fraudProof, "the cheat is caught by the accuser");
  // The first life's check never ends (a model that does not load): killed while checking.
  const stuck = slowModels();
  const system = new ActorSystem({ name: "review-s44-taken-at" });
  try {
    const ledgerDir = join(dir, "ledger");
    const validator = await spawnValidator(system, {
      name: "first-life",
      identity: me,
      ledgerDir,
      clock,
      challengeProbability: 0,
      models: stuck.models,
    });
    await validator.ask({ type: "deposit", key: worker.publicKey, amount: FIXTURE_STAKE });
    await validator.ask({ type: "deposit", key: accuser.publicKey, amount: FIXTURE_STAKE });
    assert.ok((await announceAssigned(validator, proved.receipt, job, requester)).recorded);
    const rec = (await ledgerReads(() => validator, clock).record(id))!;
    clock.t = rec.pendingUntil - 1;
    stuck.hold();
    const taken = await validator.ask<FraudProofHandled>({
      type: "fraud_proof",
      proof: fraudProof,
      origin: "ab".repeat(32),
    });
    assert.equal(taken.queued, true, "taken inside the window");
    // The tick inside the window pays nothing and keeps the proof being checked.
    assert.deepEqual(await validator.ask({ type: "finalize" }), []);
    assert.ok(await pathExists(join(ledgerDir, HELD_EVIDENCE_FILE)), "kept at the tick");
    // Killed outright now: the directory as it leaves it (copied, never stopped).
    const killed = join(dir, "killed");
    await Deno.mkdir(killed);
    for await (const entry of Deno.readDir(ledgerDir)) {
      if (entry.isFile) await Deno.copyFile(join(ledgerDir, entry.name), join(killed, entry.name));
    }
    // Started again after the window closed; its first finalize tick comes at once.
    clock.t = rec.pendingUntil + 1;
    const restarted = await spawnValidator(system, {
      name: "second-life",
      identity: me,
      ledgerDir: killed,
      clock,
      challengeProbability: 0,
      models: HONEST_MODELS,
    });
    const ledger = ledgerReads(() => restarted, clock);
    assert.deepEqual(await restarted.ask({ type: "finalize" }), [], "not paid while checked");
    await eventually(
      async () => (await ledger.stats()).fraudProofsChecked === 1,
      "the kept proof to be checked",
    );
    clock.t += DEFAULT_ECONOMICS.challengeWindowMs;
    await restarted.ask({ type: "finalize" });
    const account = await ledger.account(worker.publicKey);
    assert.equal(account.balance, 0, "the caught cheat is not paid");
    assert.equal(account.stake, FIXTURE_STAKE - rec.locked, "and loses its locked stake");
    assert.equal(
      (await ledger.account(accuser.publicKey)).balance,
      rec.locked * DEFAULT_ECONOMICS.validatorRewardShare,
      "its finder is rewarded as in every ledger that checked it sooner",
    );
    assert.equal((await ledger.record(id))?.status, "fraud");
  } finally {
    stuck.release();
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a held-evidence file written before proofs kept their taken time is read as before: its proofs are taken now", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const { file } = await HeldEvidenceFile.open(dir);
    const proof = { not: "checked here" };
    await file.keep({ receipts: [], proofs: [{ proof, origin: "ab" }], unbacked: [] });
    const { held } = await HeldEvidenceFile.open(dir);
    // No taken time: the actor takes it at its start, as before it was kept.
    assert.deepEqual(held.proofs, [{ proof, origin: "ab" }]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
