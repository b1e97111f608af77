/**
 * The set-up the validator tests share: a ValidatorActor whose ledger runs on a clock the test
 * moves (no finalize timer: the test finalizes), the honest model fixture, a worker's proved job
 * with the requester's assignment, and the ledger reads a test asserts on after the window.
 * What a test varies (its coin, its models, its network, where proof data comes from) it passes.
 * For the catch-up's tests: a fresh ledger directory, a ledger written holding a conviction's
 * receipt, and what a validator started on it sends a connecting peer.
 *
 * @module
 */
import { eventually } from "../_helpers/wait.ts";
import type { ActorRef } from "../../actors/actor_ref.ts";
import { join } from "node:path";
import { ActorSystem } from "../../actors/actor_system.ts";
import {
  type ReceiptHandled,
  ValidatorActor,
  type ValidatorActorOptions,
  type ValidatorMessage,
  type ValidatorStats,
} from "../../actors/validator_actor.ts";
import type { CatchUpItem, ValidatorModelSource } from "../../actors/validator_messages.ts";
import type { TextModel } from "../../inference/text_model.ts";
import { signAssignment } from "../../protocols/assignment.ts";
import { toHex } from "../../protocols/hash.ts";
import { Identity } from "../../protocols/identity.ts";
import type { TextJob } from "../../protocols/job.ts";
import { type Receipt, receiptId } from "../../protocols/receipt.ts";
import { type FraudProof, fraudProofHash, signFraudProof } from "../../protocols/fraud_proof.ts";
import { signVerdict, type Verdict } from "../../protocols/verdict.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { type Account, Ledger, type ReceiptRecord } from "../../proof/ledger.ts";
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
        // The clock starts at START (1970) while receipts are signed in real time: every one is
        // decades "ahead" of it, so the lead bound (`receipt_from_future`) is off unless a test
        // sets it (`validator_clock_behind_test.ts`).
        maxReceiptLeadMs: Number.POSITIVE_INFINITY,
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

/**
 * A fresh requester's job `nonce` (prompt "The validator") proved by a fresh worker on the honest
 * model, with the requester's assignment of it to that worker: the receipt a claim is about.
 */
export async function assignedProof(nonce: string) {
  const requester = Identity.generate();
  const worker = Identity.generate();
  const job = textJob(requester, nonce, { prompt: "The validator" });
  const proved = await proveOn(job, worker);
  const id = receiptId(proved.receipt);
  const assignment = signAssignment({ job, worker: worker.publicKey, issuedAt: 0 }, requester);
  return { requester, worker, job, proved, id, assignment };
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

/**
 * `model` answering under `as`'s identity (its info, so its CID): a model file swapped for other
 * weights under the same name. A validator on it finds honest work "fraud" with a fraud proof
 * whose check needs the model (a citation), which the real model refutes.
 */
export function disguised(model: TextModel, as: TextModel): TextModel {
  return new Proxy(model, {
    get(target, key) {
      if (key === "info") return as.info;
      const value = Reflect.get(target, key, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

/**
 * A false `receipt`-kind proof by `by`: it cites another job, so every checker refutes it (no
 * model needed). Signed at `issuedAt`: each `issuedAt` another proof, as an accuser re-signing.
 */
export function falseProof(receipt: Receipt, by: Identity, issuedAt = 1): FraudProof {
  const unrelated = { kind: "text", model: receipt.model, nonce: "x", prompt: "", params: {} };
  return signFraudProof({
    v: 1,
    kind: "receipt",
    job: unrelated as unknown as TextJob,
    receipt,
    chunks: [],
    cited: [],
    issuedAt,
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

/** Run `test` with a fresh ledger directory (not yet made), removed after it. */
export async function inLedgerDir(test: (ledgerDir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await test(join(dir, "ledger"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/**
 * Write a ledger in `ledgerDir`, signed by `me` on a clock at `START`: the stakes (10,000 each) of
 * `proof`'s worker and accuser, and the worker's receipt as `requester` assigned it `job`; settled
 * as fraud on `proof` (confirmed) where `fraud`.
 */
export async function ledgerHolding(
  ledgerDir: string,
  me: Identity,
  proof: FraudProof,
  { job, requester, fraud }: { job: TextJob; requester: Identity; fraud: boolean },
): Promise<void> {
  const ledger = await Ledger.open(ledgerDir, me, { now: () => START });
  for (const key of [proof.receipt.worker, proof.validator]) await ledger.deposit(key, 10_000);
  await ledger.recordReceipt(proof.receipt, {
    assignment: signAssignment({ job, worker: proof.receipt.worker, issuedAt: 0 }, requester),
  });
  if (fraud) {
    await ledger.settleFraud({
      receiptId: receiptId(proof.receipt),
      fraudProofHash: fraudProofHash(proof),
      validator: proof.validator,
      confirmed: true,
      reason: "test",
    });
  }
  await ledger.close();
}

/**
 * Start a validator (`identity`) on `ledgerDir` at ledger time `t`, in an actor system of its own
 * shut down after: what it sends a connecting peer (its catch-up), and what it logged.
 */
export async function catchUpAtStart(
  ledgerDir: string,
  identity: Identity,
  t = START,
): Promise<{ items: CatchUpItem[]; log: string[] }> {
  const log: string[] = [];
  const system = new ActorSystem({ name: "catch-up-start" });
  try {
    const validator = await spawnValidator(system, {
      identity,
      ledgerDir,
      clock: { t },
      models: HONEST_MODELS,
      log: (line) => log.push(line),
    });
    await validator.ask<ValidatorStats>({ type: "stats" });
    return { items: await validator.ask<CatchUpItem[]>({ type: "catch_up" }), log };
  } finally {
    await system.shutdown();
  }
}
