/**
 * The set-up the validator tests share: a ValidatorActor whose ledger runs on a clock the test
 * moves (no finalize timer: the test finalizes), the honest model fixture, a worker's proved job
 * with the requester's assignment, and the ledger reads a test asserts on after the window.
 * What a test varies (its coin, its models, its network, where proof data comes from) it passes.
 *
 * @module
 */
import { eventually } from "../_helpers/wait.ts";
import type { ActorRef } from "../../actors/actor_ref.ts";
import type { ActorSystem } from "../../actors/actor_system.ts";
import {
  type ReceiptHandled,
  ValidatorActor,
  type ValidatorActorOptions,
  type ValidatorMessage,
  type ValidatorStats,
} from "../../actors/validator_actor.ts";
import type { ValidatorModelSource } from "../../actors/validator_messages.ts";
import type { TextModel } from "../../inference/text_model.ts";
import { signAssignment } from "../../protocols/assignment.ts";
import { toHex } from "../../protocols/hash.ts";
import type { Identity } from "../../protocols/identity.ts";
import type { TextJob } from "../../protocols/job.ts";
import type { Receipt } from "../../protocols/receipt.ts";
import { type FraudProof, signFraudProof } from "../../protocols/fraud_proof.ts";
import { signVerdict, type Verdict } from "../../protocols/verdict.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import type { Account, ReceiptRecord } from "../../proof/ledger.ts";
import { proveJob } from "../../proof/prover.ts";
import { loadFixture, manualStream } from "../proof/_models.ts";

/** The model fixtures (`f.honest` is the model a job names; `f.otherSeed` a cheat's). */
export const f = await loadFixture();
/** The ledger clock's start (ms). */
export const START = 1_000_000;

/** A validator's models: the honest model, by its CID; nothing else. */
export const HONEST_MODELS: ValidatorModelSource = {
  get: (cid) => Promise.resolve(cid === f.honest.info.cid ? f.honest : undefined),
};

/** The ledger's clock, ms; the test moves it. */
export interface LedgerClock {
  t: number;
}

/** A validator's options but its ledger clock and finalize timer; `name` its registry name. */
export type ValidatorSetup = Omit<ValidatorActorOptions, "ledger" | "finalizeIntervalMs"> & {
  clock: LedgerClock;
  /** Registry name; default `node/validator`. */
  name?: string;
};

/** Spawn a validator in `system` whose ledger reads `clock` and that finalizes only when told. */
export function spawnValidator(
  system: ActorSystem,
  { clock, name = "node/validator", ...options }: ValidatorSetup,
): Promise<ActorRef<ValidatorMessage>> {
  return system.spawn<ValidatorMessage>({
    name,
    factory: () =>
      new ValidatorActor({
        ...options,
        ledger: { now: () => clock.t },
        finalizeIntervalMs: 0,
      }),
  });
}

/** A text job on the honest model naming `requester`, with `overrides`. */
export function textJob(
  requester: Identity,
  nonce: string,
  overrides: Partial<TextJob> = {},
): TextJob {
  return {
    kind: "text",
    model: f.honest.info.cid,
    prompt: "Settle this",
    params: { maxTokens: 8, temperature: 0.7, topK: 0, topP: 1, seed: 4, stop: [] },
    nonce,
    requester: toHex(requester.publicKey),
    ...overrides,
  };
}

/** `worker` runs `job` on `model` (default the honest one: a cheat runs another) and proves it. */
export function proveOn(
  job: TextJob,
  worker: Identity,
  model: TextModel = f.honest,
): ReturnType<typeof proveJob> {
  const ids = f.honest.tokenizer.encode(job.prompt);
  return proveJob(job, manualStream(() => model, ids, job.params), worker);
}

/** How a receipt is announced: who relays it, and when the requester signed its assignment. */
export interface AnnounceOptions {
  /** The peer it comes from (hex); default `ab…`. */
  origin?: string;
  /** The assignment's `issuedAt`; default 0. */
  issuedAt?: number;
}

/** A peer announces `receipt` with `job` and `requester`'s signed assignment of it. */
export function announceAssigned(
  validator: ActorRef<ValidatorMessage>,
  receipt: Receipt,
  job: TextJob,
  requester: Identity,
  { origin = "ab".repeat(32), issuedAt = 0 }: AnnounceOptions = {},
): Promise<ReceiptHandled> {
  return validator.ask<ReceiptHandled>({
    type: "receipt",
    receipt,
    job,
    assignment: signAssignment({ job, worker: receipt.worker, issuedAt }, requester),
    origin,
  });
}

/** What a test reads of a validator's ledger, and how it closes the window. */
export interface LedgerReads {
  account(key: Uint8Array): Promise<Account>;
  record(id: string): Promise<ReceiptRecord | undefined>;
  stats(): Promise<ValidatorStats>;
  /** Challenges run off the mailbox: wait for every open one to end. */
  drained(): Promise<void>;
  /** Move the clock past the challenge window and finalize: what is paid is paid now. */
  closeWindow(): Promise<void>;
}

/** {@link LedgerReads} of the validator `validator()` returns (it may be restarted) on `clock`. */
export function ledgerReads(
  validator: () => ActorRef<ValidatorMessage>,
  clock: LedgerClock,
): LedgerReads {
  const stats = () => validator().ask<ValidatorStats>({ type: "stats" });
  return {
    account: (key) => validator().ask<Account>({ type: "account", key }),
    record: (id) =>
      validator().ask<ReceiptRecord | undefined>({ type: "receipt_status", receiptId: id }),
    stats,
    async drained() {
      await eventually(async () => (await stats()).openChallenges === 0, "challenges to end");
    },
    async closeWindow() {
      clock.t += DEFAULT_ECONOMICS.challengeWindowMs + 1;
      await validator().ask({ type: "finalize" });
    },
  };
}

/** A false `receipt`-kind proof by `by`: it cites another job, so every checker refutes it (no model needed). */
export function falseProof(receipt: Receipt, by: Identity): FraudProof {
  const unrelated = { kind: "text", model: receipt.model, nonce: "x", prompt: "", params: {} };
  return signFraudProof({
    v: 1,
    kind: "receipt",
    job: unrelated as unknown as TextJob,
    receipt,
    chunks: [],
    cited: [],
    issuedAt: 1,
  } as never, by);
}

/** `by`'s signed "proof withheld" verdict (`invalid / proof_unavailable`) about `target`'s receipt `id`. */
export function withheldVerdict(
  id: string,
  target: Uint8Array,
  issuedAt: number,
  by: Identity,
  details?: Verdict["details"],
): Verdict {
  return signVerdict({
    v: 1,
    subject: "inference",
    subjectId: id,
    target,
    outcome: "invalid",
    reason: "proof_unavailable",
    ...(details === undefined ? {} : { details }),
    issuedAt,
  }, by);
}
