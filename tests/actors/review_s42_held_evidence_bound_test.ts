/**
 * Review s42: since e1bd137 a peer's fraud proof taken and not settled (queued, being checked) is
 * kept in the held evidence (`actors/_held_evidence.ts`), which is documented as "bounded by what
 * the memory holds": 64 proofs held for their receipt and 64 for their accuser's pledge. The
 * proofs taken are bounded only by their accusers' stake (one per `falseAccusationPenalty`: a
 * default self-stake of 1,000,000 backs 10,000, the memory remembers 4,096), and one accuser may
 * re-sign one accusation of one receipt any number of times (a repeat is refused only once one
 * settled). Each is up to a frame (1 MiB), and the whole file is re-encoded and written durably at
 * every finalize tick where it changed — up to 4 GiB a tick for one staked key. The training
 * validator keeps at most 32 of its taken proofs on disk (`MAX_KEPT_TAKEN_PROOFS`) for this reason.
 *
 * Mended: an accuser has one accusation of a receipt taken at a time (a re-signed copy is refused
 * as a repeat while the first is in flight), at most `MAX_KEPT_TAKEN_FRAUD_PROOFS` proofs in
 * flight are kept (each accuser's oldest first), and the unbacked check of a proof left out stays
 * counted as spent.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ActorSystem } from "../../actors/actor_system.ts";
import { HELD_EVIDENCE_FILE, type HeldEvidence } from "../../actors/_held_evidence.ts";
import { MAX_PLEDGE_HELD_PROOFS } from "../../actors/_pledge_held_proofs.ts";
import { MAX_KEPT_TAKEN_FRAUD_PROOFS, ValidatorMemory } from "../../actors/_validator_memory.ts";
import type {
  FraudProofHandled,
  ValidatorModelSource,
  ValidatorStats,
} from "../../actors/validator_messages.ts";
import type { TextModel } from "../../inference/text_model.ts";
import { decodeCbor } from "../../protocols/cbor.ts";
import { type FraudProof, fraudProofHash, signFraudProof } from "../../protocols/fraud_proof.ts";
import { bytesEqual } from "../../protocols/bytes_equal.ts";
import { Identity } from "../../protocols/identity.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { signStakePledge } from "../../protocols/stake_pledge.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import type { FraudCheckResult } from "../../proof/fraud_check.ts";
import { validateReceipt } from "../../proof/validation.ts";
import { slashOf, STAKE } from "./_ledger_write_fault.ts";
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

Deno.test("review s42: the held evidence keeps no more proofs than its documented bounds, however many one staked accuser has in flight", async () => {
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

Deno.test("review s42: a re-signed copy of an accusation still being checked is refused as a repeat; the first settles, and the cheat is slashed once", async () => {
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
    assert.deepEqual(
      { queued: copy.queued, skipped: copy.skipped },
      { queued: false, skipped: "repeated_accusation" },
      "the copy was taken beside the first",
    );
    const stats = () => validator.ask<ValidatorStats>({ type: "stats" });
    assert.equal((await stats()).fraudProofsSkipped, 1);
    assert.equal((await stats()).fraudProofsChecking, 1);
    run.gate.resolve();
    assert.equal((await first.result)?.confirmed, true);
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

Deno.test("review s42: past the bound, the held evidence leaves out the newest proof in flight, and its unbacked check stays spent for the restart", async () => {
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

Deno.test("review s42: past the bound, each accuser's oldest proof in flight is kept before any accuser's second: a flooding key's newest are left out, not another accuser's one", async () => {
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
