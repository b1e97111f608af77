/**
 * The ledger (`proof/ledger.ts`): receipts, windows, fraud settlements, stake, assignments and
 * equivocation, asserted on the balances they leave; `receiptRefusal`; and calls racing each other.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  assigned,
  job,
  receipt as fixtureReceipt,
  requester,
  resigned,
  withLedgerDir,
} from "./_ledger_fixtures.ts";
import { MIN_COMMITMENT_CHUNK_SIZE } from "../../proof/commitment.ts";
import { Identity } from "../../protocols/identity.ts";
import { type Receipt, receiptId, signReceipt } from "../../protocols/receipt.ts";
import { signVerdict } from "../../protocols/verdict.ts";
import { toHex } from "../../protocols/hash.ts";
import {
  ASSIGNMENT_VERSION,
  assignmentSigningBytes,
  type JobAssignment,
  signAssignment,
} from "../../protocols/assignment.ts";
import { jobBodyHash, jobId } from "../../protocols/job.ts";
import {
  InsufficientStakeError,
  Ledger,
  LedgerOwnerMismatchError,
  LedgerRejectedError,
  LedgerTamperedError,
} from "../../proof/ledger.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";

const owner = Identity.generate();
const worker = Identity.generate();
const validator = Identity.generate();
/** A signed receipt of the worker for job `n` with `tokens` tokens. */
function receipt(n: number, tokens = 10): Receipt {
  return fixtureReceipt(n, tokens, worker);
}

async function withLedger(fn: (dir: string, clock: { t: number }) => Promise<void>) {
  const dir = await Deno.makeTempDir();
  try {
    await fn(dir, { t: 1_000 });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("ledger: pending receipt becomes final after the window and is credited tokens × price", () =>
  withLedger(async (dir, clock) => {
    const ledger = await Ledger.open(dir, owner, {
      now: () => clock.t,
      tokenPrice: () => 3,
      economics: { challengeWindowMs: 100 },
    });
    await ledger.deposit(worker.publicKey, 1000);
    const r = receipt(1, 10);
    const rec = await ledger.recordReceipt(r, assigned(r));
    assert.equal(rec.status, "pending");
    assert.equal(rec.locked, 10 * 3 * 20);
    assert.deepEqual(await ledger.finalizeDue(), [], "not before the window closes");
    clock.t += 100;
    assert.deepEqual(await ledger.finalizeDue(), [receiptId(r)]);
    assert.deepEqual(ledger.account(worker.publicKey), { balance: 30, stake: 1000, locked: 0 });
    await assert.rejects(() => ledger.recordReceipt(r), LedgerRejectedError);
    await ledger.close();
  }));

Deno.test("ledger: a refuted accusation costs the accuser its penalty at most what it has staked, never below zero, also after a restart", () =>
  withLedger(async (dir, clock) => {
    const options = { now: () => clock.t };
    let ledger = await Ledger.open(dir, owner, options);
    await ledger.deposit(worker.publicKey, 1000);
    const little = Identity.generate();
    const none = Identity.generate();
    await ledger.deposit(little.publicKey, 30); // under the penalty (100)
    const [a, b] = [receipt(3, 10), receipt(4, 10)];
    await ledger.recordReceipt(a);
    await ledger.recordReceipt(b);
    for (const [r, accuser, hash] of [[a, little, "61"], [b, none, "62"]] as const) {
      const entry = await ledger.settleFraud({
        receiptId: receiptId(r),
        fraudProofHash: hash.repeat(32),
        validator: accuser.publicKey,
        confirmed: false,
        reason: "not_reproduced",
      });
      assert.equal(entry.body.penalty, accuser === little ? 30 : 0);
    }
    const expect = () => {
      assert.deepEqual(ledger.account(little.publicKey), { balance: 0, stake: 0, locked: 0 });
      assert.deepEqual(ledger.account(none.publicKey), { balance: 0, stake: 0, locked: 0 });
    };
    expect();
    await ledger.close();
    ledger = await Ledger.open(dir, owner, options);
    expect();
    await ledger.close();
  }));

Deno.test("ledger: a confirmed fraud slashes and rewards; a refuted one costs the validator", () =>
  withLedger(async (dir, clock) => {
    const ledger = await Ledger.open(dir, owner, { now: () => clock.t });
    await ledger.deposit(worker.publicKey, 1000);
    await ledger.deposit(validator.publicKey, 500);
    const a = receipt(1, 10), b = receipt(2, 10);
    await ledger.recordReceipt(a);
    await ledger.recordReceipt(b);
    await ledger.settleFraud({
      receiptId: receiptId(b),
      fraudProofHash: "44".repeat(32),
      validator: validator.publicKey,
      confirmed: false,
      reason: "not_reproduced",
    });
    assert.equal(ledger.account(validator.publicKey).stake, 400);
    await ledger.settleFraud({
      receiptId: receiptId(a),
      fraudProofHash: "55".repeat(32),
      validator: validator.publicKey,
      confirmed: true,
      reason: "confirmed",
    });
    assert.equal(ledger.receipt(receiptId(a))!.status, "fraud");
    assert.deepEqual(ledger.account(worker.publicKey), { balance: 0, stake: 800, locked: 200 });
    assert.equal(ledger.account(validator.publicKey).balance, 100);
    await assert.rejects(
      () =>
        ledger.settleFraud({
          receiptId: receiptId(a),
          fraudProofHash: "55".repeat(32),
          validator: validator.publicKey,
          confirmed: true,
          reason: "confirmed",
        }),
      LedgerRejectedError,
      "no double slash",
    );
    // A refuted accuser's re-rolled claim (a fresh proof, a new hash) settles too and costs the
    // penalty again (review s76: a refuted accusation no longer blocks its accuser's next proof,
    // or its confirmed one was refused where the false one came first); a proof settled once is
    // never settled again, whoever brings it.
    await ledger.settleFraud({
      receiptId: receiptId(b),
      fraudProofHash: "77".repeat(32),
      validator: validator.publicKey,
      confirmed: false,
      reason: "not_reproduced",
    });
    await assert.rejects(
      () =>
        ledger.settleFraud({
          receiptId: receiptId(b),
          fraudProofHash: "44".repeat(32),
          validator: worker.publicKey,
          confirmed: false,
          reason: "not_reproduced",
        }),
      { code: "already_settled" },
    );
    assert.equal(ledger.hasAccused(validator.publicKey, receiptId(b)), true);
    assert.equal(ledger.account(validator.publicKey).stake, 300, "penalized for each");
    clock.t += 10 * 60 * 1000 + 1;
    await assert.rejects(
      () =>
        ledger.settleFraud({
          receiptId: receiptId(b),
          fraudProofHash: "66".repeat(32),
          validator: validator.publicKey,
          confirmed: true,
          reason: "confirmed",
        }),
      LedgerRejectedError,
      "too late after the window",
    );
    await ledger.close();
  }));

Deno.test("ledger: a receipt its worker cannot back with free stake is refused", () =>
  withLedger(async (dir) => {
    const ledger = await Ledger.open(dir, owner);
    await ledger.deposit(worker.publicKey, 250);
    await ledger.recordReceipt(receipt(1, 10)); // locks 200
    await assert.rejects(() => ledger.recordReceipt(receipt(2, 10)), InsufficientStakeError);
    await ledger.close();
  }));

Deno.test("ledger: a text receipt committed in chunks under MIN_COMMITMENT_CHUNK_SIZE positions is not recorded", () =>
  withLedger(async (dir) => {
    // Its fraud proofs carry a Merkle path per chunk: at one position per chunk, more than the
    // frame that takes them to other ledgers, which would have paid the worker regardless.
    const ledger = await Ledger.open(dir, owner);
    await ledger.deposit(worker.publicKey, 10_000);
    for (const chunkSize of [1, MIN_COMMITMENT_CHUNK_SIZE - 1]) {
      const r = resigned(receipt(chunkSize, 10), {
        commitment: { ...receipt(chunkSize, 10).commitment, chunkSize },
      }, worker);
      await assert.rejects(
        () => ledger.recordReceipt(r, assigned(r)),
        (e: unknown) => e instanceof LedgerRejectedError && e.code === "receipt_rejected",
      );
      assert.equal(ledger.receipt(receiptId(r)), undefined);
    }
    assert.equal(ledger.account(worker.publicKey).locked, 0, "nothing locked");
    const ok = resigned(receipt(9, 10), {
      commitment: { ...receipt(9, 10).commitment, chunkSize: MIN_COMMITMENT_CHUNK_SIZE },
    }, worker);
    assert.equal((await ledger.recordReceipt(ok)).status, "pending");
    await ledger.close();
  }));

Deno.test("ledger: state survives a restart, replayed from the signed log", () =>
  withLedger(async (dir, clock) => {
    let ledger = await Ledger.open(dir, owner, { now: () => clock.t });
    await ledger.deposit(worker.publicKey, 1000);
    await ledger.recordReceipt(receipt(1, 7));
    const verdict = signVerdict({
      v: 1,
      subject: "storage",
      subjectId: "round-1",
      target: worker.publicKey,
      outcome: "invalid",
      reason: "missing_chunk",
      issuedAt: 5,
    }, validator);
    await ledger.recordVerdict(verdict);
    const head = ledger.head;
    await ledger.close();
    ledger = await Ledger.open(dir, owner, { now: () => clock.t });
    assert.equal(ledger.head, head);
    assert.equal(ledger.length, 4);
    assert.equal(ledger.account(worker.publicKey).locked, 140);
    assert.equal(ledger.verdicts().length, 1);
    assert.equal(ledger.verdicts()[0].reason, "missing_chunk");
    await ledger.close();
    await assert.rejects(() => Ledger.open(dir, Identity.generate()), LedgerOwnerMismatchError);
  }));

// These two check the chain itself, so their ledgers write no checkpoint: every open verifies the
// whole log (with checkpoints, an open verifies the entries after the last one: see
// ledger_checkpoint_test.ts).
const noCheckpoints = { checkpointEvery: 0 };

Deno.test("ledger: an edited entry is refused on open with an error naming it and how to recover", () =>
  withLedger(async (dir) => {
    const ledger = await Ledger.open(dir, owner, noCheckpoints);
    await ledger.deposit(worker.publicKey, 1000);
    await ledger.deposit(worker.publicKey, 2000);
    await ledger.close();
    const bytes = await Deno.readFile(`${dir}/ledger.log`);
    // Change the last deposit's amount (2000 = 0x07d0 in CBOR) in place.
    let at = -1;
    for (let i = bytes.length - 1; i > 0; i--) {
      if (bytes[i - 1] === 0x07 && bytes[i] === 0xd0) {
        at = i;
        break;
      }
    }
    assert.ok(at > 0);
    bytes[at] = 0xd1;
    await Deno.writeFile(`${dir}/ledger.log`, bytes);
    const err = await Ledger.open(dir, owner).then(() => null, (e) => e);
    assert.ok(err instanceof LedgerTamperedError);
    assert.equal(err.seq, 2);
    assert.equal(err.code, "ledger_tampered");
    assert.match(err.message, /ledger verify --data .*ledger repair --data .*keeps the 2 entries/);
  }));

Deno.test("ledger: a dropped entry breaks the chain; a torn tail from a crash is cut off", () =>
  withLedger(async (dir) => {
    const ledger = await Ledger.open(dir, owner, noCheckpoints);
    for (let i = 1; i <= 3; i++) await ledger.deposit(worker.publicKey, i);
    await ledger.close();
    const bytes = await Deno.readFile(`${dir}/ledger.log`);
    const frames: Uint8Array[] = [];
    for (let o = 0; o < bytes.length;) {
      const len = new DataView(bytes.buffer, o).getUint32(0);
      frames.push(bytes.subarray(o, o + 4 + len));
      o += 4 + len;
    }
    assert.equal(frames.length, 4);
    // Torn tail: half of an extra frame.
    const torn = new Uint8Array([...bytes, ...frames[3].subarray(0, 9)]);
    await Deno.writeFile(`${dir}/ledger.log`, torn);
    const reopened = await Ledger.open(dir, owner, noCheckpoints);
    assert.equal(reopened.length, 4);
    assert.equal(reopened.account(worker.publicKey).stake, 6);
    await reopened.close();
    assert.equal((await Deno.stat(`${dir}/ledger.log`)).size, bytes.length);
    // Dropped entry 2.
    const dropped = new Uint8Array([...frames[0], ...frames[1], ...frames[3]]);
    await Deno.writeFile(`${dir}/ledger.log`, dropped);
    const err = await Ledger.open(dir, owner).then(() => null, (e) => e);
    assert.ok(err instanceof LedgerTamperedError);
    assert.equal(err.seq, 2);
  }));

Deno.test("ledger transitions are atomic: two concurrent settlements of one receipt slash once", () =>
  withLedger(async (dir, clock) => {
    const ledger = await Ledger.open(dir, owner, { now: () => clock.t });
    const second = Identity.generate();
    await ledger.deposit(worker.publicKey, 1000);
    await ledger.deposit(validator.publicKey, 500);
    await ledger.deposit(second.publicKey, 500);
    const r = receipt(7, 10);
    const rec = await ledger.recordReceipt(r);
    const settle = (by: Identity, hash: string) =>
      ledger.settleFraud({
        receiptId: receiptId(r),
        fraudProofHash: hash,
        validator: by.publicKey,
        confirmed: true,
        reason: "confirmed",
      });
    // Both are called before either is written: the checks must run in the writer's turn.
    const outcomes = await Promise.allSettled([
      settle(validator, "aa".repeat(32)),
      settle(second, "bb".repeat(32)),
    ]);
    assert.deepEqual(outcomes.map((o) => o.status).sort(), ["fulfilled", "rejected"]);
    assert.equal(ledger.entries().filter((e) => e.kind === "fraud").length, 1);
    assert.equal(ledger.account(worker.publicKey).stake, 1000 - rec.locked, "slashed once");
    await ledger.close();
  }));

Deno.test("ledger transitions are atomic: a settlement at the window's edge and finalizeDue end in one outcome", () =>
  withLedger(async (dir, clock) => {
    const ledger = await Ledger.open(dir, owner, {
      now: () => clock.t,
      economics: { challengeWindowMs: 100 },
    });
    await ledger.deposit(worker.publicKey, 1000);
    await ledger.deposit(validator.publicKey, 500);
    const r = receipt(8, 10);
    await ledger.recordReceipt(r);
    clock.t += 100; // exactly the window's end: still settleable, already due
    const [finalized, settled] = await Promise.allSettled([
      ledger.finalizeDue(),
      ledger.settleFraud({
        receiptId: receiptId(r),
        fraudProofHash: "cc".repeat(32),
        validator: validator.publicKey,
        confirmed: true,
        reason: "confirmed",
      }),
    ]);
    const kinds = ledger.entries().map((e) => e.kind).filter((k) => k === "final" || k === "fraud");
    assert.equal(kinds.length, 1, `both happened: ${kinds.join(", ")}`);
    const status = ledger.receipt(receiptId(r))!.status;
    if (kinds[0] === "final") {
      assert.equal(status, "final");
      assert.equal(settled.status, "rejected");
    } else {
      assert.equal(status, "fraud");
      assert.deepEqual(finalized.status === "fulfilled" && finalized.value, []);
    }
    await ledger.close();
  }));

Deno.test("one payment per job: re-signed with other timings, signed again under another key, or replayed after a restart, a second receipt for a job is refused", () =>
  withLedger(async (dir, clock) => {
    const copier = Identity.generate();
    const first = receipt(9, 10);
    const resign = (timings: Receipt["timings"], by: Identity): Receipt => {
      const { sig: _sig, worker: _worker, ...unsigned } = first;
      return signReceipt({ ...unsigned, timings }, by);
    };
    let ledger = await Ledger.open(dir, owner, { now: () => clock.t });
    await ledger.deposit(worker.publicKey, 10_000);
    await ledger.deposit(copier.publicKey, 10_000);
    await ledger.recordReceipt(first);
    const retimed = resign({ startedAt: 5, firstTokenMs: 1, totalMs: 3 }, worker);
    // Timings are not part of the id: the same work re-signed is the same receipt.
    assert.equal(receiptId(retimed), receiptId(first));
    await assert.rejects(() => ledger.recordReceipt(retimed), { code: "duplicate_receipt" });
    const copied = resign(first.timings, copier);
    await assert.rejects(() => ledger.recordReceipt(copied), { code: "job_already_recorded" });
    assert.equal(ledger.account(copier.publicKey).locked, 0, "nothing locked, nothing to pay");
    await ledger.close();
    ledger = await Ledger.open(dir, owner, { now: () => clock.t });
    await assert.rejects(() => ledger.recordReceipt(retimed), { code: "duplicate_receipt" });
    await assert.rejects(() => ledger.recordReceipt(copied), { code: "job_already_recorded" });
    await ledger.close();
  }));

Deno.test("a copier of a worker's receipt is not paid for the job: its own key's assignment does not verify, and the worker's assigned receipt takes the job from the copy whichever arrives first", () =>
  withLedger(async (dir, clock) => {
    const copier = Identity.generate();
    const sybil = Identity.generate(); // a second key of the copier's, posing as requester
    const options = { now: () => clock.t, economics: { challengeWindowMs: 100 } };
    const ledger = await Ledger.open(dir, owner, options);
    for (const id of [worker, copier]) await ledger.deposit(id.publicKey, 10_000);
    // The copier re-signs the worker's announced receipt and assigns the job to itself under
    // another key, with the job's own body hash: the job names its real requester, so the
    // bound id does not come out and the assignment is no assignment.
    const copierAssignment = (n: number): JobAssignment => {
      const unsigned = {
        v: ASSIGNMENT_VERSION,
        jobId: jobId(job(n)),
        jobBody: jobBodyHash(job(n)),
        worker: copier.publicKey,
        issuedAt: 0,
        requester: sybil.publicKey,
      };
      return { ...unsigned, sig: sybil.sign(assignmentSigningBytes(unsigned)) };
    };
    // Job 60: the copy arrives first, then the worker's own announcement, then the requester's.
    const honest = receipt(60, 10);
    const copy = resigned(honest, {}, copier);
    const copyRecord = await ledger.recordReceipt(copy, { assignment: copierAssignment(60) });
    assert.equal(copyRecord.credit, 0, "the copier's self-made assignment credits nothing");
    await assert.rejects(() => ledger.recordReceipt(honest), { code: "job_already_recorded" });
    const taken = await ledger.recordReceipt(honest, assigned(honest));
    assert.equal(taken.credit, 10, "the assigned receipt takes the job");
    assert.equal(ledger.receiptOfJob(honest.jobId), receiptId(honest));
    // The copy cannot take it back, with or without its assignment.
    const copy2 = resigned(
      honest,
      { timings: { startedAt: 9, firstTokenMs: 1, totalMs: 2 } },
      copier,
    );
    await assert.rejects(() => ledger.recordReceipt(copy), { code: "duplicate_receipt" });
    await assert.rejects(() => ledger.recordReceipt(copy2, { assignment: copierAssignment(60) }), {
      code: "duplicate_receipt",
    });
    // Job 61: the worker's assigned receipt first; the copy is refused outright.
    const honest61 = receipt(61, 10);
    await ledger.recordReceipt(honest61, assigned(honest61));
    await assert.rejects(
      () =>
        ledger.recordReceipt(resigned(honest61, {}, copier), { assignment: copierAssignment(61) }),
      { code: "job_already_recorded" },
    );
    clock.t += 100;
    await ledger.finalizeDue();
    // The ledger outcome: the worker is paid both jobs, the copier nothing, its lock released.
    assert.deepEqual(ledger.account(worker.publicKey), { balance: 20, stake: 10_000, locked: 0 });
    assert.deepEqual(ledger.account(copier.publicKey), { balance: 0, stake: 10_000, locked: 0 });
    assert.equal(ledger.receipt(receiptId(copy))!.status, "final");
    await ledger.close();
  }));

Deno.test("a requester that assigns one job to two workers pays neither, whichever receipt arrives first and whenever the assignments come; a receipt already paid stays paid", () =>
  withLedger(async (dir, clock) => {
    // The requester (the key every fixture job names) takes the worker's output and assigns the
    // job to a key of its own as well: two valid assignments of one job.
    const own = Identity.generate();
    const options = { now: () => clock.t, economics: { challengeWindowMs: 100 } };
    let ledger = await Ledger.open(dir, owner, options);
    for (const id of [worker, own]) await ledger.deposit(id.publicKey, 10_000);
    // Job 70: the worker's assigned receipt first, then the requester's own key's.
    const honest70 = receipt(70, 10);
    const taken70 = resigned(honest70, {}, own);
    await ledger.recordReceipt(honest70, assigned(honest70));
    await assert.rejects(() => ledger.recordReceipt(taken70, assigned(taken70)), {
      code: "double_assignment",
    });
    assert.equal(ledger.receipt(receiptId(honest70))!.credit, 0);
    // Job 71: the other order.
    const honest71 = receipt(71, 10);
    const taken71 = resigned(honest71, {}, own);
    await ledger.recordReceipt(taken71, assigned(taken71));
    await assert.rejects(() => ledger.recordReceipt(honest71, assigned(honest71)), {
      code: "double_assignment",
    });
    // A third assignment adds nothing (one entry per job).
    const third = Identity.generate();
    await ledger.deposit(third.publicKey, 10_000);
    const taken71b = resigned(honest71, {}, third);
    await assert.rejects(() => ledger.recordReceipt(taken71b, assigned(taken71b)), {
      code: "job_already_recorded",
    });
    // Job 73: the worker's receipt without its assignment, then the requester's own key's
    // assigned copy (which takes the job from it), then the worker's assignment after all.
    const honest73 = receipt(73, 10);
    const taken73 = resigned(honest73, {}, own);
    await ledger.recordReceipt(honest73);
    await ledger.recordReceipt(taken73, assigned(taken73));
    await assert.rejects(() => ledger.recordReceipt(honest73, assigned(honest73)), {
      code: "double_assignment",
    });
    // Job 72: the second assignment comes after the worker's receipt was paid: it stays paid.
    const honest72 = receipt(72, 10);
    await ledger.recordReceipt(honest72, assigned(honest72));
    clock.t += 100;
    await ledger.finalizeDue();
    const taken72 = resigned(honest72, {}, own);
    await assert.rejects(() => ledger.recordReceipt(taken72, assigned(taken72)), {
      code: "job_already_recorded",
    });
    // The ledger outcome, also after a restart (the entries replay the same way).
    const expect = () => {
      assert.deepEqual(ledger.account(worker.publicKey), { balance: 10, stake: 10_000, locked: 0 });
      assert.deepEqual(ledger.account(own.publicKey), { balance: 0, stake: 10_000, locked: 0 });
      assert.equal(ledger.receipt(receiptId(honest70))!.credit, 0);
      assert.equal(ledger.receipt(receiptId(taken71))!.credit, 0);
      assert.equal(ledger.receipt(receiptId(honest73))!.credit, 0);
      assert.equal(ledger.receipt(receiptId(taken73))!.credit, 0);
    };
    expect();
    await ledger.close();
    ledger = await Ledger.open(dir, owner, options);
    expect();
    await ledger.close();
  }));

Deno.test("ledger: a challenged receipt is paid only after it is cleared; fault slashes, unresolved releases, and each survives a restart", () =>
  withLedger(async (dir, clock) => {
    const options = { now: () => clock.t, economics: { challengeWindowMs: 100 } };
    let ledger = await Ledger.open(dir, owner, options);
    await ledger.deposit(worker.publicKey, 1000);
    const [valid, withheld, undecided] = [receipt(20, 2), receipt(21, 3), receipt(22, 4)];
    for (const r of [valid, withheld, undecided]) {
      await ledger.recordReceipt(r, assigned(r));
      await ledger.openChallenge(receiptId(r));
    }
    assert.deepEqual(
      ledger.challenged().sort(),
      [valid, withheld, undecided].map(receiptId).sort(),
    );
    // A receipt challenged twice, or cleared without a challenge, is refused.
    await assert.rejects(() => ledger.openChallenge(receiptId(valid)), LedgerRejectedError);
    clock.t += 100;
    assert.deepEqual(await ledger.finalizeDue(), [], "nothing challenged is paid");
    // The challenge survives a restart: still challenged, still unpaid.
    await ledger.close();
    ledger = await Ledger.open(dir, owner, options);
    assert.equal(ledger.receipt(receiptId(valid))!.status, "challenged");
    await ledger.clearChallenge(receiptId(valid));
    await assert.rejects(() => ledger.clearChallenge(receiptId(valid)), LedgerRejectedError);
    await ledger.settleFault(receiptId(withheld), owner.publicKey, "proof_unavailable");
    await ledger.leaveUnresolved(receiptId(undecided), "model_unavailable");
    assert.deepEqual(await ledger.finalizeDue(), [receiptId(valid)]);
    const check = (l: Ledger) => {
      assert.equal(l.receipt(receiptId(valid))!.status, "final");
      assert.equal(l.receipt(receiptId(withheld))!.status, "fraud");
      assert.equal(l.receipt(receiptId(undecided))!.status, "unpaid");
      // Paid for the valid one only; the withheld one's slash (3 tokens × 20) is gone.
      assert.deepEqual(l.account(worker.publicKey), { balance: 2, stake: 1000 - 60, locked: 0 });
      assert.equal(l.account(owner.publicKey).balance, 0, "a fault rewards nobody");
    };
    check(ledger);
    await ledger.close();
    ledger = await Ledger.open(dir, owner, options);
    check(ledger);
    await ledger.close();
  }));

Deno.test("ledger: after its window only the owner's own open challenge settles a receipt: not a pending one, nor another validator's proof", () =>
  withLedger(async (dir, clock) => {
    const ledger = await Ledger.open(dir, owner, {
      now: () => clock.t,
      economics: { challengeWindowMs: 100 },
    });
    await ledger.deposit(worker.publicKey, 1000);
    await ledger.deposit(validator.publicKey, 500);
    const [held, open] = [receipt(30, 5), receipt(31, 5)];
    await ledger.recordReceipt(held);
    await ledger.recordReceipt(open);
    await ledger.openChallenge(receiptId(held));
    clock.t += 101;
    const settle = (r: Receipt, hash: string, by = owner) =>
      ledger.settleFraud({
        receiptId: receiptId(r),
        fraudProofHash: hash,
        validator: by.publicKey,
        confirmed: true,
        reason: "confirmed",
      });
    // A peer's proof after the window: refused here as on a ledger that never challenged it.
    await assert.rejects(
      () => settle(held, "cc".repeat(32), validator),
      /challenge window has closed/,
    );
    await settle(held, "aa".repeat(32));
    await assert.rejects(() => settle(open, "bb".repeat(32)), /challenge window has closed/);
    assert.equal(ledger.receipt(receiptId(held))!.status, "fraud");
    await assert.rejects(() => ledger.openChallenge(receiptId(open)), /window has closed/);
    await ledger.close();
  }));

Deno.test("ledger: only assigned work is credited — unrequested or self-requested work earns 0, and a late assignment attaches once", () =>
  withLedger(async (dir, clock) => {
    const options = { now: () => clock.t, economics: { challengeWindowMs: 100 } };
    const ledger = await Ledger.open(dir, owner, options);
    await ledger.deposit(worker.publicKey, 10_000);
    // The worker naming itself as its own job's requester is not a requester.
    const selfJob = { ...job(41), requester: toHex(worker.publicKey) };
    const [none, self, late, other] = [
      receipt(40, 5),
      resigned(receipt(41, 6), { jobId: jobId(selfJob) }, worker),
      receipt(42, 7),
      receipt(43, 8),
    ];
    assert.equal((await ledger.recordReceipt(none)).credit, 0);
    const selfAssigned = signAssignment({ job: selfJob, worker: self.worker, issuedAt: 0 }, worker);
    assert.equal((await ledger.recordReceipt(self, { assignment: selfAssigned })).credit, 0);
    // An assignment for another job, or forged, is no assignment.
    const forOther = assigned(other);
    assert.equal((await ledger.recordReceipt(late, forOther)).credit, 0);
    const forged = {
      ...(assigned(other).assignment as JobAssignment),
      sig: new Uint8Array(64),
    };
    assert.equal((await ledger.recordReceipt(other, { assignment: forged })).credit, 0);
    // The requester's announcement arrives after the worker's: its assignment attaches, once.
    assert.equal((await ledger.recordReceipt(late, assigned(late))).credit, 7);
    await assert.rejects(() => ledger.recordReceipt(late, assigned(late)), {
      code: "duplicate_receipt",
    });
    clock.t += 100;
    await ledger.finalizeDue();
    assert.deepEqual(ledger.account(worker.publicKey), { balance: 7, stake: 10_000, locked: 0 });
    await ledger.close();
    // Replayed from the log, the same.
    const reopened = await Ledger.open(dir, owner, options);
    assert.equal(reopened.account(worker.publicKey).balance, 7);
    assert.equal(reopened.receipt(receiptId(late))!.requester, toHex(requester.publicKey));
    await reopened.close();
  }));

Deno.test("ledger: two different receipts of one worker for one job are equivocation: slashed once, by its own signatures", () =>
  withLedger(async (dir, clock) => {
    const options = { now: () => clock.t, economics: { challengeWindowMs: 100 } };
    let ledger = await Ledger.open(dir, owner, options);
    await ledger.deposit(worker.publicKey, 10_000);
    const first = receipt(50, 10);
    const { sig: _sig, worker: _w, ...unsigned } = first;
    const resign = (changes: Partial<Receipt>) => signReceipt({ ...unsigned, ...changes }, worker);
    await ledger.recordReceipt(first, assigned(first));
    // The same claim with fingerprints that differ in their last bits (another root): not paid
    // twice, but not equivocation either.
    const sameClaim = resign({ commitment: { ...first.commitment, root: "44".repeat(32) } });
    await assert.rejects(() => ledger.recordReceipt(sameClaim), { code: "job_already_recorded" });
    assert.equal(ledger.receipt(receiptId(first))!.status, "pending");
    // Another output for the same job: the worker contradicts itself.
    const otherOutput = resign({ outputHash: "55".repeat(32) });
    await assert.rejects(() => ledger.recordReceipt(otherOutput), { code: "equivocation" });
    assert.equal(ledger.receipt(receiptId(first))!.status, "fraud");
    assert.deepEqual(ledger.account(worker.publicKey), {
      balance: 0,
      stake: 10_000 - 10 * 20,
      locked: 0,
    });
    // A third version is not slashed again, and the entry (with the second receipt) survives.
    const third = resign({ tokenCount: 9 });
    await assert.rejects(() => ledger.recordReceipt(third), { code: "job_already_recorded" });
    await ledger.close();
    ledger = await Ledger.open(dir, owner, options);
    assert.equal(ledger.account(worker.publicKey).stake, 10_000 - 200);
    const entry = ledger.entries().find((e) => e.kind === "equivocation")!;
    assert.equal(receiptId(entry.body.second as unknown as Receipt), receiptId(otherOutput));
    // Equivocating after being paid: the pay stays, the stake is cut as much as the slash.
    const paid = receipt(51, 5);
    await ledger.recordReceipt(paid, assigned(paid));
    clock.t += 100;
    await ledger.finalizeDue();
    const { sig: _s2, worker: _w2, ...paidUnsigned } = paid;
    const later = signReceipt({ ...paidUnsigned, outputHash: "66".repeat(32) }, worker);
    await assert.rejects(() => ledger.recordReceipt(later), { code: "equivocation" });
    assert.deepEqual(ledger.account(worker.publicKey), {
      balance: 5,
      stake: 10_000 - 200 - 100,
      locked: 0,
    });
    await ledger.close();
  }));

// `Ledger.receiptRefusal`, the question the ValidatorActor asks before it does any work that
// depends on a receipt's challenge coin (`tests/actors/validator_receipt_intake_test.ts`): it must
// answer what `recordReceipt` then does, and write nothing — not even the slash of an equivocation,
// which `recordReceipt` writes.

const M = DEFAULT_ECONOMICS.slashMultiplier;

Deno.test("receiptRefusal answers what recordReceipt then does, and writes nothing", () =>
  withLedgerDir(async (dir, clock) => {
    const ledger = await Ledger.open(dir, Identity.generate(), { now: () => clock.t });
    try {
      const worker = Identity.generate();
      const copier = Identity.generate();
      await ledger.deposit(worker.publicKey, 10 * M);
      await ledger.deposit(copier.publicKey, 1_000);
      const first = fixtureReceipt(1, 10, worker);
      const cases: [
        string,
        () => ReturnType<typeof fixtureReceipt>,
        unknown,
        string | undefined,
      ][] = [
        // 10 tokens lock all 10·m of the stake: nothing left for a second receipt.
        ["recordable", () => first, assigned(first), undefined],
        ["stake all locked", () => fixtureReceipt(2, 1, worker), {}, "insufficient_stake"],
        ["the same receipt again", () => first, {}, "duplicate_receipt"],
        [
          "another key's copy, unassigned",
          () => fixtureReceipt(1, 10, copier),
          {},
          "job_already_recorded",
        ],
        [
          "another claim for the job",
          () => resigned(first, { tokenCount: 9 }, worker),
          {},
          "equivocation",
        ],
      ];
      for (const [name, make, options, refusal] of cases) {
        const r = make();
        const length = ledger.length;
        const stake = ledger.account(worker.publicKey).stake;
        assert.equal(
          ledger.receiptRefusal(r, options as { assignment?: unknown }),
          refusal,
          name,
        );
        assert.equal(ledger.length, length, `${name}: nothing written`);
        assert.equal(ledger.account(worker.publicKey).stake, stake, `${name}: nothing slashed`);
        const outcome = await ledger.recordReceipt(r, options as { assignment?: unknown }).then(
          () => undefined,
          (error) => (error as { code: string }).code,
        );
        assert.equal(outcome, refusal, `${name}: recordReceipt`);
      }
      assert.equal(ledger.receipt(receiptId(first))!.status, "fraud", "the equivocation slashed");
    } finally {
      await ledger.close();
    }
  }));

// Calls of `recordReceipt` (and `recordTrainingReceipt`) racing each other: whether a receipt is
// equivocation, a late assignment or new is decided in one turn of the ledger's writer, so the
// outcome is the one the same calls one after the other give.

/** The code each settled call ended with: "ok", or its error's code. */
function outcomes(results: PromiseSettledResult<unknown>[]): string[] {
  return results.map((r) => r.status === "fulfilled" ? "ok" : (r.reason as { code: string }).code);
}

Deno.test("ledger: the worker's announcement and the requester's arriving together record the receipt once, credited", () =>
  withLedgerDir(async (dir, clock) => {
    const ledger = await Ledger.open(dir, owner, { now: () => clock.t });
    await ledger.deposit(worker.publicKey, 1e9);
    for (const order of ["worker first", "requester first"]) {
      const r = fixtureReceipt(order === "worker first" ? 1 : 2, 10, worker);
      const calls = order === "worker first"
        ? [ledger.recordReceipt(r), ledger.recordReceipt(r, assigned(r))]
        : [ledger.recordReceipt(r, assigned(r)), ledger.recordReceipt(r)];
      const results = await Promise.allSettled(calls);
      const rec = ledger.receipt(receiptId(r))!;
      assert.deepEqual(
        { credit: rec.credit, requester: rec.requester },
        { credit: 10, requester: toHex(requester.publicKey) },
        order,
      );
      // The worker's copy after the requester's is the duplicate it always was.
      assert.deepEqual(
        outcomes(results),
        order === "worker first" ? ["ok", "ok"] : ["ok", "duplicate_receipt"],
        order,
      );
    }
    clock.t += ledger.economics.challengeWindowMs;
    await ledger.finalizeDue();
    assert.equal(ledger.account(worker.publicKey).balance, 20, "both jobs paid");
    await ledger.close();
  }));

Deno.test("ledger: two different receipts of one worker for one job arriving together are equivocation, slashed", () =>
  withLedgerDir(async (dir, clock) => {
    const ledger = await Ledger.open(dir, owner, { now: () => clock.t });
    await ledger.deposit(worker.publicKey, 1e9);
    const first = fixtureReceipt(3, 10, worker);
    const second = resigned(first, { outputHash: "44".repeat(32) }, worker);
    const results = await Promise.allSettled([
      ledger.recordReceipt(first, assigned(first)),
      ledger.recordReceipt(second, assigned(second)),
    ]);
    assert.deepEqual(outcomes(results), ["ok", "equivocation"]);
    assert.ok(ledger.convicted(worker.publicKey));
    assert.equal(ledger.receipt(receiptId(first))?.status, "fraud");
    assert.equal(ledger.receipt(receiptId(second)), undefined);
    const slashed = 10 * ledger.economics.slashMultiplier;
    assert.deepEqual(ledger.account(worker.publicKey), {
      balance: 0,
      stake: 1e9 - slashed,
      locked: 0,
    });
    await ledger.close();
  }));
