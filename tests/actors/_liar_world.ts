/**
 * A third party's ledger L (a ValidatorActor with a real ledger on disk, on a test clock) facing
 * an honest worker, its requester and a lying or faulty validator (`liar`), from review s75's
 * red-team cases (B1–B7), used by `validator_clock_behind_test.ts`.
 */
import { ActorSystem } from "../../actors/actor_system.ts";
import type { ActorRef } from "../../actors/actor_ref.ts";
import { Identity } from "../../protocols/identity.ts";
import { toHex } from "../../protocols/hash.ts";
import { type Receipt, receiptId } from "../../protocols/receipt.ts";
import type { Verdict } from "../../protocols/verdict.ts";
import type {
  FraudProofHandled,
  ReceiptHandled,
  ValidatorMessage,
} from "../../actors/validator_messages.ts";
import { type ServedProof, signServedProof } from "../../proof/served_proof.ts";
import type { ProofData } from "../../proof/commitment.ts";
import {
  announceAssigned,
  HONEST_MODELS,
  type LedgerClock,
  type LedgerReads,
  ledgerReads,
  proveOn,
  spawnValidator,
  START,
  textJob,
} from "./_validator_fixture.ts";

/** The honest worker's stake in L: far more than any lock, so a slash shows as a shortfall. */
export const WORKER_STAKE = 1_000_000;

/** How the world is set up. */
export interface LiarWorldOptions {
  /** L's challenge probability; default 0 (nothing drawn). */
  p?: number;
  /** The liar's stake in L; default none. */
  liarStake?: number;
  /** L's clock; default `START`. */
  clock?: LedgerClock;
  /** Whether the worker serves a receipt's proof data when asked; default always. */
  serve?: (r: Receipt) => boolean;
  /**
   * Whether L bounds how far ahead of its clock a receipt may be signed (the actor's default,
   * `CLOCK_SKEW_MS`); default false, as the fixture's (its clock starts in 1970).
   */
  leadBound?: boolean;
}

/** One proved job of the honest worker. */
export interface Work {
  job: ReturnType<typeof textJob>;
  receipt: Receipt;
  proof: ProofData;
  id: string;
  /** The end the worker signed (its clock). */
  signedEnd: number;
}

/** The world (see the module doc). */
export interface LiarWorld extends LedgerReads {
  clock: LedgerClock;
  worker: Identity;
  requester: Identity;
  liar: Identity;
  validator: ActorRef<ValidatorMessage>;
  /** How many times L asked the worker for proof data. */
  fetches(): number;
  work(nonce: string): Promise<Work>;
  announce(w: Work): Promise<ReceiptHandled>;
  /** The liar sends `proof`; resolves once its check (if queued) settled. */
  fraud(proof: unknown): Promise<FraudProofHandled>;
  /** The liar sends `verdict`. */
  verdict(verdict: Verdict): Promise<unknown>;
  close(): Promise<void>;
}

/** Build the world (see the module doc). */
export async function liarWorld(opts: LiarWorldOptions = {}): Promise<LiarWorld> {
  const clock = opts.clock ?? { t: START };
  const dir = await Deno.makeTempDir();
  const system = new ActorSystem({ name: "liar-world" });
  const [me, worker, requester, liar] = Array.from({ length: 4 }, Identity.generate);
  const served = new Map<string, ServedProof>();
  let fetches = 0;
  const validator = await spawnValidator(system, {
    identity: me,
    ledgerDir: `${dir}/ledger`,
    clock,
    challengeProbability: opts.p ?? 0,
    // Undefined: the actor's own default, in place of the fixture's "no bound".
    ...(opts.leadBound === true ? { maxReceiptLeadMs: undefined } : {}),
    models: HONEST_MODELS,
    source: {
      proof: (r: Receipt) => {
        fetches++;
        const serves = opts.serve?.(r) ?? true;
        return Promise.resolve(serves ? served.get(receiptId(r)) : undefined);
      },
    },
  });
  await validator.ask({ type: "deposit", key: worker.publicKey, amount: WORKER_STAKE });
  if ((opts.liarStake ?? 0) > 0) {
    await validator.ask({ type: "deposit", key: liar.publicKey, amount: opts.liarStake! });
  }
  return {
    clock,
    worker,
    requester,
    liar,
    validator,
    ...ledgerReads(() => validator, clock),
    fetches: () => fetches,
    async work(nonce) {
      const job = textJob(requester, nonce);
      const proved = await proveOn(job, worker);
      const id = receiptId(proved.receipt);
      served.set(id, signServedProof(id, proved.proof, worker));
      const { startedAt, totalMs } = proved.receipt.timings;
      return {
        job,
        receipt: proved.receipt,
        proof: proved.proof,
        id,
        signedEnd: startedAt + totalMs,
      };
    },
    announce: (w) => announceAssigned(validator, w.receipt, w.job, requester),
    async fraud(proof) {
      const handled = await validator.ask<FraudProofHandled>({
        type: "fraud_proof",
        proof,
        origin: toHex(liar.publicKey),
      });
      if (handled.queued) await handled.result?.catch(() => {});
      return handled;
    },
    verdict: (verdict) =>
      validator.ask({ type: "verdict", verdict, origin: toHex(liar.publicKey) }),
    async close() {
      await system.shutdown();
      await Deno.remove(dir, { recursive: true });
    },
  };
}
