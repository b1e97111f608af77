/**
 * A worker's conviction does not hang on the order its accuser's pledge and proofs reach a ledger:
 * the hold of fraud proofs waiting for their accuser's pledge (`actors/_pledge_held_proofs.ts`) and
 * the budget of checks not backed by their accuser's stake (`actors/_unbacked_checks.ts`), on their
 * own, in a validator, and across its restart.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { ActorRef } from "../../actors/actor_ref.ts";
import { HELD_EVIDENCE_FILE } from "../../actors/_held_evidence.ts";
import { decodeCbor } from "../../protocols/cbor.ts";
import type {
  FraudProofHandled,
  ValidatorMessage,
  ValidatorStats,
} from "../../actors/validator_messages.ts";
import { signAssignment } from "../../protocols/assignment.ts";
import type { FraudProof } from "../../protocols/fraud_proof.ts";
import { Identity } from "../../protocols/identity.ts";
import type { TextJob } from "../../protocols/job.ts";
import { type Receipt, receiptId } from "../../protocols/receipt.ts";
import { signStakePledge } from "../../protocols/stake_pledge.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import type { Account, ReceiptRecord } from "../../proof/ledger.ts";
import { validateReceipt } from "../../proof/validation.ts";
import { eventually } from "../_helpers/wait.ts";
import {
  announceAssigned,
  f,
  falseProof,
  HONEST_MODELS,
  proveOn,
  spawnValidator,
  START,
  textJob,
} from "./_validator_fixture.ts";
import {
  MAX_PLEDGE_HELD_PER_ACCUSER,
  MAX_PLEDGE_HELD_PER_RECEIPT,
  MAX_PLEDGE_HELD_PROOFS,
  PledgeHeldProofs,
} from "../../actors/_pledge_held_proofs.ts";
import { toHex } from "../../protocols/hash.ts";
import {
  MAX_UNBACKED_CHECKS_IN_FLIGHT,
  MAX_UNBACKED_CHECKS_PER_RECEIPT,
  UnbackedChecks,
} from "../../actors/_unbacked_checks.ts";

// -------------------------------------------------------------------------------------------------
// A worker's conviction does not hang on the order its accuser's pledge and proofs reach a
// ledger (`actors/_pledge_held_proofs.ts`, `actors/_unbacked_checks.ts`). Each case feeds two
// ledgers the same signed evidence in two orders and asserts the ledger outcome after the
// window in both — the receipt's status, the worker's and the accuser's accounts — and that they
// match.
//
// Before: a proof that reached a ledger before its accuser's pledge was skipped
// (`unstaked_accuser`) and never taken up when the pledge came, so the cheat was paid there and
// slashed elsewhere; and a valid proof was skipped for stake its accuser's earlier false proof
// had spent (or its proof held for a late receipt had reserved), where in the other order it
// convicted first.

const PENALTY = DEFAULT_ECONOMICS.falseAccusationPenalty;
const WORKER_STAKE = 100_000;
const PEER = "ee".repeat(32);

/** The evidence every case draws from: one cheat, one honest receipt, one worker, one accuser. */
const requester = Identity.generate();
const worker = Identity.generate();
const accuser = Identity.generate();

interface Work {
  job: TextJob;
  receipt: Receipt;
  id: string;
}

async function work(nonce: string, cheat: boolean): Promise<Work & { proof: unknown }> {
  const job = textJob(requester, nonce);
  const proved = await proveOn(job, worker, cheat ? f.otherSeed : f.honest);
  return { job, receipt: proved.receipt, id: receiptId(proved.receipt), proof: proved.proof };
}

const cheat = await work("pledge-order-cheat", true);
const honest = await work("pledge-order-honest", false);
const caught = await validateReceipt(
  { job: cheat.job, receipt: cheat.receipt, proof: cheat.proof as never },
  f.honest,
  accuser,
  { now: () => START },
);
assert.ok(caught.fraudProof, "the cheat is caught");
const confirmed: FraudProof = caught.fraudProof;

/** A message to a validator, named for failure reports. */
type Evidence = [label: string, message: ValidatorMessage];

const pledgeOf = (key: Identity, amount: number): Evidence => [
  `pledge(${amount})`,
  { type: "pledge", pledge: signStakePledge(key, amount, 1), origin: PEER },
];
const workerPledge = pledgeOf(worker, WORKER_STAKE);
const receiptOf = (w: Work, label: string): Evidence => [label, {
  type: "receipt",
  receipt: w.receipt,
  job: w.job,
  assignment: signAssignment({ job: w.job, worker: w.receipt.worker, issuedAt: 0 }, requester),
  origin: PEER,
}];
const cheatReceipt = receiptOf(cheat, "receipt(cheat)");
const honestReceipt = receiptOf(honest, "receipt(honest)");
const fraud: Evidence = ["fraud(cheat)", { type: "fraud_proof", proof: confirmed, origin: PEER }];
const falseAccusation: Evidence = ["false(honest)", {
  type: "fraud_proof",
  proof: falseProof(honest.receipt, accuser),
  origin: PEER,
}];

/** What is compared after the window: both receipts, the worker's and the accuser's accounts. */
interface Outcome {
  cheat?: string;
  honest?: string;
  worker: Account;
  accuser: Account;
}

/** A validator over its own directory (p = 0: only the evidence fed moves anything). */
async function ledger(system: ActorSystem, name: string, dir: string) {
  const clock = { t: START };
  const identity = Identity.generate();
  const spawn = () =>
    spawnValidator(system, {
      name,
      identity,
      ledgerDir: dir,
      clock,
      challengeProbability: 0,
      models: HONEST_MODELS,
    });
  let ref: ActorRef<ValidatorMessage> = await spawn();
  const stats = () => ref.ask<ValidatorStats>({ type: "stats" });
  const answers: unknown[] = [];
  return {
    answers,
    stats,
    /** Each message handled, and the checks it started settled, before the next. */
    async feed(...evidence: Evidence[]): Promise<void> {
      for (const [, message] of evidence) {
        answers.push(await ref.ask(message));
        await eventually(async () => (await stats()).fraudProofsChecking === 0, "checks to end");
      }
    },
    /** Stopped (`between` runs then) and started again over the same directory. */
    async restart(between?: () => Promise<void>): Promise<void> {
      await system.stop(name);
      await between?.();
      ref = await spawn();
    },
    async outcome(): Promise<Outcome> {
      clock.t += DEFAULT_ECONOMICS.challengeWindowMs + 1;
      await ref.ask({ type: "finalize" });
      const status = async (w: Work) =>
        (await ref.ask<ReceiptRecord | undefined>({ type: "receipt_status", receiptId: w.id }))
          ?.status;
      return {
        cheat: await status(cheat),
        honest: await status(honest),
        worker: await ref.ask<Account>({ type: "account", key: worker.publicKey }),
        accuser: await ref.ask<Account>({ type: "account", key: accuser.publicKey }),
      };
    },
  };
}

/** Run `orders` each on a fresh ledger; every outcome must equal the first. Returns it. */
async function settle(...orders: Evidence[][]): Promise<Outcome> {
  const root = await Deno.makeTempDir();
  const system = new ActorSystem({ name: "ledger-order-pledge" });
  try {
    const outcomes: Outcome[] = [];
    for (const [n, order] of orders.entries()) {
      const l = await ledger(system, `v${n}/validator`, join(root, `v${n}`));
      await l.feed(...order);
      outcomes.push(await l.outcome());
    }
    for (const [n, outcome] of outcomes.entries()) {
      assert.deepEqual(outcome, outcomes[0], `order ${n}: ${orders[n].map(([l]) => l).join(" ")}`);
    }
    return outcomes[0];
  } finally {
    await system.shutdown();
    await Deno.remove(root, { recursive: true });
  }
}

/** The slash locked behind the cheat's receipt, and the accuser's share of it. */
const SLASH = cheat.receipt.tokenCount * DEFAULT_ECONOMICS.defaultTokenPrice *
  DEFAULT_ECONOMICS.slashMultiplier;
const REWARD = SLASH * DEFAULT_ECONOMICS.validatorRewardShare;
const HONEST_PAY = honest.receipt.tokenCount * DEFAULT_ECONOMICS.defaultTokenPrice;

Deno.test("a confirmed proof that reached a ledger before its accuser's pledge is taken up when the pledge comes: the cheat is slashed and unpaid in every order, its accuser rewarded", async () => {
  const pledge = pledgeOf(accuser, 10 * PENALTY);
  const outcome = await settle(
    [workerPledge, pledge, cheatReceipt, fraud],
    [workerPledge, cheatReceipt, fraud, pledge],
    // Before its receipt too: held for the pledge, then for the receipt.
    [fraud, workerPledge, pledge, cheatReceipt],
    [fraud, workerPledge, cheatReceipt, pledge],
  );
  assert.equal(outcome.cheat, "fraud");
  assert.deepEqual(outcome.worker, { balance: 0, stake: WORKER_STAKE - SLASH, locked: 0 });
  assert.deepEqual(outcome.accuser, { balance: REWARD, stake: 10 * PENALTY, locked: 0 });
});

Deno.test("a false proof that reached a ledger before its accuser's pledge costs the accuser the penalty when the pledge comes, as in the other order; the honest work is paid", async () => {
  const pledge = pledgeOf(accuser, 10 * PENALTY);
  const outcome = await settle(
    [workerPledge, pledge, honestReceipt, falseAccusation],
    [workerPledge, honestReceipt, falseAccusation, pledge],
    [falseAccusation, workerPledge, honestReceipt, pledge],
  );
  assert.equal(outcome.honest, "final");
  assert.deepEqual(outcome.worker, { balance: HONEST_PAY, stake: WORKER_STAKE, locked: 0 });
  assert.deepEqual(outcome.accuser, { balance: 0, stake: 9 * PENALTY, locked: 0 });
});

Deno.test("a valid proof is checked although the accuser's earlier false proof spent its stake: the cheat is slashed in both orders, the accuser rewarded and penalized in both", async () => {
  const pledge = pledgeOf(accuser, PENALTY); // one penalty: the false proof takes all of it
  const outcome = await settle(
    [workerPledge, pledge, cheatReceipt, honestReceipt, falseAccusation, fraud],
    [workerPledge, pledge, cheatReceipt, honestReceipt, fraud, falseAccusation],
  );
  assert.equal(outcome.cheat, "fraud");
  assert.equal(outcome.honest, "final");
  assert.deepEqual(outcome.worker, {
    balance: HONEST_PAY,
    stake: WORKER_STAKE - SLASH,
    locked: 0,
  });
  assert.deepEqual(outcome.accuser, { balance: REWARD, stake: 0, locked: 0 });
});

Deno.test("a valid proof is checked although the accuser's stake is reserved by its proof held for a receipt not recorded yet: the cheat is slashed in every order", async () => {
  const pledge = pledgeOf(accuser, PENALTY);
  const outcome = await settle(
    // The false proof waits for the honest receipt, holding the accuser's one penalty.
    [workerPledge, pledge, cheatReceipt, falseAccusation, fraud, honestReceipt],
    [workerPledge, pledge, cheatReceipt, fraud, falseAccusation, honestReceipt],
    [workerPledge, pledge, honestReceipt, falseAccusation, fraud, cheatReceipt],
  );
  assert.equal(outcome.cheat, "fraud");
  assert.equal(outcome.honest, "final");
  assert.deepEqual(outcome.worker, {
    balance: HONEST_PAY,
    stake: WORKER_STAKE - SLASH,
    locked: 0,
  });
  assert.deepEqual(outcome.accuser, { balance: REWARD, stake: 0, locked: 0 });
});

Deno.test("a proof held for its accuser's pledge is kept across a stop: the pledge after the restart still slashes the cheat", async () => {
  const root = await Deno.makeTempDir();
  const system = new ActorSystem({ name: "ledger-order-pledge-restart" });
  try {
    const l = await ledger(system, "r/validator", join(root, "r"));
    await l.feed(workerPledge, cheatReceipt, fraud);
    assert.equal((l.answers.at(-1) as FraudProofHandled).skipped, "unstaked_accuser");
    await l.restart();
    await l.feed(pledgeOf(accuser, 10 * PENALTY));
    const outcome = await l.outcome();
    assert.equal(outcome.cheat, "fraud");
    assert.deepEqual(outcome.worker, { balance: 0, stake: WORKER_STAKE - SLASH, locked: 0 });
    assert.deepEqual(outcome.accuser, { balance: REWARD, stake: 10 * PENALTY, locked: 0 });
  } finally {
    await system.shutdown();
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("proofs from keys that never pledged here cost no forward pass and a bounded hold; a finder's proof sent after such a flood is still taken up when its pledge comes", async () => {
  const root = await Deno.makeTempDir();
  const system = new ActorSystem({ name: "ledger-order-pledge-flood" });
  try {
    const dir = join(root, "flood");
    const l = await ledger(system, "flood/validator", dir);
    await l.feed(workerPledge, cheatReceipt, honestReceipt);
    // 150 free keys accuse both receipts (the cheat's own, to crowd out its finder's proof).
    const flood: Evidence[] = [];
    for (let i = 0; i < 75; i++) {
      for (const w of [cheat, honest]) {
        flood.push(["flood", {
          type: "fraud_proof",
          proof: falseProof(w.receipt, Identity.generate()),
          origin: PEER,
        }]);
      }
    }
    await l.feed(...flood);
    const afterFlood = await l.stats();
    assert.equal(afterFlood.fraudProofsChecked, 0, "no free key buys a check");
    for (const answer of l.answers.slice(-flood.length) as FraudProofHandled[]) {
      assert.deepEqual(answer, {
        queued: false,
        skipped: "unstaked_accuser",
        awaitingPledge: true,
      });
    }
    await l.feed(fraud);
    // What a stop keeps is bounded: 4 per receipt (the finder's among the cheat's).
    await l.restart(async () => {
      const file = join(dir, HELD_EVIDENCE_FILE);
      const kept = decodeCbor(await Deno.readFile(file)) as { proofs: unknown[] };
      assert.equal(kept.proofs.length, 8);
    });
    await l.feed(pledgeOf(accuser, 10 * PENALTY));
    const outcome = await l.outcome();
    assert.equal(outcome.cheat, "fraud");
    assert.equal(outcome.honest, "final");
    assert.deepEqual(outcome.accuser, { balance: REWARD, stake: 10 * PENALTY, locked: 0 });
    assert.equal((await l.stats()).fraudProofsChecked, 1, "only the finder's proof is checked");
  } finally {
    await system.shutdown();
    await Deno.remove(root, { recursive: true });
  }
});

// -------------------------------------------------------------------------------------------------
// The hold of fraud proofs waiting for their accuser's pledge on its own
// (`actors/_pledge_held_proofs.ts`): one per accuser and receipt, bounded per accuser, per
// receipt and in all, the longest held pushed out first, and taken whole when the pledge comes.
// (What a validator does with it: the first section of this file.)

/** An accuser's key (32 bytes, `n` in the first). */
const key = (n: number) => new Uint8Array(32).fill(0).map((_, i) => i === 0 ? n : i);
/** A receipt (only its fields matter here: the hold never verifies). */
const receipt = (n: number) => ({ jobId: `job-${n}`, worker: key(255) }) as unknown as Receipt;
/** `accuser`'s proof about receipt `r`, hashed `hash`. */
const held = (accuser: number, r: number, hash = `${accuser}/${r}`) => ({
  proof: { receipt: receipt(r), validator: key(accuser) } as unknown as FraudProof,
  hash,
});
const accusers = (h: PledgeHeldProofs) => h.all().map((p) => p.proof.validator[0]);

Deno.test("one proof per accuser and receipt: a copy, or the same accusation re-signed, is not held", () => {
  const hold = new PledgeHeldProofs();
  assert.equal(hold.hold(held(1, 1)), true);
  assert.equal(hold.hold(held(1, 1)), false, "the same hash");
  assert.equal(hold.hold(held(1, 1, "re-signed")), false, "another hash, the same accusation");
  assert.equal(hold.size, 1);
});

Deno.test("an accuser's ninth held proof pushes out its own longest held, not another accuser's", () => {
  const hold = new PledgeHeldProofs();
  hold.hold(held(9, 100));
  for (let r = 0; r <= MAX_PLEDGE_HELD_PER_ACCUSER; r++) assert.ok(hold.hold(held(1, r)));
  assert.equal(hold.size, MAX_PLEDGE_HELD_PER_ACCUSER + 1);
  assert.equal(hold.holds("1/0"), false, "its first went");
  assert.equal(hold.holds("9/100"), true);
});

Deno.test("a receipt's fifth held proof pushes out that receipt's longest held: a finder arriving after a flood about its receipt is held", () => {
  const hold = new PledgeHeldProofs();
  for (let a = 0; a < 10; a++) hold.hold(held(a, 7));
  assert.equal(hold.size, MAX_PLEDGE_HELD_PER_RECEIPT);
  assert.ok(hold.hold(held(200, 7)));
  assert.equal(hold.holds("200/7"), true);
  assert.deepEqual(accusers(hold), [7, 8, 9, 200]);
});

Deno.test("past the total, the longest held goes; taken by accuser, in arrival order, and forgotten", () => {
  const hold = new PledgeHeldProofs();
  for (let i = 0; i < MAX_PLEDGE_HELD_PROOFS + 10; i++) hold.hold(held(i % 250, 1000 + i));
  assert.equal(hold.size, MAX_PLEDGE_HELD_PROOFS);
  assert.equal(hold.holds("0/1000"), false);
  assert.equal(
    hold.holds(`${MAX_PLEDGE_HELD_PROOFS + 9}/${1000 + MAX_PLEDGE_HELD_PROOFS + 9}`),
    true,
  );
  hold.hold(held(50, 1, "late"));
  const taken = hold.take(toHex(key(50)));
  assert.deepEqual(taken.map((t) => t.hash), ["50/1050", "late"]);
  assert.equal(hold.take(toHex(key(50))).length, 0);
  assert.equal(hold.size, MAX_PLEDGE_HELD_PROOFS - 2, "the late one pushed out the next oldest");
});

// -------------------------------------------------------------------------------------------------
// The budget of fraud-proof checks not backed by their accuser's stake on its own
// (`actors/_unbacked_checks.ts`): a few per receipt ever, whatever the number of keys, a cap in
// flight, and one per accuser and receipt at a time. (What a validator does with it: the first
// section of this file, `tests/actors/validator_fraud_proof_intake_test.ts`.)

/** The receipts' window end (ledger clock, ms): these tests never pass it. */
const UNTIL = 1_000;

Deno.test("a receipt takes a few unbacked checks ever, however many keys accuse it and whether or not they ended", () => {
  const checks = new UnbackedChecks();
  for (let i = 0; i < MAX_UNBACKED_CHECKS_PER_RECEIPT; i++) {
    assert.equal(checks.available("r", `k${i}`), true);
    checks.take("r", `k${i}`, `h${i}`, UNTIL);
    checks.done(`h${i}`);
  }
  assert.equal(checks.available("r", "fresh-key"), false);
  assert.equal(checks.available("other", "fresh-key"), true);
  assert.equal(checks.inFlight, 0);
});

Deno.test("unbacked checks in flight are capped over every receipt, and one accuser's copy of an accusation waits for the first", () => {
  const checks = new UnbackedChecks();
  checks.take("r0", "k", "h0", UNTIL);
  assert.equal(checks.available("r0", "k"), false, "the same accuser and receipt, in flight");
  assert.equal(checks.available("r0", "j"), true);
  for (let i = 1; i < MAX_UNBACKED_CHECKS_IN_FLIGHT; i++) checks.take(`r${i}`, "k", `h${i}`, UNTIL);
  assert.equal(checks.inFlight, MAX_UNBACKED_CHECKS_IN_FLIGHT);
  assert.equal(checks.available("new", "j"), false);
  checks.done("h3");
  assert.equal(checks.available("new", "j"), true);
});

// -------------------------------------------------------------------------------------------------
// The unbacked checks a receipt has spent (`actors/_unbacked_checks.ts`: proofs from pledged
// accusers whose stake does not cover the penalty, at most 3 per receipt) are kept across a
// restart with the held evidence (`actors/_held_evidence.ts`). Before, the count was memory only:
// each restart granted every receipt 3 more forward passes on its accusers' unbacked word, so
// keys with spent stake and a validator made to restart bought checks without bound.

const RESTART_PEER = "ab".repeat(32);
/** Pledged, but below the false-accusation penalty: each proof of theirs is checked unbacked. */
const SHORT_STAKE = DEFAULT_ECONOMICS.falseAccusationPenalty / 10;

Deno.test("a receipt's unbacked checks spent before a restart stay spent after it: a 4th unbacked proof is not checked", async () => {
  const dir = await Deno.makeTempDir();
  const clock = { t: START };
  const [me, worker, requester] = Array.from({ length: 3 }, Identity.generate);
  const accusers = Array.from({ length: MAX_UNBACKED_CHECKS_PER_RECEIPT + 1 }, Identity.generate);
  const system = new ActorSystem({ name: "unbacked-restart" });
  try {
    const spawn = () =>
      spawnValidator(system, {
        identity: me,
        ledgerDir: join(dir, "ledger"),
        clock,
        challengeProbability: 0,
        models: HONEST_MODELS,
      });
    let validator: ActorRef<ValidatorMessage> = await spawn();
    const stats = () => validator.ask<ValidatorStats>({ type: "stats" });
    await validator.ask({ type: "deposit", key: worker.publicKey, amount: 100_000 });
    for (const key of accusers) {
      const pledge = signStakePledge(key, SHORT_STAKE, 1);
      assert.equal(await validator.ask({ type: "pledge", pledge, origin: RESTART_PEER }), true);
    }
    const job = textJob(requester, "unbacked-restart");
    const { receipt } = await proveOn(job, worker);
    assert.equal((await announceAssigned(validator, receipt, job, requester)).recorded, true);
    const accuse = (by: Identity) =>
      validator.ask<FraudProofHandled>({
        type: "fraud_proof",
        proof: falseProof(receipt, by),
        origin: RESTART_PEER,
      });

    // Each accuser's false proof is checked unbacked, up to the receipt's budget.
    for (const [n, key] of accusers.slice(0, -1).entries()) {
      const handled = await accuse(key);
      assert.equal(handled.queued, true, `unbacked proof ${n + 1} was not checked`);
      await eventually(async () => (await stats()).fraudProofsChecked === n + 1, "the check");
    }

    await system.stop("node/validator");
    validator = await spawn();
    const handled = await accuse(accusers.at(-1)!);
    assert.equal(handled.queued, false, "a restart granted the receipt more unbacked checks");
    assert.equal(handled.skipped, "unstaked_accuser");
    assert.equal((await stats()).fraudProofsChecked, 0);
    // The receipt itself is judged as it would be without the proofs: pending, paid at the end.
    const record = await validator.ask<{ status: string }>({
      type: "receipt_status",
      receiptId: receiptId(receipt),
    });
    assert.equal(record.status, "pending");
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("spent unbacked checks are kept only while their receipt's window is open, and what is read back never lowers a count nor raises it past the budget", () => {
  const checks = new UnbackedChecks();
  checks.take("open", "k", "h1", 2_000);
  checks.take("closed", "k", "h2", 500);
  assert.deepEqual(checks.spent(1_000), [{ receiptId: "open", checks: 1, until: 2_000 }]);
  const restarted = new UnbackedChecks();
  restarted.take("open", "j", "h3", 2_000);
  restarted.take("open", "i", "h4", 2_000);
  restarted.restore([
    { receiptId: "open", checks: 1, until: 2_000 }, // fewer than spent here: not lowered
    { receiptId: "flood", checks: 99, until: 2_000 }, // past the budget: the budget
    { receiptId: "bad", checks: "3", until: 2_000 },
    null,
    "garbage",
  ]);
  assert.deepEqual(restarted.spent(1_000), [
    { receiptId: "open", checks: 2, until: 2_000 },
    { receiptId: "flood", checks: MAX_UNBACKED_CHECKS_PER_RECEIPT, until: 2_000 },
  ]);
  assert.equal(restarted.available("flood", "fresh"), false);
});

Deno.test("an unbacked check still in flight is not kept as spent beside its proof: the proof spends it again when taken up after the stop", () => {
  const checks = new UnbackedChecks();
  checks.take("open", "k", "h1", 2_000);
  checks.take("open", "j", "h2", 2_000);
  checks.done("h1");
  const kept = new Set(["h2"]);
  assert.deepEqual(checks.spentSettled(1_000, kept), [{
    receiptId: "open",
    checks: 1,
    until: 2_000,
  }]);
  assert.deepEqual(checks.spent(1_000), [{ receiptId: "open", checks: 2, until: 2_000 }]);
  checks.done("h2");
  assert.deepEqual(checks.spentSettled(1_000, kept), [{
    receiptId: "open",
    checks: 2,
    until: 2_000,
  }]);
});

Deno.test("an unbacked check in flight whose proof is not kept beside the counts stays spent: the restart does not grant its receipt the check again", () => {
  const checks = new UnbackedChecks();
  checks.take("open", "k", "h1", 2_000);
  checks.take("open", "j", "h2", 2_000);
  assert.deepEqual(checks.spentSettled(1_000, new Set(["h1"])), [
    { receiptId: "open", checks: 1, until: 2_000 },
  ]);
  assert.deepEqual(checks.spentSettled(1_000, new Set()), [
    { receiptId: "open", checks: 2, until: 2_000 },
  ]);
});
