/**
 * A worker's conviction does not hang on the order its accuser's pledge and proofs reach a
 * ledger (`actors/_pledge_held_proofs.ts`, `actors/_unbacked_checks.ts`). Each case feeds two
 * ledgers the same signed evidence in two orders and asserts the ledger outcome after the
 * window in both — the receipt's status, the worker's and the accuser's accounts — and that they
 * match.
 *
 * Before: a proof that reached a ledger before its accuser's pledge was skipped
 * (`unstaked_accuser`) and never taken up when the pledge came, so the cheat was paid there and
 * slashed elsewhere; and a valid proof was skipped for stake its accuser's earlier false proof
 * had spent (or its proof held for a late receipt had reserved), where in the other order it
 * convicted first.
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
  f,
  falseProof,
  HONEST_MODELS,
  proveOn,
  spawnValidator,
  START,
  textJob,
} from "./_validator_fixture.ts";

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
