/**
 * The validator's receipt intake (`actors/_receipt_intake.ts`): stale receipts refused, an empty
 * prompt's receipt is termination fraud, only what this ledger can check is credited, a refusal
 * does not show the challenge coin, and receipts that come before their worker's pledge are kept or
 * said not kept. Asserted on the ledger: who is paid for what.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import {
  DEFAULT_PROOF_RETENTION_MS,
  type ProveHandle,
  ProverActor,
  type ProverMessage,
} from "../../actors/prover_actor.ts";
import { type ServedProof, signServedProof } from "../../proof/served_proof.ts";
import { Identity } from "../../protocols/identity.ts";
import { jobId, type TextJob } from "../../protocols/job.ts";
import { type Receipt, receiptId } from "../../protocols/receipt.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import {
  announceAssigned,
  f,
  HONEST_MODELS,
  inLedgerDir,
  ledgerReads,
  proveOn,
  spawnValidator,
  START,
  textJob,
} from "./_validator_fixture.ts";
import { manualStream } from "../proof/_models.ts";
import { eventually } from "../_helpers/wait.ts";
import { signStakePledge } from "../../protocols/stake_pledge.ts";
import { CLOCK_SKEW_MS, MAX_RECEIPT_AGE_MS } from "../../proof/challenge_timing.ts";
import type { ReceiptHandled, ValidatorMessage } from "../../actors/validator_actor.ts";
import { signAssignment } from "../../protocols/assignment.ts";
import { proveJob } from "../../proof/prover.ts";
import {
  INSUFFICIENT_STAKE_NOT_KEPT,
  type ValidatorModelSource,
} from "../../actors/validator_messages.ts";
import { join } from "node:path";
import { DRAWN_CHALLENGES_DIR } from "../../actors/_receipt_files.ts";
import { pathExists } from "../../storage/path_exists.ts";
import {
  MAX_AWAITING_STAKE_PER_WORKER,
  MAX_AWAITING_STAKE_WORKERS,
} from "../../actors/_validator_memory.ts";
import type { ActorRef } from "../../actors/actor_ref.ts";

// -------------------------------------------------------------------------------------------------
// A receipt first recorded long after its worker signed it (`MAX_RECEIPT_AGE_MS`): anyone
// holding a receipt, its job and its assignment can replay it to a ledger that has not seen it,
// and a pledge can reach a ledger late. Recorded then, its window would open when the worker has
// rightly deleted its proof data (`DEFAULT_PROOF_RETENTION_MS`), and the coin would get the
// honest worker slashed for withholding. Such a receipt is refused
// (`receipt_stale`): not paid there, never challenged; on time, it is paid as before.

const WORKER_STAKE = 10_000;

/**
 * A worker's prover on `clock`, keeping its proofs in `dir`, and an honest job of `requester`'s
 * proved on it: its receipt, with the prover that answers for it.
 */
async function proveOnWorker(
  system: ActorSystem,
  worker: Identity,
  requester: Identity,
  dir: string,
  clock: { t: number },
) {
  const prover = await system.spawn<ProverMessage>({
    name: "worker/prover",
    factory: () =>
      new ProverActor({
        identity: worker,
        dir: `${dir}/proofs`,
        now: () => clock.t,
        sweepEveryMs: 0,
      }),
  });
  const job = textJob(requester, crypto.randomUUID());
  const ids = f.honest.tokenizer.encode(job.prompt);
  const handle = await prover.ask<ProveHandle>({
    type: "prove",
    job,
    jobId: jobId(job),
    chunks: ReadableStream.from(manualStream(() => f.honest, ids, job.params)),
  });
  const receipt = await handle.receipt;
  return { prover, job, receipt, id: receiptId(receipt) };
}

/** How a ledger first hears of an honest receipt: its clock against the worker's, and when. */
interface Arrival {
  /** The ledger's clock minus the worker's. */
  skewMs: number;
  /** Real time from the worker signing it to the ledger recording it. */
  delayMs: number;
  /** What the ledger does with it. */
  outcome: "paid" | "receipt_stale";
}

const S = CLOCK_SKEW_MS;
const ARRIVALS: Arrival[] = [
  { skewMs: 0, delayMs: 0, outcome: "paid" },
  // The worst honest case allowed: the ledger's clock ahead, the receipt late.
  { skewMs: S, delayMs: MAX_RECEIPT_AGE_MS, outcome: "paid" },
  { skewMs: S, delayMs: MAX_RECEIPT_AGE_MS + 1, outcome: "receipt_stale" },
  // The ledger's clock behind: later in real time, as old by its clock (the worker's retention
  // covers it: `MIN_PROOF_RETENTION_MS`).
  { skewMs: -S, delayMs: MAX_RECEIPT_AGE_MS + 2 * S, outcome: "paid" },
  // Signed ahead of the ledger's clock: taken (its worker answers for it for longer).
  { skewMs: -4 * S, delayMs: 0, outcome: "paid" },
  { skewMs: 0, delayMs: DEFAULT_PROOF_RETENTION_MS + 2 * 60_000, outcome: "receipt_stale" },
];

for (const { skewMs, delayMs, outcome } of ARRIVALS) {
  Deno.test(`an honest receipt reaching a ledger ${delayMs / 1000} s after it was signed, the ledger's clock ${skewMs / 1000} s ahead: ${outcome === "paid" ? "challenged and paid" : `refused (${outcome}), never challenged`}`, async () => {
    const worker = Identity.generate();
    const requester = Identity.generate();
    const me = Identity.generate();
    const dir = await Deno.makeTempDir();
    const clock = { t: START };
    const ledgerClock = { t: START + skewMs };
    const system = new ActorSystem({ name: "stale" });
    try {
      const { prover, job, receipt, id } = await proveOnWorker(
        system,
        worker,
        requester,
        dir,
        clock,
      );

      // Time passes; the worker's periodic sweep forgets what its retention says no challenge
      // can ask for any more.
      clock.t += delayMs;
      ledgerClock.t += delayMs;
      await prover.ask({ type: "sweep" });

      const validator = await spawnValidator(system, {
        identity: me,
        ledgerDir: `${dir}/ledger`,
        clock: ledgerClock,
        challengeProbability: 1, // the coin hits (p of the time at the default p)
        models: { has: (cid) => cid === f.honest.info.cid, ...HONEST_MODELS },
        // The worker's answer to a proof request, as its node's servePeer gives it.
        source: {
          proof: (r) =>
            prover.ask<ServedProof | undefined>({ type: "get_proof", receiptId: receiptId(r) }),
        },
      });
      await validator.ask({ type: "deposit", key: worker.publicKey, amount: WORKER_STAKE });
      const handled = await announceAssigned(validator, receipt, job, requester);
      const ledger = ledgerReads(() => validator, ledgerClock);
      const credit = receipt.tokenCount * DEFAULT_ECONOMICS.defaultTokenPrice;
      if (outcome !== "paid") {
        assert.deepEqual([handled.recorded, handled.refusal, handled.challenged], [
          false,
          outcome,
          false,
        ]);
        assert.equal(await ledger.record(id), undefined);
        const account = await ledger.account(worker.publicKey);
        assert.deepEqual(
          [account.stake, account.balance],
          [WORKER_STAKE, 0],
          "not paid, not slashed",
        );
        return;
      }
      assert.equal(handled.recorded, true);
      const { verdict } = await handled.result!;
      assert.deepEqual([verdict.outcome, verdict.reason], ["valid", "ok"]);
      await ledger.closeWindow();
      assert.equal((await ledger.record(id))!.status, "final");
      const account = await ledger.account(worker.publicKey);
      assert.equal(account.stake, WORKER_STAKE);
      assert.equal(account.balance, credit, "paid");
    } finally {
      await system.shutdown();
      await Deno.remove(dir, { recursive: true });
    }
  });
}

/**
 * The same with nobody misbehaving: the receipt reaches the ledger before the worker's pledge
 * (`insufficient_stake`: kept until the pledge comes); the pledge comes after the worker's
 * retention (the two nodes connect only then). The receipt, taken again, is refused as stale.
 */
Deno.test("an honest worker's receipt that waited for its pledge past the age limit is refused as stale when the pledge comes, never challenged", async () => {
  const worker = Identity.generate();
  const requester = Identity.generate();
  const dir = await Deno.makeTempDir();
  const clock = { t: START };
  const system = new ActorSystem({ name: "stale-pledge" });
  try {
    const { prover, job, receipt, id } = await proveOnWorker(system, worker, requester, dir, clock);
    const validator = await spawnValidator(system, {
      identity: Identity.generate(),
      ledgerDir: `${dir}/ledger`,
      clock,
      challengeProbability: 1,
      models: { has: (cid) => cid === f.honest.info.cid, ...HONEST_MODELS },
      source: {
        proof: (r) =>
          prover.ask<ServedProof | undefined>({ type: "get_proof", receiptId: receiptId(r) }),
      },
    });
    const first = await announceAssigned(validator, receipt, job, requester);
    assert.deepEqual([first.recorded, first.refusal], [false, "insufficient_stake"]);
    clock.t += DEFAULT_PROOF_RETENTION_MS + 2 * 60_000;
    await prover.ask({ type: "sweep" });
    const stats = () => validator.ask<{ refused: number; challenged: number }>({ type: "stats" });
    const refusedBefore = (await stats()).refused;
    await validator.ask({
      type: "pledge",
      pledge: signStakePledge(worker, WORKER_STAKE, START),
      origin: "cd".repeat(32),
    });
    // The waiting receipt is taken again off the mailbox: refused this time, for its age.
    await eventually(
      async () => (await stats()).refused > refusedBefore ? true : undefined,
      "the waiting receipt taken again",
    );
    const ledger = ledgerReads(() => validator, clock);
    assert.equal(await ledger.record(id), undefined, "not recorded");
    assert.equal((await ledger.account(worker.publicKey)).stake, WORKER_STAKE, "stake whole");
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

// -------------------------------------------------------------------------------------------------
// A receipt for a job whose prompt is empty is one no honest worker signs (`generate` refuses
// the job): drawn, it is termination fraud and the worker loses its locked slash. It used to end
// `invalid` without a fraud proof, which the actor settles as unresolved (unpaid, the lock
// released, nobody slashed): a worker that assigned itself such jobs through a second key and
// made their output up was paid whenever the coin missed, and lost nothing when it hit.

Deno.test("a fabricated receipt for an empty-prompt job, drawn and caught, must cost the worker its locked slash", async () => {
  const me = Identity.generate();
  const worker = Identity.generate();
  const requester = Identity.generate(); // a key the worker controls, or a colluding one
  const clock = { t: START };
  const dir = await Deno.makeTempDir();
  const system = new ActorSystem({ name: "empty-prompt" });
  const answers = new Map<string, unknown>();
  try {
    const validator = await spawnValidator(system, {
      identity: me,
      ledgerDir: `${dir}/ledger`,
      clock,
      challengeProbability: 1,
      models: HONEST_MODELS,
      source: { proof: (r) => Promise.resolve(answers.get(receiptId(r)) as never) },
    });
    await validator.ask({ type: "deposit", key: worker.publicKey, amount: 10_000 });
    await validator.ask({ type: "deposit", key: me.publicKey, amount: 1_000 });
    // The job says prompt ""; the worker never ran it: it made tokens up (here, by running
    // another prompt), committed to them and signed.
    const job = textJob(requester, "empty-1", { prompt: "" });
    const made = f.honest.tokenizer.encode("anything at all");
    const proved = await proveJob(job, manualStream(() => f.honest, made, job.params), worker);
    const id = receiptId(proved.receipt);
    answers.set(id, signServedProof(id, proved.proof, worker));
    const handled = await validator.ask<ReceiptHandled>({
      type: "receipt",
      receipt: proved.receipt,
      job,
      assignment: signAssignment({ job, worker: worker.publicKey, issuedAt: START }, requester),
      origin: "ab".repeat(32),
    });
    assert.ok(handled.recorded && handled.challenged);
    const result = await handled.result!;
    const reads = ledgerReads(() => validator, clock);
    await reads.closeWindow();
    const rec = await reads.record(id);
    const acc = await reads.account(worker.publicKey);
    const slash = proved.receipt.tokenCount * DEFAULT_ECONOMICS.defaultTokenPrice *
      DEFAULT_ECONOMICS.slashMultiplier;
    assert.equal(`${result.verdict.outcome}/${result.verdict.reason}`, "fraud/empty_prompt");
    assert.equal(rec?.status, "fraud");
    assert.equal(acc.balance, 0, "not paid");
    assert.equal(acc.stake, 10_000 - slash, "a caught fabrication is slashed");
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

// -------------------------------------------------------------------------------------------------
// Credit only what this ledger can check. A receipt on a model this validator cannot get is
// recorded (the worker's stake locked, slashable, passed on with its assignment) but earns
// nothing here, drawn or not: nothing here could ever catch it, so paying it paid made-up work
// (an auditor's 60 receipts on a model no validator holds, at p = 0.1: 58 paid, none slashed).
// The ledgers of validators that hold the model pay it. The intake asks the model source's
// `has`, loading nothing; a source that cannot say (no `has`) is asked by `get`, and a model
// that fails to load is the validator's own gap: challenged, unpaid, nobody slashed.
// Assertions are on the ledger after the window: status, balance, stake.

/** A model CID no validator here holds. */
const UNHELD = "bafkreiunheldmodelunheldmodelunheldmodelunheldmodelunheld";

/** A validator with `models`, coin `p`, and a worker whose receipts it is handed. */
async function setup(p: number, models: ValidatorModelSource) {
  const me = Identity.generate();
  const worker = Identity.generate();
  const requester = Identity.generate();
  const clock = { t: START };
  const dir = await Deno.makeTempDir();
  const served = new Map<string, ServedProof>();
  const system = new ActorSystem({ name: "unheld-model" });
  const validator = await spawnValidator(system, {
    identity: me,
    ledgerDir: `${dir}/ledger`,
    clock,
    challengeProbability: p,
    models,
    source: { proof: (r: Receipt) => Promise.resolve(served.get(receiptId(r))) },
  });
  await validator.ask({ type: "deposit", key: worker.publicKey, amount: WORKER_STAKE });
  const { record, account, closeWindow } = ledgerReads(() => validator, clock);
  let n = 0;
  return {
    worker,
    /** The worker's honest receipt for a job on `model`, with its job and assignment. */
    async prove(model: string) {
      const job = textJob(requester, `job-${n++}`, { model });
      const proved = await proveOn(job, worker);
      const id = receiptId(proved.receipt);
      served.set(id, signServedProof(id, proved.proof, worker));
      const assignment = signAssignment({ job, worker: worker.publicKey, issuedAt: 0 }, requester);
      return { job, receipt: proved.receipt, id, assignment };
    },
    submit: (message: Omit<Extract<ValidatorMessage, { type: "receipt" }>, "type">) =>
      validator.ask<ReceiptHandled>({ type: "receipt", origin: "ab".repeat(32), ...message }),
    record,
    account: () => account(worker.publicKey),
    closeWindow,
    async close() {
      await system.shutdown();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/** A source holding the honest model, answering `has`, and counting what `get` was asked. */
function countingSource(): ValidatorModelSource & { got: string[]; asked: string[] } {
  const got: string[] = [];
  const asked: string[] = [];
  return {
    got,
    asked,
    has: (cid) => (asked.push(cid), cid === f.honest.info.cid),
    get: (
      cid,
    ) => (got.push(cid), Promise.resolve(cid === f.honest.info.cid ? f.honest : undefined)),
  };
}

for (const p of [1, 0]) {
  Deno.test(`a receipt on a model this validator cannot get earns nothing here (p = ${p}: ${p ? "every coin would draw it" : "never drawn"}); the same worker's receipt on a held model is paid`, async () => {
    const models = countingSource();
    const t = await setup(p, models);
    try {
      const unheld = await t.prove(UNHELD);
      const held = await t.prove(f.honest.info.cid);
      // The worker's own announcement first (no assignment), then the requester's: the late
      // assignment does not bring credit either.
      const bare = await t.submit({ receipt: unheld.receipt, job: unheld.job });
      assert.deepEqual([bare.recorded, bare.uncredited, bare.challenged], [
        true,
        "model_unavailable",
        false,
      ]);
      await t.submit({ receipt: unheld.receipt, job: unheld.job, assignment: unheld.assignment });
      const handled = await t.submit({
        receipt: held.receipt,
        job: held.job,
        assignment: held.assignment,
      });
      assert.equal(handled.uncredited, undefined);
      assert.equal(handled.challenged, p === 1);
      if (handled.result) assert.equal((await handled.result).verdict.outcome, "valid");
      const record = (await t.record(unheld.id))!;
      assert.equal(record.requester !== undefined, true, "the assignment is attached");
      assert.equal(record.credit, 0);
      assert.ok(record.locked > 0, "its stake backs it: slashable like any receipt");
      await t.closeWindow();
      assert.equal((await t.record(unheld.id))?.status, "final");
      assert.equal((await t.record(held.id))?.status, "final");
      const credit = held.receipt.tokenCount * DEFAULT_ECONOMICS.defaultTokenPrice;
      assert.deepEqual(await t.account(), { balance: credit, stake: WORKER_STAKE, locked: 0 });
      // Cheap: the intake asked `has`; the unheld model was never loaded.
      assert.ok(models.asked.includes(UNHELD));
      assert.equal(models.got.includes(UNHELD), false, `get asked for ${models.got}`);
    } finally {
      await t.close();
    }
  });
}

Deno.test("a model source without `has` is asked by `get` at intake: the unheld model's receipt is not paid; a model that fails to load is the validator's gap (unpaid, nobody slashed)", async () => {
  for (const broken of [false, true]) {
    const t = await setup(1, {
      get: (cid) =>
        broken
          ? Promise.reject(new Error("the model file is corrupt"))
          : Promise.resolve(cid === f.honest.info.cid ? f.honest : undefined),
    });
    try {
      const { receipt, job, assignment, id } = await t.prove(broken ? f.honest.info.cid : UNHELD);
      const handled = await t.submit({ receipt, job, assignment });
      assert.equal(handled.recorded, true);
      if (broken) {
        // Held (it is registered) but failing to load: judged in the challenge, not the intake.
        assert.equal(handled.uncredited, undefined);
        const { verdict } = await handled.result!;
        assert.deepEqual([verdict.outcome, verdict.reason], ["inconclusive", "validator_error"]);
      } else {
        assert.deepEqual([handled.uncredited, handled.challenged], ["model_unavailable", false]);
      }
      await t.closeWindow();
      assert.equal((await t.record(id))?.status, broken ? "unpaid" : "final");
      assert.deepEqual(await t.account(), { balance: 0, stake: WORKER_STAKE, locked: 0 });
    } finally {
      await t.close();
    }
  }
});

// -------------------------------------------------------------------------------------------------
// The challenge coin of a receipt the ledger refuses must not show. The ValidatorActor kept a drawn
// receipt on disk (`drawn-challenges/`, a durable write: a temporary file, `fsync`, a rename, a
// directory `fsync`) before asking the ledger to record it, and removed it again when the ledger
// refused it. So a refusal came measurably later (two durable file operations) exactly when the
// coin had drawn the receipt. Any peer may announce a receipt, and a receipt's id leaves out its
// timings: a worker whose stake here is all locked (or whose job another key's unassigned receipt
// holds) could announce each variant of a cheat's receipt (other fingerprint bits, another
// commitment root, another id), be refused every time, time the refusals, and learn without
// committing to anything which variants this validator would challenge; then, once its stake is
// free, send the variant no validator draws, re-signed with fresh timings (the same id): the cheat
// never challenged. Now nothing depends on the coin before the ledger has taken the receipt: the
// draw is kept only for a receipt the ledger records.

Deno.test("a receipt the ledger refuses does no work that depends on its coin (nothing of its draw is written); recorded later, it is drawn and the cheat slashed", () =>
  inLedgerDir(async (ledgerDir) => {
    const clock = { t: START };
    const me = Identity.generate();
    const worker = Identity.generate();
    const requester = Identity.generate();
    const job = textJob(requester, "s52-probe");
    const { receipt, proof } = await proveOn(job, worker, f.otherSeed);
    const id = receiptId(receipt);
    const served = signServedProof(id, proof, worker);
    const system = new ActorSystem({ name: "s52-coin-probe" });
    try {
      const validator = await spawnValidator(system, {
        identity: me,
        ledgerDir,
        clock,
        // Every receipt is drawn: a refusal that depends on the coin shows here.
        challengeProbability: 1,
        models: HONEST_MODELS,
        source: { proof: () => Promise.resolve<ServedProof | undefined>(served) },
      });
      const lock = receipt.tokenCount * DEFAULT_ECONOMICS.defaultTokenPrice *
        DEFAULT_ECONOMICS.slashMultiplier;
      // Staked here, but less than the receipt locks: refused, the probe the worker times.
      await validator.ask({ type: "deposit", key: worker.publicKey, amount: lock - 1 });
      for (let probe = 0; probe < 3; probe++) {
        const handled = await announceAssigned(validator, receipt, job, requester);
        assert.deepEqual([handled.recorded, handled.refusal], [false, "insufficient_stake"]);
      }
      assert.equal(
        await pathExists(join(ledgerDir, DRAWN_CHALLENGES_DIR)),
        false,
        "the draw of a refused receipt was written (and removed): its refusal took longer",
      );
      // With its stake free, the same receipt (one id, one coin) is recorded, drawn and checked.
      await validator.ask({ type: "deposit", key: worker.publicKey, amount: 10_000 });
      const handled = await announceAssigned(validator, receipt, job, requester);
      assert.deepEqual([handled.recorded, handled.challenged], [true, true]);
      await handled.result;
      const reads = ledgerReads(() => validator, clock);
      await reads.drained();
      await reads.closeWindow();
      assert.equal((await reads.record(id))?.status, "fraud");
      assert.equal((await reads.account(worker.publicKey)).balance, 0, "the cheat is not paid");
    } finally {
      await system.shutdown();
    }
  }));

// -------------------------------------------------------------------------------------------------
// What a validator keeps of the receipts that reach it before their worker's pledge
// (`ValidatorMemory.awaitStake`, `actors/_validator_memory.ts`): at most 16 per worker and 256
// workers. It dropped the rest unsaid, and evicted the oldest worker's past the workers, each
// answered `insufficient_stake` as if kept: their senders never sent them again, and the honest
// worker went unpaid here for them. Now what is not kept is answered `INSUFFICIENT_STAKE_NOT_KEPT`
// (its sender sends it again after the pledge: the network half is
// `tests/network/catch_up_receipts_test.ts`), and nothing kept is evicted. Asserted on the
// ledger: who is paid for what.

/** A peer that passes receipts on (hex key). */
const PEER = "ab".repeat(32);

/** `worker`'s receipt of a job `requester` assigned it, and the job. */
interface Work {
  job: TextJob;
  receipt: Receipt;
}

async function work(requester: Identity, worker: Identity, tag: string): Promise<Work> {
  const job = textJob(requester, tag);
  return { job, receipt: (await proveOn(job, worker)).receipt };
}

/** `requester`'s assigned receipt `w`, as a peer announces it. */
function announce(
  validator: ActorRef<ValidatorMessage>,
  requester: Identity,
  { job, receipt }: Work,
): Promise<ReceiptHandled> {
  return validator.ask<ReceiptHandled>({
    type: "receipt",
    receipt,
    job,
    assignment: signAssignment({ job, worker: receipt.worker, issuedAt: 0 }, requester),
    origin: PEER,
  });
}

/** Run `test` on a validator that challenges nothing, its ledger on a clock at `START`. */
async function withValidator(
  name: string,
  test: (
    validator: ActorRef<ValidatorMessage>,
    clock: { t: number },
  ) => Promise<void>,
): Promise<void> {
  await inLedgerDir(async (ledgerDir) => {
    const system = new ActorSystem({ name });
    const clock = { t: START };
    try {
      const validator = await spawnValidator(system, {
        identity: Identity.generate(),
        ledgerDir,
        models: HONEST_MODELS,
        challengeProbability: 0,
        clock,
      });
      await test(validator, clock);
    } finally {
      await system.shutdown();
    }
  });
}

Deno.test("20 receipts of one worker before its pledge: 16 kept (a copy of one takes no room), 4 refused as not kept; once the pledge comes and the 4 are sent again, the worker is paid for all 20", () =>
  withValidator("s62-awaiting-per-worker", async (validator, clock) => {
    const [requester, worker] = [Identity.generate(), Identity.generate()];
    const jobs = MAX_AWAITING_STAKE_PER_WORKER + 4;
    const works: Work[] = [];
    for (let n = 0; n < jobs; n++) works.push(await work(requester, worker, `s62-per-${n}`));
    const refusals = [];
    for (const w of works) refusals.push((await announce(validator, requester, w)).refusal);
    assert.deepEqual(refusals, [
      ...Array(MAX_AWAITING_STAKE_PER_WORKER).fill("insufficient_stake"),
      ...Array(4).fill(INSUFFICIENT_STAKE_NOT_KEPT),
    ], "what is not kept is said");
    // A copy of a kept one, passed on by another peer, takes no room: kept already.
    assert.equal((await announce(validator, requester, works[0])).refusal, "insufficient_stake");

    assert.equal(
      await validator.ask({ type: "pledge", pledge: signStakePledge(worker, 1_000_000, 1) }),
      true,
    );
    const reads = ledgerReads(() => validator, clock);
    const ids = works.map(({ receipt }) => receiptId(receipt));
    await eventually(
      async () => (await reads.record(ids[MAX_AWAITING_STAKE_PER_WORKER - 1])) !== undefined,
      "the kept receipts to be taken again once the pledge came",
    );
    // What its sender does on `INSUFFICIENT_STAKE_NOT_KEPT`, after the pledge.
    for (const w of works.slice(MAX_AWAITING_STAKE_PER_WORKER)) {
      assert.equal((await announce(validator, requester, w)).recorded, true);
    }
    await reads.closeWindow();
    const tokens = works.reduce((sum, { receipt }) => sum + receipt.tokenCount, 0);
    assert.equal(
      (await reads.account(worker.publicKey)).balance,
      tokens * DEFAULT_ECONOMICS.defaultTokenPrice,
      "the worker paid for every job it served",
    );
  }));

Deno.test("receipts of as many fresh keys as a validator keeps waiting do not evict an honest worker's kept receipt: the next key's is refused as not kept, and the honest worker is paid once its pledge comes", () =>
  withValidator("s62-awaiting-workers", async (validator, clock) => {
    const [requester, honest] = [Identity.generate(), Identity.generate()];
    const early = await work(requester, honest, "s62-honest");
    assert.equal((await announce(validator, requester, early)).refusal, "insufficient_stake");
    // A flood of fresh keys that never pledge, one receipt each, fills the workers kept.
    for (let n = 1; n < MAX_AWAITING_STAKE_WORKERS; n++) {
      const flood = await work(requester, Identity.generate(), `s62-flood-${n}`);
      assert.equal((await announce(validator, requester, flood)).refusal, "insufficient_stake");
    }
    const next = await work(requester, Identity.generate(), "s62-flood-past");
    assert.equal(
      (await announce(validator, requester, next)).refusal,
      INSUFFICIENT_STAKE_NOT_KEPT,
      "past the workers kept, a new key's receipt is not kept, and the refusal says so",
    );

    await validator.ask({ type: "pledge", pledge: signStakePledge(honest, 1_000_000, 1) });
    const reads = ledgerReads(() => validator, clock);
    await eventually(
      async () => (await reads.record(receiptId(early.receipt))) !== undefined,
      "the honest worker's kept receipt to be taken again once its pledge came",
    ).catch(() => {}); // evicted: the ledger tells below
    await reads.closeWindow();
    assert.equal(
      (await reads.account(honest.publicKey)).balance,
      early.receipt.tokenCount * DEFAULT_ECONOMICS.defaultTokenPrice,
      "the honest worker's kept receipt was evicted by a flood of fresh keys",
    );
  }));
