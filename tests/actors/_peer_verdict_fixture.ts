/**
 * A ValidatorActor with a fake ledger clock, a recording network and workers whose proof data
 * the test controls (served, withheld, or held back until released), for tests of what peers'
 * verdicts can make a ledger do: `validator_peer_verdicts_test.ts`, `validator_takeover_test.ts`.
 * Also the floods of receipts that push older ones out of a validator's memory (`floodReceipts`,
 * `floodAssignedReceipts`), for the claim tests here (`validator_claim_evidence_test.ts`,
 * `validator_withheld_test.ts`) and in `tests/network/`.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { ActorRef } from "../../actors/actor_ref.ts";
import type { ReceiptHandled, ValidatorMessage } from "../../actors/validator_actor.ts";
import type { NetworkMessage } from "../../network/network_actor.ts";
import { Identity } from "../../protocols/identity.ts";
import { toHex } from "../../protocols/hash.ts";
import { jobId, MAX_NETWORK_JOB_BYTES, type TextJob } from "../../protocols/job.ts";
import { inputHashOf, type Receipt, receiptId, signReceipt } from "../../protocols/receipt.ts";
import { signVerdict, type Verdict } from "../../protocols/verdict.ts";
import type { ProofData } from "../../proof/commitment.ts";
import { type ServedProof, signServedProof } from "../../proof/served_proof.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { LOG_FILE } from "../../proof/ledger_log.ts";
import { type JobAssignment, signAssignment } from "../../protocols/assignment.ts";
import { RecordingNetwork } from "../_helpers/recording_network.ts";
import {
  announceAssigned,
  f,
  ledgerReads,
  proveOn,
  spawnValidator,
  START,
  textJob,
} from "./_validator_fixture.ts";

export { f, START };
const NETWORK = "test/network";
/** Each worker's and each claimant's stake. */
export const STAKE = 1_000_000;
/** The peer every receipt and verdict comes from (hex), unless a test names another. */
export const PEER = "ee".repeat(32);

/** What the validator is set up with. */
export interface FixtureOptions {
  /** Its challenge probability (its own coin). */
  p: number;
  /** Whether it holds the receipts' model; `"throws"`: asking for it fails (a broken store). */
  model: boolean | "throws";
}

/** A receipt proved by a worker: its id, the receipt and its job. */
export interface Proved {
  id: string;
  receipt: Receipt;
  job: TextJob;
  proof: ProofData;
}

/** Start a validator; see {@link FixtureOptions}. */
export async function startValidator(options: FixtureOptions) {
  const clock = { t: START };
  const dir = await Deno.makeTempDir();
  const system = new ActorSystem({ name: "peer-verdicts" });
  const told: NetworkMessage[] = [];
  /** What each worker serves per receipt id (absent: withheld); a promise answers later. */
  const served = new Map<string, ServedProof | Promise<ServedProof | undefined>>();
  const me = Identity.generate();
  const requester = Identity.generate();
  let fetches = 0;
  await system.spawn<NetworkMessage>({ name: NETWORK, factory: () => new RecordingNetwork(told) });
  const validator = await spawnValidator(system, {
    identity: me,
    ledgerDir: `${dir}/ledger`,
    clock,
    challengeProbability: options.p,
    network: NETWORK,
    models: {
      get: (cid) =>
        options.model === "throws"
          ? Promise.reject(new Error("model store unreadable"))
          : Promise.resolve(options.model && cid === f.honest.info.cid ? f.honest : undefined),
    },
    source: {
      proof: (r) => {
        fetches++;
        return Promise.resolve(served.get(receiptId(r)));
      },
    },
  });
  // Its own fraud proofs are settled only with stake of its own behind them.
  await validator.ask({ type: "deposit", key: me.publicKey, amount: STAKE });
  const ledger = ledgerReads(() => validator, clock);
  let n = 0;
  return {
    me,
    validator,
    told,
    served,
    clock,
    /** How many times a worker was asked for its proof data. */
    fetches: () => fetches,
    stats: ledger.stats,
    /** A new key with stake here (a worker, or a validator whose verdicts count here). */
    async staked(): Promise<Identity> {
      const key = Identity.generate();
      await validator.ask({ type: "deposit", key: key.publicKey, amount: STAKE });
      return key;
    },
    /** `worker`'s proved job, serving its proof data (signed). Not yet announced. */
    async prove(worker: Identity): Promise<Proved> {
      const job = textJob(requester, `job-${n++}`, {
        prompt: "The validator",
        params: { maxTokens: 4, temperature: 0.7, topK: 0, topP: 1, seed: 4, stop: [] },
      });
      const proved = await proveOn(job, worker);
      const id = receiptId(proved.receipt);
      served.set(id, signServedProof(id, proved.proof, worker));
      return { id, receipt: proved.receipt, job, proof: proved.proof };
    },
    /** A peer announces `proved` with the requester's assignment. */
    announce(proved: Proved): Promise<ReceiptHandled> {
      return announceAssigned(validator, proved.receipt, proved.job, requester, { origin: PEER });
    },
    /** A verdict by `by` about `proved`, with `details`. */
    verdict(
      proved: Proved,
      by: Identity,
      outcome: Verdict["outcome"],
      reason: string,
      details?: Verdict["details"],
    ): Verdict {
      return signVerdict({
        v: 1,
        subject: "inference",
        subjectId: proved.id,
        target: proved.receipt.worker,
        outcome,
        reason,
        ...(details ? { details } : {}),
        issuedAt: clock.t,
      }, by);
    },
    /** A peer's verdict arrives (from its author's own connection). */
    tell(verdict: Verdict): Promise<string | undefined> {
      return validator.ask<string | undefined>({
        type: "verdict",
        verdict,
        origin: toHex(verdict.validator),
      });
    },
    /** `by`'s "proof withheld" claim about `proved`. */
    claimWithheld(proved: Proved, by: Identity): Promise<string | undefined> {
      return this.tell(this.verdict(proved, by, "invalid", "proof_unavailable"));
    },
    /**
     * The receipt and its job as the network delivers them ahead of a claim, from `from` (a copy
     * of `proved`'s, or with `overrides`): a receipt this validator forgot while it was pending
     * here is remembered again (review s57).
     */
    resend(
      proved: Proved,
      from: Identity,
      overrides: { receipt?: unknown; job?: TextJob } = {},
    ): Promise<{ recorded: boolean; refusal?: string }> {
      return validator.ask<{ recorded: boolean; refusal?: string }>({
        type: "receipt",
        receipt: overrides.receipt ?? proved.receipt,
        job: overrides.job ?? proved.job,
        origin: toHex(from.publicKey),
      });
    },
    /**
     * `worker`'s proved job, recorded here (its proof data `served` or withheld), then pushed out
     * of this validator's memory by a new staked flooder's {@link floodReceipts} (named `tag`).
     */
    async recordForgotten(worker: Identity, served: boolean, tag: string): Promise<Proved> {
      const proved = await this.prove(worker);
      if (!served) this.served.delete(proved.id);
      assert.equal((await this.announce(proved)).recorded, true);
      const flooder = await this.staked();
      const { receipt: shape } = await proveOn(
        textJob(Identity.generate(), `${tag}-shape`),
        flooder,
      );
      await floodReceipts(validator, flooder, shape, tag);
      return proved;
    },
    /** The verdicts this validator passed on (or published), in order. */
    published: (): Verdict[] =>
      told.flatMap((m) => m.type === "publish_verdict" ? [m.verdict] : []),
    /** Challenges run off the mailbox: wait for every open one to end. */
    drained: ledger.drained,
    record: ledger.record,
    account: ledger.account,
    /** The ledger log's size on disk, bytes (appended to for good: what a verdict costs). */
    async logBytes(): Promise<number> {
      return (await Deno.stat(`${dir}/ledger/${LOG_FILE}`)).size;
    },
    /** Move the clock past the challenge window and finalize: what is paid is paid now. */
    async closeWindow(): Promise<void> {
      clock.t += DEFAULT_ECONOMICS.challengeWindowMs + 1;
      const finalized = await validator.ask({ type: "finalize" });
      assert.notEqual(finalized, undefined);
    },
    async close(): Promise<void> {
      await system.shutdown();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/** Receipts for near-maximal jobs: 160 take about 70 MiB, past a validator's 64 MiB memory. */
const FLOOD = 160;
/** A prompt that leaves a job just inside `MAX_NETWORK_JOB_BYTES`. */
const BIG_PROMPT = "x".repeat(MAX_NETWORK_JOB_BYTES - 1024);

/**
 * `flooder`'s receipts for near-maximal jobs of `requester` (each consistent with its job, shaped
 * as `shape`), each handed to `validator` with what `delivery` adds for its job, and recorded.
 */
async function flood(
  validator: ActorRef<ValidatorMessage>,
  flooder: Identity,
  shape: Receipt,
  requester: Identity,
  tag: string,
  delivery: (job: TextJob) => { origin: string } | { assignment: JobAssignment },
): Promise<void> {
  const { sig: _sig, worker: _worker, ...unsigned } = shape;
  for (let n = 0; n < FLOOD; n++) {
    const job: TextJob = { ...textJob(requester, `${tag}-flood-${n}`), prompt: BIG_PROMPT };
    const receipt = signReceipt(
      { ...unsigned, jobId: jobId(job), inputHash: inputHashOf(job) },
      flooder,
    );
    const handled = await validator.ask<{ recorded: boolean }>({
      type: "receipt",
      receipt,
      job,
      ...delivery(job),
    });
    assert.equal(handled.recorded, true);
  }
}

/**
 * `flooder`'s receipts for near-maximal jobs (each consistent with its job, shaped as `shape`),
 * recorded by `validator`: enough to push every older receipt out of its memory (reviews s57, s58).
 */
export function floodReceipts(
  validator: ActorRef<ValidatorMessage>,
  flooder: Identity,
  shape: Receipt,
  tag: string,
): Promise<void> {
  return flood(validator, flooder, shape, Identity.generate(), tag, () => ({
    origin: "ab".repeat(32),
  }));
}

/**
 * `flooder`'s receipts for near-maximal jobs of `requester`, each with the requester's assignment
 * (shaped as a receipt of `flooder`'s own, consistent with its job), recorded by `validator` as
 * its own node's: enough to push every older receipt out of its memory (network tests of reviews
 * s57, s58). `tag` names the jobs.
 */
export async function floodAssignedReceipts(
  validator: ActorRef<ValidatorMessage>,
  flooder: Identity,
  requester: Identity,
  tag: string,
): Promise<void> {
  const { receipt: shape } = await proveOn(textJob(requester, `${tag}-shape`), flooder);
  await flood(validator, flooder, shape, requester, tag, (job) => ({
    assignment: signAssignment({ job, worker: flooder.publicKey, issuedAt: 0 }, requester),
  }));
}
