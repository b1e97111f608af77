/**
 * Order and path do not settle anything: honest ledgers that receive the same signed evidence in
 * different orders, or through a ledger that lacks the receipt's model, end with the same receipt
 * statuses and the same accounts for every worker, accuser and requester.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { ActorRef } from "../../actors/actor_ref.ts";
import type {
  FraudProofHandled,
  ReceiptHandled,
  ValidatorMessage,
  ValidatorStats,
} from "../../actors/validator_actor.ts";
import { Identity } from "../../protocols/identity.ts";
import { signAssignment } from "../../protocols/assignment.ts";
import type { TextJob } from "../../protocols/job.ts";
import { type Receipt, receiptId } from "../../protocols/receipt.ts";
import type { FraudProof } from "../../protocols/fraud_proof.ts";
import { signStakePledge } from "../../protocols/stake_pledge.ts";
import { signVerdict } from "../../protocols/verdict.ts";
import { type ServedProof, signServedProof } from "../../proof/served_proof.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { validateReceipt } from "../../proof/validation.ts";
import type { Account, ReceiptRecord } from "../../proof/ledger.ts";
import { prng } from "../_prng.ts";
import { eventually } from "../_helpers/wait.ts";
import { withoutFsync } from "../proof/_ledger_fixtures.ts";
import {
  f,
  falseProof,
  HONEST_MODELS,
  proveOn,
  spawnValidator,
  START,
  textJob,
} from "./_validator_fixture.ts";
import type { Actor } from "../../actors/actor.ts";
import type { FraudCheckResult } from "../../proof/fraud_check.ts";
import type { NetworkMessage } from "../../network/network_actor.ts";
import { toHex } from "../../protocols/hash.ts";

// -------------------------------------------------------------------------------------------------
// Order does not settle anything: two honest ValidatorActors, each with its own ledger, that
// receive the same signed evidence — receipts with their jobs and assignments, stake pledges,
// peers' verdicts, fraud proofs confirmed and false — in different orders end, once every window
// has closed, with the same receipt statuses and the same accounts for every worker, accuser and
// requester ("every honest ledger settles the same signed evidence the same way", DESIGN.md).
//
// A seeded world per case (`tests/_prng.ts`): three workers (one may never pledge), three
// accusers pledging from none to a few false-accusation penalties' worth (so the bound on
// accusations in flight, and stake spent on refuted proofs, are exercised), six receipts of which
// two are cheats run on another model, one confirmed proof per cheat by one accuser, false proofs
// against honest receipts, "valid" verdicts and "proof withheld" claims (the worker serves, so a
// takeover clears), copies, and announcements that lost their assignment on the way. Both
// validators flip no coin of their own (p = 0): only peers' evidence moves anything. Everything is
// shuffled, pledges included: a proof may come before its accuser's pledge, its receipt, or both
// (held for each, `actors/_pledge_held_proofs.ts`), and after its accuser's stake went on a
// refuted proof or is reserved by one held (checked unbacked, `actors/_unbacked_checks.ts`). Each
// message is handled, and the checks it started are settled, before the next (a network that
// spaces them out), so a seed replays exactly. The second validator is, in a second pass,
// restarted part-way over its own ledger directory.
//
// Compared: each receipt's status and lock, and every party's balance, stake and locks. A fraud
// record's `credit` is not: a copy announced without its assignment, settled as fraud before the
// assigned copy came, keeps credit 0 where the other ledger shows 4 (nothing is paid either way).
//
// Left out, as known and accepted: two accusers' confirmed proofs of one receipt (the reward goes
// to whichever a ledger settles first: docs/PROOF.md, "Known limits"). Not drawn here, and pinned
// apart: one accuser's false and confirmed proofs of one receipt, which settle alike in either
// order since review s76 (a refuted proof no longer blocks its accuser's later ones:
// `refuted_then_confirmed_test.ts`, `tests/proof/ledger_refuted_then_confirmed_test.ts`; until
// then the first taken stood, and the cheat was paid where the false one came first). Other
// accusers' false proofs of a cheat receipt are in: refused as `not_pending` once a confirmed one
// settled it, they cost their accuser only in the ledgers that checked them first, until stop 38.

const PENALTY = DEFAULT_ECONOMICS.falseAccusationPenalty;
const WORKER_STAKE = 1_000_000;
/**
 * `LEDGER_ORDER_EXPLORE=1` runs 360 seeds instead of 60 (a few minutes; a report names the seed
 * and both orders of each divergence). It used to lift two constraints that kept clear of
 * divergences not fixed then — every pledge before the other evidence, and each accuser pledging
 * ten penalties — both lifted for every run since stop 40 (a proof that outran its accuser's
 * pledge was skipped for good there, and one whose accuser's stake an earlier refuted proof had
 * spent was skipped in one order and convicted in the other). (Until stop 38 the restarted ledger
 * also had every receipt before any proof: what it held in memory for a receipt was lost at the
 * restart. It is kept across a stop now, `_held_evidence.ts`.)
 */
const EXPLORE = Deno.env.get("LEDGER_ORDER_EXPLORE") === "1";
/** Seeds run (each: two validators, twice). Bounded so the file runs in about a minute. */
const SEEDS = Number(Deno.env.get("LEDGER_ORDER_SEED") ?? (EXPLORE ? 360 : 60));
/** A peer the evidence comes from (hex): the same for every message, so `except` is moot. */
const PEER = "ee".repeat(32);
/** The first seed run (`LEDGER_ORDER_SEED=n`: only seed n). */
const FROM = Number(Deno.env.get("LEDGER_ORDER_SEED") ?? 1);

interface Proved {
  worker: number;
  job: TextJob;
  receipt: Receipt;
  id: string;
  cheat: boolean;
  served: ServedProof;
}

/** The world every seed draws from: proved once, since proving and validating cost passes. */
const requester = Identity.generate();
const workers = [Identity.generate(), Identity.generate(), Identity.generate()];
const accusers = [Identity.generate(), Identity.generate(), Identity.generate()];
/** Receipt i is worker i % 3's; receipts 1 and 4 are cheats (another model, the honest CID). */
const CHEATS = new Set([1, 4]);
const receipts: Proved[] = [];
for (let i = 0; i < 6; i++) {
  const worker = workers[i % 3];
  const job = textJob(requester, `order-${i}`, {
    prompt: "The validator",
    params: { maxTokens: 4, temperature: 0.7, topK: 0, topP: 1, seed: 4, stop: [] },
  });
  const cheat = CHEATS.has(i);
  const proved = await proveOn(job, worker, cheat ? f.otherSeed : f.honest);
  const id = receiptId(proved.receipt);
  receipts.push({
    worker: i % 3,
    job,
    receipt: proved.receipt,
    id,
    cheat,
    served: signServedProof(id, proved.proof, worker),
  });
}
/** Each accuser's confirmed proof of each cheat, by receipt index then accuser. */
const confirmed = new Map<number, FraudProof[]>();
for (const i of CHEATS) {
  const r = receipts[i];
  const proofs: FraudProof[] = [];
  for (const accuser of accusers) {
    const { fraudProof } = await validateReceipt(
      { job: r.job, receipt: r.receipt, proof: r.served.proof },
      f.honest,
      accuser,
      { now: () => START },
    );
    assert.ok(fraudProof, "the cheat is caught");
    proofs.push(fraudProof);
  }
  confirmed.set(i, proofs);
}

/** One piece of evidence, as a message to a validator, with a label for reports. */
interface Evidence {
  label: string;
  message: ValidatorMessage;
}

/** The evidence of `seed`: a multiset of messages (copies included), in drawing order. */
function evidenceOf(seed: number): Evidence[] {
  const rand = prng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)];
  const out: Evidence[] = [];
  const withheldPledge = rand() < 0.2 ? Math.floor(rand() * 3) : -1;
  workers.forEach((w, i) => {
    if (i === withheldPledge) return;
    out.push({
      label: `pledge(W${i})`,
      message: { type: "pledge", pledge: signStakePledge(w, WORKER_STAKE, 1), origin: PEER },
    });
  });
  accusers.forEach((a, i) => {
    // From none to a few penalties: the bound on accusations in flight is exercised.
    const amount = pick([0, 1, 1, 2, 3, 10]) * PENALTY;
    if (amount === 0) return;
    out.push({
      label: `pledge(A${i}=${amount / PENALTY}p)`,
      message: { type: "pledge", pledge: signStakePledge(a, amount, 1), origin: PEER },
    });
  });
  receipts.forEach((r, i) => {
    const assignment = signAssignment(
      { job: r.job, worker: r.receipt.worker, issuedAt: 0 },
      requester,
    );
    out.push({
      label: `receipt(R${i})`,
      message: { type: "receipt", receipt: r.receipt, job: r.job, assignment, origin: PEER },
    });
    if (rand() < 0.25) {
      // A copy relayed without its assignment.
      out.push({
        label: `bare(R${i})`,
        message: { type: "receipt", receipt: r.receipt, job: r.job, origin: PEER },
      });
    }
    if (r.cheat) {
      if (rand() < 0.85) {
        const a = Math.floor(rand() * 3);
        const proof = confirmed.get(i)![a];
        out.push({
          label: `fraud(R${i},A${a})`,
          message: { type: "fraud_proof", proof, origin: PEER },
        });
        for (let other = 0; other < 3; other++) {
          if (other === a || rand() >= 0.3) continue;
          out.push({
            label: `false(R${i},A${other})`,
            message: {
              type: "fraud_proof",
              proof: falseProof(r.receipt, accusers[other]),
              origin: PEER,
            },
          });
        }
        if (rand() < 0.2) {
          out.push({
            label: `fraud(R${i},A${a})'`,
            message: { type: "fraud_proof", proof, origin: PEER },
          });
        }
      }
    } else {
      for (let a = 0; a < 3; a++) {
        if (rand() < 0.3) {
          const proof = falseProof(r.receipt, accusers[a]);
          out.push({
            label: `false(R${i},A${a})`,
            message: { type: "fraud_proof", proof, origin: PEER },
          });
        }
      }
    }
    for (let a = 0; a < 3; a++) {
      const roll = rand();
      if (roll < 0.15 || (roll < 0.25 && !r.cheat)) {
        // "valid", or (on honest work only: the worker serves, so a takeover clears it) a
        // "proof withheld" claim.
        const claim = roll >= 0.15;
        const verdict = signVerdict({
          v: 1,
          subject: "inference",
          subjectId: r.id,
          target: r.receipt.worker,
          outcome: claim ? "invalid" : "valid",
          reason: claim ? "proof_unavailable" : "ok",
          issuedAt: START,
        }, accusers[a]);
        out.push({
          label: `${claim ? "withheld" : "valid"}(R${i},A${a})`,
          message: { type: "verdict", verdict, origin: PEER },
        });
      }
    }
  });
  return out;
}

/** `xs` shuffled by `rand` (Fisher–Yates), pledges among the rest. */
function shuffled(xs: readonly Evidence[], rand: () => number): Evidence[] {
  const out = [...xs];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

/** What is compared: every receipt's record and every party's account, after the windows. */
interface Outcome {
  records: Record<string, ReceiptRecord | undefined>;
  accounts: Record<string, Account>;
}

/** A validator over `dir` that can be restarted, fed messages one at a time. */
async function ledgerOf(system: ActorSystem, name: string, dir: string, clock: { t: number }) {
  const identity = Identity.generate();
  const served = new Map(receipts.map((r) => [r.id, r.served]));
  const spawn = () =>
    spawnValidator(system, {
      name,
      identity,
      ledgerDir: dir,
      clock,
      challengeProbability: 0,
      models: HONEST_MODELS,
      source: { proof: (r) => Promise.resolve(served.get(receiptId(r))) },
    });
  let ref: ActorRef<ValidatorMessage> = await spawn();
  /** Fraud-proof results not settled yet (queued, or held for their receipt). */
  let open: { id: string; result: Promise<unknown>; done: boolean }[] = [];
  const flush = () => ref.ask({ type: "stats" });
  /** Settle what the last message started: checks queued, held proofs their receipt freed. */
  const settle = async () => {
    for (;;) {
      await flush();
      const due = [];
      for (const o of open) {
        if (o.done) continue;
        const rec = await ref.ask<ReceiptRecord | undefined>({
          type: "receipt_status",
          receiptId: o.id,
        });
        if (rec !== undefined) due.push(o);
      }
      if (due.length === 0) break;
      await Promise.allSettled(due.map((o) => o.result));
      for (const o of due) o.done = true;
    }
    // And what no result here waits on: takeovers, and proofs taken again after a restart.
    await eventually(async () => {
      const stats = await ref.ask<ValidatorStats>({ type: "stats" });
      return stats.openChallenges === 0 && stats.fraudProofsChecking === 0;
    }, "takeovers and checks to end");
  };
  return {
    async feed(evidence: Evidence): Promise<void> {
      const answer = await ref.ask(evidence.message);
      if (evidence.message.type === "fraud_proof") {
        const handled = answer as FraudProofHandled;
        if (handled.result !== undefined) {
          open.push({
            id: receiptId((evidence.message.proof as FraudProof).receipt),
            result: handled.result,
            done: false,
          });
        }
      }
      await settle();
    },
    /** Stopped and started again over the same directory (what it held in memory is gone). */
    async restart(): Promise<void> {
      await system.stop(name);
      open = [];
      ref = await spawn();
    },
    async outcome(): Promise<Outcome> {
      clock.t += DEFAULT_ECONOMICS.challengeWindowMs + 1;
      await ref.ask({ type: "finalize" });
      const records: Outcome["records"] = {};
      for (const [i, r] of receipts.entries()) {
        records[`R${i}`] = await ref.ask({ type: "receipt_status", receiptId: r.id });
      }
      const accounts: Outcome["accounts"] = {};
      const parties = [
        ...workers.map((k, i) => [`W${i}`, k] as const),
        ...accusers.map((k, i) => [`A${i}`, k] as const),
        ["requester", requester] as const,
      ];
      for (const [label, key] of parties) {
        accounts[label] = await ref.ask({ type: "account", key: key.publicKey });
      }
      return { records, accounts };
    },
  };
}

/**
 * Feed `first` to one validator and `second` to another (restarting the second after
 * `restartAt` messages, if given), close the windows and return both outcomes.
 */
async function run(
  first: readonly Evidence[],
  second: readonly Evidence[],
  restartAt?: number,
): Promise<[Outcome, Outcome]> {
  const root = await Deno.makeTempDir();
  const system = new ActorSystem({ name: "ledger-order" });
  // No fsync: what is compared is how evidence settles, not durability (the restart is a stop
  // and a start; every write is in the page cache). An fsync per ledger entry, thousands per test.
  try {
    return await withoutFsync(async () => {
      const clock = { t: START };
      const a = await ledgerOf(system, "a/validator", `${root}/a`, clock);
      const b = await ledgerOf(system, "b/validator", `${root}/b`, clock);
      for (const e of first) await a.feed(e);
      for (const [n, e] of second.entries()) {
        if (n === restartAt) await b.restart();
        await b.feed(e);
      }
      // One clock for both: each outcome moves it past the windows; the second's move is moot.
      return [await a.outcome(), await b.outcome()];
    });
  } finally {
    await system.shutdown();
    await Deno.remove(root, { recursive: true });
  }
}

/** Where two outcomes differ, one line each (empty: the same). */
function differences([a, b]: [Outcome, Outcome]): string[] {
  const out: string[] = [];
  for (const key of Object.keys(a.records)) {
    const [x, y] = [a.records[key], b.records[key]];
    if (x?.status !== y?.status || x?.locked !== y?.locked) {
      out.push(`${key}: ${x?.status}/${x?.credit} vs ${y?.status}/${y?.credit}`);
    }
  }
  for (const key of Object.keys(a.accounts)) {
    const [x, y] = [a.accounts[key], b.accounts[key]];
    if (JSON.stringify(x) !== JSON.stringify(y)) {
      out.push(`${key}: ${JSON.stringify(x)} vs ${JSON.stringify(y)}`);
    }
  }
  return out;
}

const labels = (xs: readonly Evidence[]) => xs.map((e) => e.label).join(" ");

Deno.test("two ledgers fed the same signed evidence in two orders settle it the same way: every receipt's status, every worker's, accuser's and requester's account", async () => {
  const failures: string[] = [];
  for (let seed = FROM; seed <= SEEDS; seed++) {
    const evidence = evidenceOf(seed);
    const rand = prng(seed ^ 0x5eed);
    const [one, two] = [shuffled(evidence, rand), shuffled(evidence, rand)];
    const diff = differences(await run(one, two));
    if (diff.length > 0) {
      failures.push(
        `seed ${seed}\n  A: ${labels(one)}\n  B: ${labels(two)}\n  ${diff.join("\n  ")}`,
      );
    }
  }
  assert.deepEqual(failures, []);
});

Deno.test("a ledger restarted part-way through the evidence settles it as one that ran through", async () => {
  const failures: string[] = [];
  for (let seed = FROM; seed <= SEEDS; seed++) {
    const evidence = evidenceOf(seed);
    const rand = prng(seed ^ 0xbeef);
    const [one, two] = [shuffled(evidence, rand), shuffled(evidence, rand)];
    const at = 1 + Math.floor(rand() * (two.length - 1));
    const diff = differences(await run(one, two, at));
    if (diff.length > 0) {
      failures.push(
        `seed ${seed} (restart before #${at})\n  A: ${labels(one)}\n  B: ${labels(two)}\n  ${
          diff.join("\n  ")
        }`,
      );
    }
  }
  assert.deepEqual(failures, []);
});

// -------------------------------------------------------------------------------------------------
// Outcomes across ledgers, not verdicts: a cheat caught by one validator must not keep its pay in
// another honest node's ledger because the evidence stopped on the way. Three nodes in a line —
// the finder V, a ledger A that lacks the receipt's model, a ledger B that holds it — with A's
// NetworkActor stand-in handing to B what A passes on (receipts and fraud proofs), as B's
// NetworkActor would. The receipt travels V's side → A → B; the fraud proof must too.

const ACCUSER_STAKE = 1_000;

type Flush = { type: "flush" };

/** A's network: what A passes on goes to B (answered before the next message is taken). */
class ToB implements Actor<NetworkMessage | Flush> {
  proofsPassed = 0;
  readonly checks: Promise<FraudCheckResult>[] = [];
  constructor(readonly b: () => ActorRef<ValidatorMessage>, readonly from: string) {}
  async receive(message: NetworkMessage | Flush): Promise<unknown> {
    if (message.type === "announce_receipt") {
      const { receipt, job, assignment } = message;
      return await this.b().ask({ type: "receipt", receipt, job, assignment, origin: this.from });
    }
    if (message.type === "publish_fraud_proof") {
      this.proofsPassed++;
      const handled = await this.b().ask<FraudProofHandled>({
        type: "fraud_proof",
        proof: message.proof,
        origin: this.from,
      });
      if (handled.result) this.checks.push(handled.result);
    }
    return true;
  }
}

async function setup() {
  const clock = { t: START };
  const dir = await Deno.makeTempDir();
  const system = new ActorSystem({ name: "outcome-review" });
  const a = Identity.generate();
  const worker = Identity.generate();
  const requester = Identity.generate();
  const finder = Identity.generate();
  const peer: { b?: ActorRef<ValidatorMessage> } = {};
  const toB = new ToB(() => peer.b!, toHex(a.publicKey));
  const netA = await system.spawn<NetworkMessage | Flush>({ name: "a/net", factory: () => toB });
  await system.spawn<NetworkMessage>({ name: "b/net", factory: () => ({ receive: () => true }) });
  const validator = (
    name: string,
    identity: Identity,
    network: string,
    models: typeof HONEST_MODELS,
  ) =>
    spawnValidator(system, {
      name,
      identity,
      ledgerDir: `${dir}/${name}`,
      clock,
      // Neither coin draws the receipt: only the finder's proof can convict the cheat here.
      challengeProbability: 0,
      network,
      models,
    });
  // A holds no model (it cannot check the proof); B holds the receipt's model.
  const va = await validator("a", a, "a/net", { get: () => Promise.resolve(undefined) });
  const b = peer.b = await validator("b", Identity.generate(), "b/net", HONEST_MODELS);
  for (const v of [va, b]) {
    await v.ask({ type: "deposit", key: worker.publicKey, amount: WORKER_STAKE });
    await v.ask({ type: "deposit", key: finder.publicKey, amount: ACCUSER_STAKE });
  }
  // The cheat runs another model under the honest model's CID.
  const job = textJob(requester, crypto.randomUUID(), { prompt: "The validator" });
  const proved = await proveOn(job, worker, f.otherSeed);
  const assignment = signAssignment({ job, worker: worker.publicKey, issuedAt: 0 }, requester);
  /** The finder's fraud proof, signed at `issuedAt` (its validation is deterministic). */
  const accuse = async (issuedAt: number): Promise<FraudProof> => {
    const { fraudProof } = await validateReceipt(
      { job, receipt: proved.receipt, proof: proved.proof },
      f.honest,
      finder,
      { now: () => issuedAt },
    );
    assert.ok(fraudProof, "the finder catches the cheat");
    return fraudProof;
  };
  return {
    a: va,
    b,
    toB,
    worker,
    finder,
    job,
    receipt: proved.receipt,
    id: receiptId(proved.receipt),
    assignment,
    requesterHex: toHex(requester.publicKey),
    accuse,
    flush: () => netA.ask({ type: "flush" }),
    async closeWindow() {
      clock.t += DEFAULT_ECONOMICS.challengeWindowMs + 1;
      for (const v of [va, b]) await v.ask({ type: "finalize" });
    },
    async close() {
      await system.shutdown();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

Deno.test("a fraud proof a ledger cannot check still reaches the ledgers behind it: the cheat is slashed, not paid, wherever the proof can be checked", async () => {
  const t = await setup();
  try {
    // The requester announces the cheat's receipt to A, which records it (earning nothing
    // there: A cannot get the model) and passes it on to B, which credits it.
    const handled = await t.a.ask<ReceiptHandled>({
      type: "receipt",
      receipt: t.receipt,
      job: t.job,
      assignment: t.assignment,
      origin: t.requesterHex,
    });
    assert.equal(handled.recorded, true);
    await t.flush();
    const atB = await t.b.ask<ReceiptRecord>({ type: "receipt_status", receiptId: t.id });
    assert.ok(atB.credit > 0, "B credits the receipt");
    // The finder's proof reaches A: A cannot check it (no model), and must still pass it on.
    const proof = await t.accuse(START);
    const taken = await t.a.ask<FraudProofHandled>({
      type: "fraud_proof",
      proof,
      origin: toHex(t.finder.publicKey),
    });
    const here = await taken.result!;
    assert.deepEqual([here.inconclusive, here.confirmed], [true, false]);
    await t.flush();
    assert.equal(t.toB.proofsPassed, 1, "A passes the proof it could not check on, once");
    const checks = await Promise.all(t.toB.checks);
    assert.deepEqual(checks.map((c) => c.confirmed), [true], "B checks it and confirms it");
    // The same accusation re-signed (a new timestamp, a new hash) is not passed on again: one
    // accusation per accuser and receipt, as a ledger settles one.
    const again = await t.a.ask<FraudProofHandled>({
      type: "fraud_proof",
      proof: await t.accuse(START + 1),
      origin: toHex(t.finder.publicKey),
    });
    assert.equal(again.skipped, "repeated_accusation");
    await t.flush();
    assert.equal(t.toB.proofsPassed, 1);
    await t.closeWindow();
    const locked = atB.locked;
    const inB = await t.b.ask<Account>({ type: "account", key: t.worker.publicKey });
    assert.deepEqual(inB, { balance: 0, stake: WORKER_STAKE - locked, locked: 0 }, "B slashes");
    const finderInB = await t.b.ask<Account>({ type: "account", key: t.finder.publicKey });
    assert.equal(finderInB.balance, locked * DEFAULT_ECONOMICS.validatorRewardShare);
    // A could not check it: no balance moves there, and the cheat earned nothing there either.
    const inA = await t.a.ask<Account>({ type: "account", key: t.worker.publicKey });
    assert.deepEqual(inA, { balance: 0, stake: WORKER_STAKE, locked: 0 });
  } finally {
    await t.close();
  }
});
