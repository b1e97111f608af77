/**
 * The set-up the queued-accusation tests share (`actors/_queued_accusations.ts`): a cheat's
 * receipt, its accuser's confirmed proof, refuted proofs the accuser re-signs, validators whose
 * checks wait on a gate (the model's load), and the ledger outcome a test asserts on after the
 * window: the receipt's status, the worker's and the accuser's accounts.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { ActorSystem } from "../../actors/actor_system.ts";
import type { ActorRef } from "../../actors/actor_ref.ts";
import type {
  FraudProofHandled,
  ValidatorMessage,
  ValidatorModelSource,
  ValidatorStats,
} from "../../actors/validator_actor.ts";
import { Identity } from "../../protocols/identity.ts";
import { signAssignment } from "../../protocols/assignment.ts";
import type { TextJob } from "../../protocols/job.ts";
import { receiptId } from "../../protocols/receipt.ts";
import type { FraudProof } from "../../protocols/fraud_proof.ts";
import { signStakePledge } from "../../protocols/stake_pledge.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { validateReceipt } from "../../proof/validation.ts";
import type { Account, ReceiptRecord } from "../../proof/ledger.ts";
import { eventually } from "../_helpers/wait.ts";
import { f, HONEST_MODELS, proveOn, spawnValidator, START, textJob } from "./_validator_fixture.ts";

export { START };
/** The peer every message comes from. */
export const PEER = "ee".repeat(32);
/** What a refuted proof costs its accuser. */
export const PENALTY = DEFAULT_ECONOMICS.falseAccusationPenalty;
/** The cheating worker's pledge. */
export const WORKER_STAKE = 1_000_000;
/** The accuser's pledge: far more than its proofs in flight reserve. */
export const ACCUSER_STAKE = 100 * PENALTY;
/** Who asked for the job. */
export const requester: Identity = Identity.generate();
/** The worker that cheats (ran another model). */
export const worker: Identity = Identity.generate();
/** The validator that caught it, and re-signs false proofs of it too. */
export const accuser: Identity = Identity.generate();

/** The job the worker cheated on. */
export const job: TextJob = textJob(requester, "queued-accusation", { prompt: "The validator" });
/** The cheat: proved on another model's weights. */
export const cheat = await proveOn(job, worker, f.otherSeed);
/** The requester's assignment of the job to the worker. */
export const assignment = signAssignment({ job, worker: worker.publicKey, issuedAt: 0 }, requester);
/** The cheat's receipt id. */
export const id: string = receiptId(cheat.receipt);
const validated = await validateReceipt(
  { job, receipt: cheat.receipt, proof: cheat.proof },
  f.honest,
  accuser,
  { now: () => START },
);
assert.ok(validated.fraudProof, "the cheat is caught");
/** The accuser's true proof: every checker confirms it. */
export const confirmed: FraudProof = validated.fraudProof;

/** Models that load only once `gate` opens: a check taken before it is still running. */
export function gated(gate: Promise<void>): ValidatorModelSource {
  return {
    get: async (cid) => (await gate, await HONEST_MODELS.get(cid)),
    // The intake asks without loading: the gate holds the checks only.
    has: (cid) => cid === f.honest.info.cid,
  };
}

/** How a test's validator starts. */
export interface QueueLedgerOptions {
  /** Its key (the same one across a restart); default a fresh one. */
  identity?: Identity;
  /**
   * Which pledges it records, then the cheat's receipt: both (default), the worker's only (the
   * accuser's pledge comes later), or none (a restart on a ledger that has them).
   */
  setup?: "both" | "worker" | "none";
}

/** Spawn a validator `name` on ledger `dir`, its checks held by `gate`, set up as `options` say. */
export async function queueLedger(
  system: ActorSystem,
  name: string,
  dir: string,
  clock: { t: number },
  gate: Promise<void>,
  options: QueueLedgerOptions = {},
): Promise<ActorRef<ValidatorMessage>> {
  const setup = options.setup ?? "both";
  const ref: ActorRef<ValidatorMessage> = await spawnValidator(system, {
    name,
    identity: options.identity ?? Identity.generate(),
    ledgerDir: dir,
    clock,
    challengeProbability: 0,
    models: gated(gate),
  });
  if (setup === "none") return ref;
  await pledge(ref, worker, WORKER_STAKE);
  if (setup === "both") await pledge(ref, accuser, ACCUSER_STAKE);
  await ref.ask({ type: "receipt", receipt: cheat.receipt, job, assignment, origin: PEER });
  return ref;
}

/** `who` pledges `amount` at `ref`. */
export async function pledge(
  ref: ActorRef<ValidatorMessage>,
  who: Identity,
  amount: number,
): Promise<void> {
  await ref.ask({ type: "pledge", pledge: signStakePledge(who, amount, 1), origin: PEER });
}

/** Send proofs one after another: how each was handled. */
export async function send(
  ref: ActorRef<ValidatorMessage>,
  proofs: FraudProof[],
): Promise<FraudProofHandled[]> {
  const handled: FraudProofHandled[] = [];
  for (const proof of proofs) {
    handled.push(await ref.ask<FraudProofHandled>({ type: "fraud_proof", proof, origin: PEER }));
  }
  return handled;
}

/** What each proof's check said, once all are settled ("skipped:..." or "dropped"). */
export async function outcomes(
  ref: ActorRef<ValidatorMessage>,
  handled: FraudProofHandled[],
): Promise<string[]> {
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

/** The ledger outcome a test asserts on. */
export interface QueueEnding {
  /** The cheat's receipt's status. */
  status: string;
  /** The worker's balance and stake. */
  worker: { balance: number; stake: number };
  /** The accuser's balance and stake. */
  accuser: { balance: number; stake: number };
}

/** After the window (the clock moved past it, then a finalize): what {@link QueueEnding} says. */
export async function ending(
  ref: ActorRef<ValidatorMessage>,
  clock: { t: number },
): Promise<QueueEnding> {
  clock.t = Math.max(clock.t, START + DEFAULT_ECONOMICS.challengeWindowMs + 1);
  await ref.ask({ type: "finalize" });
  const w = await ref.ask<Account>({ type: "account", key: worker.publicKey });
  const a = await ref.ask<Account>({ type: "account", key: accuser.publicKey });
  return {
    status: (await ref.ask<ReceiptRecord>({ type: "receipt_status", receiptId: id })).status,
    worker: { balance: w.balance, stake: w.stake },
    accuser: { balance: a.balance, stake: a.stake },
  };
}

/**
 * What the ledger ends with when the accuser's refuted and confirmed proofs both settle: the
 * worker slashed and unpaid, the accuser charged one penalty and rewarded (`balance > 0`).
 */
export function assertSlashedAndCharged(end: QueueEnding, label: string): void {
  assert.equal(end.status, "fraud", `${label}: the worker convicted`);
  assert.equal(end.worker.balance, 0, `${label}: the worker unpaid`);
  assert.ok(end.worker.stake < WORKER_STAKE, `${label}: the worker slashed`);
  assert.equal(end.accuser.stake, ACCUSER_STAKE - PENALTY, `${label}: charged for its false proof`);
  assert.ok(end.accuser.balance > 0, `${label}: rewarded for its confirmed proof`);
}
