/**
 * A connecting peer's catch-up (`actors/_catch_up.ts`) in memory: convictions and verdicts bounded
 * apart (convictions first, never pushed out by verdicts); past a bound, the one dropped is one of
 * the worker holding the most, so one worker's cheap run of convictions or faults cannot push
 * another's out; and a "proof withheld" fault is kept for the catch-up, with its receipt and job,
 * whichever way it ended.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  CatchUp,
  MAX_CATCH_UP_FRAUD_PROOF_BYTES,
  MAX_CATCH_UP_FRAUD_PROOFS,
  MAX_CATCH_UP_VERDICTS,
} from "../../actors/_catch_up.ts";
import type { FraudProof } from "../../protocols/fraud_proof.ts";
import { Identity } from "../../protocols/identity.ts";
import { type Receipt, receiptId } from "../../protocols/receipt.ts";
import { signVerdict, type Verdict } from "../../protocols/verdict.ts";
import {
  announceAssigned,
  falseProof,
  ledgerReads,
  proveOn,
  START,
  textJob,
  withheldVerdict,
} from "./_validator_fixture.ts";
import { TEST_ARCH } from "../training/_fixtures.ts";
import { lossFraud } from "../training/_loss_fraud.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { CatchUpItem } from "../../actors/validator_messages.ts";
import { jobId, type TextJob } from "../../protocols/job.ts";
import { eventually } from "../_helpers/wait.ts";
import { joinLedgerNodes, spawnValidatorAndLatePeer } from "../network/_ledger_node.ts";
import { startValidator } from "./_peer_verdict_fixture.ts";
import { endingWriteFails, STAKE } from "./_ledger_write_fault.ts";

// -------------------------------------------------------------------------------------------------
// A connecting peer's catch-up (`actors/_catch_up.ts`) is bounded, and convictions are kept apart
// from verdicts: however many verdicts a start applies, they never push a conviction out, and
// convictions are sent first. (That a peer connecting later is sent them, and takes each once:
// `tests/network/catch_up_test.ts`; for training convictions, `tests/training/training_catch_up_test.ts`.)

const [worker, accuser, requester] = Array.from({ length: 3 }, Identity.generate);
const { receipt } = await proveOn(textJob(requester, "catch-up"), worker);
const base = falseProof(receipt, accuser);
/** Only the receipt's id and the proof's size matter to the catch-up: one receipt per `i`. */
const proofAbout = (i: number, padding = 0): FraudProof => ({
  ...base,
  receipt: { ...base.receipt, jobId: `job-${i}` },
  chunks: padding === 0 ? [] : [{ index: 0, tokens: new Uint8Array(padding), path: [] }],
});
const verdict = (i: number): Verdict =>
  signVerdict({
    v: 1,
    subject: "inference",
    subjectId: `receipt-${i}`,
    target: worker.publicKey,
    outcome: "invalid",
    reason: "proof_unavailable",
    issuedAt: START,
  }, accuser);
const until = START + 1_000;

Deno.test("verdicts never push a conviction out of the catch-up, and convictions are sent first", () => {
  const kept = new CatchUp();
  for (let i = 0; i < MAX_CATCH_UP_FRAUD_PROOFS; i++) {
    kept.add({ kind: "fraud_proof", proof: proofAbout(i) }, until);
  }
  for (let i = 0; i < 3 * MAX_CATCH_UP_VERDICTS; i++) {
    kept.add({ kind: "verdict", verdict: verdict(i) }, until);
  }
  const items = kept.current(START);
  const proofs = items.filter((item) => item.kind === "fraud_proof");
  assert.equal(proofs.length, MAX_CATCH_UP_FRAUD_PROOFS);
  assert.equal(items.length, MAX_CATCH_UP_FRAUD_PROOFS + MAX_CATCH_UP_VERDICTS);
  assert.ok(items.slice(0, proofs.length).every((item) => item.kind === "fraud_proof"));
  // The oldest verdicts went first.
  const first = items[proofs.length];
  assert.equal(
    first.kind === "verdict" && first.verdict.subjectId,
    `receipt-${2 * MAX_CATCH_UP_VERDICTS}`,
  );
});

Deno.test("past its bounds the catch-up drops its oldest convictions: by count, and by bytes", () => {
  const kept = new CatchUp();
  for (let i = 0; i <= MAX_CATCH_UP_FRAUD_PROOFS; i++) {
    kept.add({ kind: "fraud_proof", proof: proofAbout(i) }, until);
  }
  const ids = (items: ReturnType<CatchUp["current"]>) =>
    items.map((item) => item.kind === "fraud_proof" ? receiptId(item.proof.receipt) : "");
  let items = kept.current(START);
  assert.equal(items.length, MAX_CATCH_UP_FRAUD_PROOFS);
  assert.ok(!ids(items).includes(receiptId(proofAbout(0).receipt)), "the oldest stayed");

  const big = new CatchUp();
  const share = 1 << 20; // a frame's worth each
  const fit = Math.floor(MAX_CATCH_UP_FRAUD_PROOF_BYTES / share);
  for (let i = 0; i <= fit; i++) {
    big.add({ kind: "fraud_proof", proof: proofAbout(i, share) }, until);
  }
  items = big.current(START);
  assert.ok(items.length < fit, `${items.length} proofs of 1 MiB kept`);
  assert.ok(ids(items).includes(receiptId(proofAbout(fit).receipt)), "the newest was dropped");
});

Deno.test("the catch-up keeps one conviction per receipt, and only until its window closes", () => {
  const kept = new CatchUp();
  kept.add({ kind: "fraud_proof", proof: proofAbout(1) }, until);
  kept.add({ kind: "fraud_proof", proof: { ...proofAbout(1), issuedAt: 2 } }, until);
  assert.equal(kept.current(START).length, 1);
  assert.deepEqual(kept.current(until + 1), []);
  assert.deepEqual(kept.current(START), [], "forgotten once past its window");
});

Deno.test("training convictions are kept with inference ones under the same bounds, before the verdicts, their accusers' pledges first", () => {
  const trainingAccuser = Identity.generate();
  const training = lossFraud("bafy-start", trainingAccuser);
  const kept = new CatchUp();
  kept.add({ kind: "verdict", verdict: verdict(0) }, until);
  kept.add({ kind: "fraud_proof", proof: proofAbout(0) }, until);
  kept.add({ kind: "training_fraud_proof", body: { proof: training, arch: TEST_ARCH } }, until);
  // One per receipt, as for inference: another accuser's proof of the same receipt is not kept.
  const other = lossFraud("bafy-start", Identity.generate());
  kept.add({
    kind: "training_fraud_proof",
    body: { proof: { ...other, receipt: training.receipt }, arch: TEST_ARCH },
  }, until);
  assert.deepEqual(kept.current(START).map((item) => item.kind), [
    "fraud_proof",
    "training_fraud_proof",
    "verdict",
  ]);
  assert.deepEqual(kept.accusers(START), [accuser.publicKey, trainingAccuser.publicKey]);
  // The count bound is shared: a flood of inference convictions of one worker pushes out its
  // own, not the trainer's.
  for (let i = 1; i <= MAX_CATCH_UP_FRAUD_PROOFS; i++) {
    kept.add({ kind: "fraud_proof", proof: proofAbout(i) }, until);
  }
  const items = kept.current(START);
  assert.equal(items.filter((item) => item.kind !== "verdict").length, MAX_CATCH_UP_FRAUD_PROOFS);
  assert.ok(items.some((item) => item.kind === "training_fraud_proof"), "the trainer's went");
});

// -------------------------------------------------------------------------------------------------
// The catch-up's convictions (`actors/_catch_up.ts`) are bounded (64 proofs, 8 MiB), the oldest
// dropped first. A conviction is cheap to make on purpose: a staked key's receipt that contradicts
// its own job is challenged on arrival by every validator and convicted without a model, for a
// slash of 20 × its reward (a one-token receipt: 20 credits). One worker key's run of such
// convictions — 64 small ones, or 8 of about a frame each — pushed every other conviction out, and
// a ledger that connected afterwards paid the cheat the rest of the network slashed. Past a bound,
// the proof dropped is one of the worker holding the most (the longest kept of its own), as the
// held proofs do per accuser (`_validator_memory.ts`).

const [honestCheat, proofFlooder, fairAccuser, fairRequester] = Array.from(
  { length: 4 },
  Identity.generate,
);
/** A conviction of `worker`'s receipt `i` (only the receipt's id, worker and size matter). */
const baseOf = async (worker: Identity) =>
  falseProof((await proveOn(textJob(fairRequester, "s42"), worker)).receipt, fairAccuser);
const flooderBase = await baseOf(proofFlooder);
const cheatBase = await baseOf(honestCheat);
const about = (base: FraudProof, i: number, padding = 0): FraudProof => ({
  ...base,
  receipt: { ...base.receipt, jobId: `job-${i}` },
  chunks: padding === 0 ? [] : [{ index: 0, tokens: new Uint8Array(padding), path: [] }],
});
const keptProofIds = (kept: CatchUp) =>
  kept.current(START).flatMap((item) =>
    item.kind === "fraud_proof" ? [receiptId(item.proof.receipt)] : []
  );

Deno.test("one worker's many convictions do not push another worker's conviction out of the catch-up", () => {
  const kept = new CatchUp();
  const cheat = about(cheatBase, 1);
  kept.add({ kind: "fraud_proof", proof: cheat }, until);
  for (let i = 0; i < 2 * MAX_CATCH_UP_FRAUD_PROOFS; i++) {
    kept.add({ kind: "fraud_proof", proof: about(flooderBase, 1_000 + i) }, until);
  }
  const ids = keptProofIds(kept);
  assert.ok(ids.length <= MAX_CATCH_UP_FRAUD_PROOFS);
  assert.ok(
    ids.includes(receiptId(cheat.receipt)),
    "one worker's convictions pushed another worker's conviction out of the catch-up",
  );
});

Deno.test("one worker's frame-sized convictions do not push another worker's conviction out by bytes", () => {
  const kept = new CatchUp();
  const cheat = about(cheatBase, 2);
  kept.add({ kind: "fraud_proof", proof: cheat }, until);
  const big = MAX_CATCH_UP_FRAUD_PROOF_BYTES / 8; // about a frame each: eight fill the bound
  for (let i = 0; i < 9; i++) {
    kept.add({ kind: "fraud_proof", proof: about(flooderBase, 2_000 + i, big) }, until);
  }
  assert.ok(
    keptProofIds(kept).includes(receiptId(cheat.receipt)),
    "nine frame-sized convictions of one worker pushed another worker's conviction out",
  );
});

// -------------------------------------------------------------------------------------------------
// The catch-up's verdicts (`actors/_catch_up.ts`) are bounded (`MAX_CATCH_UP_VERDICTS`), and were
// dropped oldest first over every worker. A "proof withheld" fault is cheap to make on purpose: a
// worker with a colluding requester sends receipts (they only lock stake) and withholds their proof
// data from the validator. One worker's run of 64 such faults pushed every other worker's fault out
// of the catch-up, and a ledger that connected afterwards never heard of another withholder's fault
// and paid it, slashed here. Past the bound, the verdict dropped is now one of the worker holding
// the most (its longest kept), as for the convictions (above).

const [cheat, faultFlooder, validator, floodRequester] = Array.from(
  { length: 4 },
  Identity.generate,
);
/** A "proof withheld" fault of `worker` about receipt `i` (its id only: no evidence). */
const fault = (worker: Identity, i: number): CatchUpItem => ({
  kind: "verdict",
  verdict: withheldVerdict(`receipt-${i}`, worker.publicKey, START, validator),
});
const keptVerdictIds = (kept: CatchUp) =>
  kept.current(START).flatMap((item) => item.kind === "verdict" ? [item.verdict.subjectId] : []);

Deno.test("one worker's many withheld faults do not push another worker's fault out of the catch-up", () => {
  const kept = new CatchUp();
  kept.add(fault(cheat, 0), until);
  for (let i = 1; i <= 2 * MAX_CATCH_UP_VERDICTS; i++) kept.add(fault(faultFlooder, i), until);
  const ids = keptVerdictIds(kept);
  assert.equal(ids.length, MAX_CATCH_UP_VERDICTS);
  assert.ok(
    ids.includes("receipt-0"),
    "one worker's faults pushed another worker's fault out of the catch-up",
  );
  // The flooder gave up its own oldest: its newest are kept, in the order they were kept.
  assert.deepEqual(
    ids,
    [
      "receipt-0",
      ...Array.from(
        { length: MAX_CATCH_UP_VERDICTS - 1 },
        (_, n) => `receipt-${MAX_CATCH_UP_VERDICTS + 2 + n}`,
      ),
    ],
  );
});

Deno.test("a fault kept with its evidence is not pushed out by another worker's flood, and keeps its evidence", async () => {
  const kept = new CatchUp();
  const job = textJob(floodRequester, "s58-flood");
  const { receipt } = await proveOn(job, cheat);
  const verdict = withheldVerdict(receiptId(receipt), cheat.publicKey, START, validator);
  await kept.add({ kind: "verdict", verdict, evidence: { receipt, job } }, until);
  for (let i = 1; i <= MAX_CATCH_UP_VERDICTS; i++) await kept.add(fault(faultFlooder, i), until);
  const items = kept.current(START).flatMap((item) => item.kind === "verdict" ? [item] : []);
  const mine = items.find((item) => item.verdict.subjectId === receiptId(receipt));
  assert.ok(mine !== undefined, "the flooder's faults pushed the other worker's fault out");
  assert.deepEqual(mine.evidence, { receipt, job });
});

Deno.test("past the verdicts' bound, the worker holding the most gives up its oldest, whoever that is", () => {
  const kept = new CatchUp();
  const [a, b] = [Identity.generate(), Identity.generate()];
  // Half each, then one more of each: each time the one that just went past the other pays.
  const half = MAX_CATCH_UP_VERDICTS / 2;
  for (let i = 0; i < half; i++) kept.add(fault(a, i), until);
  for (let i = 0; i < half; i++) kept.add(fault(b, 100 + i), until);
  kept.add(fault(a, 1_000), until);
  kept.add(fault(b, 1_001), until);
  const ids = keptVerdictIds(kept);
  assert.equal(ids.length, MAX_CATCH_UP_VERDICTS);
  // a held one more first (its oldest, receipt-0, went); then b did (receipt-100 went).
  assert.ok(!ids.includes("receipt-0") && !ids.includes("receipt-100"));
  assert.ok(ids.includes("receipt-1") && ids.includes("receipt-101"));
  assert.ok(ids.includes("receipt-1000") && ids.includes("receipt-1001"));
});

/**
 * On the ledgers: a validator V (challenges every receipt; both workers withhold from it) decides
 * worker X's fault, then 64 of the flooder F's, with no peer connected. A late peer L, which
 * recorded X's receipt (credited), connects after: before, V's catch-up held only F's faults,
 * and L paid X, slashed in V.
 */
Deno.test("a late peer connecting after one worker's flood of withheld faults still hears of another worker's fault, and slashes it there, not pays it", async () => {
  const dir = await Deno.makeTempDir();
  const clock = { t: START };
  const system = new ActorSystem({ name: "s58-catch-up-flood" });
  try {
    const stake = 1_000_000;
    const v = Identity.generate();
    const { nodeV, nodeL } = await spawnValidatorAndLatePeer({ dir, clock, system }, v, {
      staked: [cheat, faultFlooder, v],
      stake,
    });
    const job = textJob(floodRequester, crypto.randomUUID());
    const { receipt } = await proveOn(job, cheat);
    const id = receiptId(receipt);
    // L records X's receipt (through the requester): it would pay it at the window's end.
    assert.equal(
      (await announceAssigned(nodeL.validator, receipt, job, floodRequester)).recorded,
      true,
    );
    // V decides X's fault, then F's flood of faults, alone: gossip reaches nobody.
    const decide = async (r: Receipt, j: TextJob) => {
      const handled = await announceAssigned(nodeV.validator, r, j, floodRequester);
      assert.equal(handled.challenged, true);
      await handled.result;
    };
    await decide(receipt, job);
    for (let i = 0; i < MAX_CATCH_UP_VERDICTS; i++) {
      const floodJob = textJob(floodRequester, `s58-flood-${i}`);
      await decide((await proveOn(floodJob, faultFlooder)).receipt, floodJob);
    }
    const readsV = ledgerReads(() => nodeV.validator, clock);
    assert.equal((await readsV.record(id))?.status, "fraud", "V slashed X");

    await joinLedgerNodes(nodeL, nodeV);
    const readsL = ledgerReads(() => nodeL.validator, clock);
    await eventually(
      async () => (await readsL.stats()).peerVerdicts >= MAX_CATCH_UP_VERDICTS,
      "L to record V's catch-up",
    );
    await readsL.drained();
    const record = (await readsL.record(id))!;
    await readsL.closeWindow();
    assert.equal((await readsL.record(id))?.status, "fraud", "L paid X, slashed in V");
    assert.deepEqual(
      await readsL.account(cheat.publicKey),
      { balance: 0, stake: stake - record.locked, locked: 0 },
      "slashed in L as in V, not paid",
    );
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

// -------------------------------------------------------------------------------------------------
// Who hears that a worker withheld its proof data (`ValidatorActor`'s challenge ending). A "proof
// withheld" fault cannot be proven to a third party: its signed verdict is a claim other ledgers
// take over on (`withheld_check.ts`), asking the worker themselves. It reached only the peers
// connected when it was gossiped: a ledger offline then, or one that joined later and recorded the
// receipt through others, never heard it, never asked, and paid the worker that withheld — though
// the same verdict, had a failed ledger write delayed it to the next start, was kept for the
// catch-up of every peer that connects while its window is open (`_catch_up.ts`). Now a fault's
// verdict is kept for the catch-up whichever way it ended.

Deno.test("a worker that withholds its proof data is slashed, and the verdict is kept for peers that connect while its window is open", async () => {
  const t = await startValidator({ p: 1, model: true });
  try {
    const worker = await t.staked();
    const proved = await t.prove(worker);
    t.served.delete(proved.id); // withheld
    await t.announce(proved);
    await t.drained();
    assert.equal((await t.record(proved.id))?.status, "fraud");
    const items = await t.validator.ask<CatchUpItem[]>({ type: "catch_up" });
    const verdicts = items.flatMap((item) => item.kind === "verdict" ? [item.verdict] : []);
    assert.deepEqual(
      verdicts.map((v) => [v.subjectId, v.outcome, v.reason]),
      [[proved.id, "invalid", "proof_unavailable"]],
    );
  } finally {
    await t.close();
  }
});

// -------------------------------------------------------------------------------------------------
// A "proof withheld" fault applied at the validator's start from its kept ending
// (`actors/_challenge_endings.ts`, `ValidatorRestart.applyKeptEndings`) goes to the peers that
// connect later (the catch-up, `actors/_catch_up.ts`) and to those connected now
// (`publish_verdict`) after its receipt and job (`ClaimEvidence`), as a fault decided without a
// restart does. A peer takes a claim over only while it remembers the receipt and job: before, the
// job was not kept past the challenge's opening, the start's fault went alone, and a peer that had
// forgotten the receipt (or never had it) held the claim for good — the worker that withheld was
// paid there, or kept its stake, slashed here. Now the kept ending holds them.
//
// The set-up: the worker withholds from a validator that challenges everything; the write of its
// verdict fails (`_ledger_write_fault.ts`), the validator crashes and its restart applies the kept
// fault. Asserted: what its catch-up and its network were told, while the window is open.

Deno.test("a withheld fault applied at the start from its kept ending is sent after its receipt and job: in the catch-up of the peers that connect later, and to those connected now", async () => {
  let items: CatchUpItem[] = [];
  const out = await endingWriteFails("withheld", "recordVerdict", "append", {
    network: true,
    beforeClose: async (validator) => {
      items = await validator.ask<CatchUpItem[]>({ type: "catch_up" });
    },
  });
  assert.equal(out.status, "fraud");
  assert.equal(out.worker.stake, STAKE - out.slash);
  const faults = items.flatMap((item) => item.kind === "verdict" ? [item] : []);
  assert.equal(faults.length, 1, "the fault applied at the start is kept for the catch-up");
  const [fault] = faults;
  assert.ok(
    fault.evidence !== undefined,
    "the start's fault goes without its receipt and job: a late peer that forgot the receipt holds the claim for good",
  );
  assert.equal(receiptId(fault.evidence.receipt), fault.verdict.subjectId);
  assert.equal(jobId(fault.evidence.job), fault.evidence.receipt.jobId);
  const published = out.told.flatMap((m) => m.type === "publish_verdict" ? [m] : []);
  assert.equal(published.length, 1);
  assert.deepEqual(published[0].evidence, fault.evidence, "told the network without its evidence");
});
