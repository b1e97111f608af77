/**
 * The receipt and job a takeover of a "proof withheld" claim needs: a peer's receipt recorded and
 * not drawn is kept on disk with its job across a restart; the claim's evidence travels with it, so
 * a flood of receipts cannot make every validator forget a withheld one; and the memory of peers'
 * receipts is bounded in bytes as well as in count.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { ValidatorActivity } from "../../actors/validator_messages.ts";
import { Identity } from "../../protocols/identity.ts";
import { toHex } from "../../protocols/hash.ts";
import { inputHashOf, type Receipt, receiptId, signReceipt } from "../../protocols/receipt.ts";
import { type ServedProof, signServedProof } from "../../proof/served_proof.ts";
import { PENDING_RECEIPTS_DIR, ReceiptFiles } from "../../actors/_receipt_files.ts";
import { signStakePledge } from "../../protocols/stake_pledge.ts";
import { MAX_REMEMBERED_RECEIPTS, ValidatorMemory } from "../../actors/_validator_memory.ts";
import {
  announceAssigned,
  HONEST_MODELS,
  inLedgerDir,
  ledgerReads,
  proveOn,
  spawnValidator,
  START,
  textJob,
  withheldVerdict,
} from "./_validator_fixture.ts";
import type { NetworkMessage } from "../../network/network_actor.ts";
import { type Proved, STAKE, startValidator } from "./_peer_verdict_fixture.ts";
import type { ActorRef } from "../../actors/actor_ref.ts";
import type { ValidatorMessage } from "../../actors/validator_actor.ts";
import { encodeCanonical } from "../../protocols/cbor.ts";
import { jobId, MAX_NETWORK_JOB_BYTES, type TextJob } from "../../protocols/job.ts";
import { copyDirNow } from "../_helpers/copy_dir.ts";

// -------------------------------------------------------------------------------------------------
// A staked peer's "proof withheld" claim (`invalid / proof_unavailable`) that reaches this
// validator after it restarted, about a peer's receipt it recorded (pending, not drawn here) before
// the restart. Taking the claim over needs the receipt and its job (the challenge asks the worker
// for the data that opens the receipt's commitment); the ValidatorActor kept them only in memory,
// so after any restart (a stop, a crash, its supervisor's restart) the claim was recorded and
// passed on but never taken over here: the worker that withheld its proof data from everyone was
// paid in this ledger and slashed in the ledgers that had not restarted.
//
// Now a peer's receipt recorded here and not drawn is kept on disk with its job while it is
// pending (`pending-receipts/`, as a drawn one is kept in `drawn-challenges/` until its challenge
// opens), and read back at the start. Asserted on the ledger: status, balance and stake after the
// window.

const RESTART_STAKE = 10_000;

/**
 * A validator (p = 0: it draws nothing itself) records a peer's receipt, then restarts — stopped
 * (`crash` false), or killed right after the receipt was recorded (`crash`: it starts on a copy
 * of the ledger directory made at that instant, what a `kill -9` there leaves on disk). After the
 * restart a staked peer claims the worker withheld its proof data. The worker withholds here too
 * (`serves` false), or serves it. The window closes. Returns the receipt's status, the worker's
 * account, the receipt's credit and lock, and how often the worker was asked here.
 */
async function claimAfterRestart({ serves, crash }: { serves: boolean; crash: boolean }) {
  let result;
  await inLedgerDir(async (dir) => {
    const clock = { t: START };
    const me = Identity.generate();
    const worker = Identity.generate();
    const claimant = Identity.generate();
    const requester = Identity.generate();
    const job = textJob(requester, `restart-claim-${serves}-${crash}`);
    const { receipt, proof } = await proveOn(job, worker);
    const id = receiptId(receipt);
    const served = signServedProof(id, proof, worker);
    let fetches = 0;
    const ledgerDir = join(dir, "ledger");
    const crashed = join(dir, "crashed");
    const start = (system: ActorSystem, on: string, onActivity?: (a: ValidatorActivity) => void) =>
      spawnValidator(system, {
        identity: me,
        ledgerDir: on,
        clock,
        challengeProbability: 0,
        models: HONEST_MODELS,
        source: {
          proof:
            () => (fetches++,
              Promise.resolve<ServedProof | undefined>(serves ? served : undefined)),
        },
        onActivity,
      });
    const before = new ActorSystem({ name: `s56-restart-claim-before-${serves}-${crash}` });
    try {
      // The kill comes right after the receipt is recorded: no finalize tick, no stop ran since.
      const v = await start(before, ledgerDir, (a) => {
        if (crash && a.kind === "receipt" && a.recorded) copyDirNow(ledgerDir, crashed);
      });
      for (const key of [worker, claimant]) {
        await v.ask({ type: "deposit", key: key.publicKey, amount: RESTART_STAKE });
      }
      const handled = await announceAssigned(v, receipt, job, requester);
      assert.deepEqual([handled.recorded, handled.challenged], [true, false]);
    } finally {
      await before.shutdown();
    }
    const after = new ActorSystem({ name: `s56-restart-claim-after-${serves}-${crash}` });
    try {
      const v = await start(after, crash ? crashed : ledgerDir);
      const ledger = ledgerReads(() => v, clock);
      const { credit, locked } = (await ledger.record(id))!;
      const claim = withheldVerdict(id, worker.publicKey, START, claimant);
      const recorded = await v.ask({
        type: "verdict",
        verdict: claim,
        origin: toHex(claimant.publicKey),
      });
      assert.equal(typeof recorded, "string", "the claim is recorded");
      await ledger.drained();
      const challenged = (await ledger.stats()).challenged;
      await ledger.closeWindow();
      result = {
        status: (await ledger.record(id))?.status,
        account: await ledger.account(worker.publicKey),
        credit,
        locked,
        fetches,
        challenged,
      };
    } finally {
      await after.shutdown();
    }
  });
  return result!;
}

Deno.test("a withheld claim after a restart, about a receipt recorded before it, is taken over: the worker that withholds here too is slashed, not paid", async () => {
  const { status, account, locked, fetches, challenged } = await claimAfterRestart({
    serves: false,
    crash: false,
  });
  assert.equal(status, "fraud", "slashed here, as in the ledgers that did not restart");
  assert.deepEqual(account, { balance: 0, stake: RESTART_STAKE - locked, locked: 0 });
  assert.equal(challenged, 1, "the claim was taken over after the restart");
  assert.equal(fetches, 1, "this validator asked the worker itself");
});

Deno.test("a withheld claim after a crash, about a receipt recorded just before it, is taken over: the withholder is slashed, not paid", async () => {
  const { status, account, locked, challenged } = await claimAfterRestart({
    serves: false,
    crash: true,
  });
  assert.equal(status, "fraud", "the receipt was kept at its intake, not at a later tick or stop");
  assert.deepEqual(account, { balance: 0, stake: RESTART_STAKE - locked, locked: 0 });
  assert.equal(challenged, 1);
});

Deno.test("a withheld claim after a restart about an honest worker's receipt: the worker serves here, is cleared and paid", async () => {
  const { status, account, credit, fetches, challenged } = await claimAfterRestart({
    serves: true,
    crash: false,
  });
  assert.equal(challenged, 1, "the claim was taken over after the restart");
  assert.equal(fetches, 1, "the worker was asked, and served");
  assert.equal(status, "final");
  assert.deepEqual(account, { balance: credit, stake: RESTART_STAKE, locked: 0 });
});

Deno.test("a withheld claim held for its author's pledge across a restart is taken over when the pledge comes: the receipt recorded before the restart is there to check", async () => {
  await inLedgerDir(async (ledgerDir) => {
    const clock = { t: START };
    const me = Identity.generate();
    const worker = Identity.generate();
    const claimant = Identity.generate(); // its pledge reaches this ledger only after the restart
    const requester = Identity.generate();
    const job = textJob(requester, "restart-claim-pledge");
    const { receipt } = await proveOn(job, worker);
    const id = receiptId(receipt);
    const start = (system: ActorSystem) =>
      spawnValidator(system, {
        identity: me,
        ledgerDir,
        clock,
        challengeProbability: 0,
        models: HONEST_MODELS,
        source: { proof: () => Promise.resolve(undefined) }, // withheld from everyone
      });
    const before = new ActorSystem({ name: "s56-restart-claim-pledge-before" });
    try {
      const v = await start(before);
      await v.ask({ type: "deposit", key: worker.publicKey, amount: RESTART_STAKE });
      assert.equal((await announceAssigned(v, receipt, job, requester)).recorded, true);
      const claim = withheldVerdict(id, worker.publicKey, START, claimant);
      await v.ask({ type: "verdict", verdict: claim, origin: toHex(claimant.publicKey) });
    } finally {
      await before.shutdown();
    }
    const after = new ActorSystem({ name: "s56-restart-claim-pledge-after" });
    try {
      const v = await start(after);
      const ledger = ledgerReads(() => v, clock);
      // The held claim is told back to the validator while it takes the pledge: ahead of the
      // asks below in its mailbox.
      await v.ask({ type: "pledge", pledge: signStakePledge(claimant, RESTART_STAKE, 1) });
      await ledger.drained();
      const { locked } = (await ledger.record(id))!;
      const { challenged } = await ledger.stats();
      await ledger.closeWindow();
      assert.equal((await ledger.record(id))?.status, "fraud", "slashed, not paid");
      assert.deepEqual(await ledger.account(worker.publicKey), {
        balance: 0,
        stake: RESTART_STAKE - locked,
        locked: 0,
      });
      assert.equal(challenged, 1, "taken over once its author's stake is here");
    } finally {
      await after.shutdown();
    }
  });
});

/** The receipt ids kept in `ledgerDir`'s `pending-receipts/` folder. */
function keptPending(ledgerDir: string): string[] {
  try {
    return [...Deno.readDirSync(join(ledgerDir, PENDING_RECEIPTS_DIR))]
      .map((e) => e.name.replace(/\.cbor$/, "")).sort();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return [];
    throw error;
  }
}

Deno.test("a peer's receipt is kept on disk only while it is pending: removed when a takeover opens its challenge, and when its window closed", async () => {
  await inLedgerDir(async (ledgerDir) => {
    const clock = { t: START };
    const me = Identity.generate();
    const worker = Identity.generate();
    const claimant = Identity.generate();
    const requester = Identity.generate();
    const [a, b] = [textJob(requester, "kept-a"), textJob(requester, "kept-b")];
    const proved = [await proveOn(a, worker), await proveOn(b, worker)];
    const [idA, idB] = proved.map(({ receipt }) => receiptId(receipt));
    const system = new ActorSystem({ name: "s56-kept-pending" });
    try {
      const v = await spawnValidator(system, {
        identity: me,
        ledgerDir,
        clock,
        challengeProbability: 0,
        models: HONEST_MODELS,
        source: { proof: () => Promise.resolve(undefined) },
      });
      for (const key of [worker, claimant]) {
        await v.ask({ type: "deposit", key: key.publicKey, amount: RESTART_STAKE });
      }
      await announceAssigned(v, proved[0].receipt, a, requester);
      await announceAssigned(v, proved[1].receipt, b, requester);
      assert.deepEqual(keptPending(ledgerDir), [idA, idB].sort(), "both kept at their intake");
      const ledger = ledgerReads(() => v, clock);
      const claim = withheldVerdict(idA, worker.publicKey, START, claimant);
      await v.ask({ type: "verdict", verdict: claim, origin: toHex(claimant.publicKey) });
      await ledger.drained();
      assert.deepEqual(keptPending(ledgerDir), [idB], "challenged here once: not kept");
      await ledger.closeWindow();
      assert.equal((await ledger.record(idB))?.status, "final");
      assert.deepEqual(keptPending(ledgerDir), [], "paid: its window bounds what is kept");
    } finally {
      await system.shutdown();
    }
  });
});

Deno.test("at the start, kept receipts no longer pending, or that do not read back, are removed", async () => {
  await inLedgerDir(async (ledgerDir) => {
    const clock = { t: START };
    const me = Identity.generate();
    const worker = Identity.generate();
    const requester = Identity.generate();
    const job = textJob(requester, "kept-stale");
    const { receipt } = await proveOn(job, worker);
    const id = receiptId(receipt);
    const folder = join(ledgerDir, PENDING_RECEIPTS_DIR);
    const start = (system: ActorSystem) =>
      spawnValidator(system, {
        identity: me,
        ledgerDir,
        clock,
        challengeProbability: 0,
        models: HONEST_MODELS,
      });
    const before = new ActorSystem({ name: "s56-kept-stale-before" });
    let copy: Uint8Array;
    try {
      const v = await start(before);
      await v.ask({ type: "deposit", key: worker.publicKey, amount: RESTART_STAKE });
      await announceAssigned(v, receipt, job, requester);
      copy = Deno.readFileSync(join(folder, `${id}.cbor`));
      await ledgerReads(() => v, clock).closeWindow();
    } finally {
      await before.shutdown();
    }
    // A removal the stop cut off left the paid receipt's copy; garbage sits beside it.
    Deno.writeFileSync(join(folder, `${id}.cbor`), copy);
    const garbage = "ab".repeat(32);
    Deno.writeFileSync(join(folder, `${garbage}.cbor`), new Uint8Array([0xff, 0x00]));
    const after = new ActorSystem({ name: "s56-kept-stale-after" });
    try {
      await start(after);
      assert.deepEqual(keptPending(ledgerDir), []);
    } finally {
      await after.shutdown();
    }
  });
});

Deno.test("the memory of peers' receipts tells which it forgot: the oldest past its bound, and those no longer open", () => {
  const memory = new ValidatorMemory();
  // Stand-ins: a receipt's id is the hash of its fields, and nothing else is read here.
  const receipt = (n: number) => ({ n }) as unknown as Receipt;
  const job = {} as never;
  const ids: string[] = [];
  for (let n = 0; n < MAX_REMEMBERED_RECEIPTS; n++) {
    ids.push(receiptId(receipt(n)));
    assert.deepEqual(memory.remember(receipt(n), job), []);
  }
  assert.deepEqual(memory.remember(receipt(-1), job), [ids[0]], "the oldest makes room");
  assert.equal(memory.recent(ids[0]), undefined);
  const closed = new Set(ids.slice(1, 11));
  assert.deepEqual(memory.forgetRecentUnless((id) => !closed.has(id)), [...closed]);
  assert.equal(memory.recent(ids[1]), undefined);
  assert.notEqual(memory.recent(ids[11]), undefined);
});

// -------------------------------------------------------------------------------------------------
// A staked peer's "proof withheld" claim (`invalid / proof_unavailable`) is taken over here (this
// validator asks the worker itself, and slashes it if it withholds here too) only while the receipt
// and its job are in the memory of recent peers' receipts (`_validator_memory.ts`): bounded (4096
// receipts, 64 MiB), one queue for every worker, oldest forgotten first. A worker with a colluding
// requester floods receipts (they only lock stake) until its withheld receipt is forgotten by every
// validator, then the claim about it is not taken over anywhere it was forgotten: the worker that
// withheld was paid in those ledgers, slashed in the claimant's.
//
// Now the claim's evidence travels with it, as its author's pledge does: the validator that
// publishes or passes on a claim hands the network the receipt and job it holds (its own
// challenge's, or the one it remembers), the network sends them on each connection ahead of the
// claim (`validation.receipt`), and the intake of a receipt recorded here, still pending, that
// this validator no longer remembers remembers it again (the very receipt: same id, its worker's
// signature) instead of dropping it as a copy. The claim right behind it is then taken over.
//
// Asserted on the ledger: statuses, balances and stake after the window.

type Fixture = Awaited<ReturnType<typeof startValidator>>;

/** `worker`'s receipt, recorded here, then forgotten under a flood. */
async function forgotten(t: Fixture, worker: Identity, served: boolean): Promise<Proved> {
  const proved = await t.recordForgotten(worker, served, "s57");
  // Forgotten: a claim that comes alone is not taken over (the s56 behaviour, kept).
  const alone = await t.staked();
  await t.claimWithheld(proved, alone);
  await t.drained();
  assert.equal((await t.stats()).challenged, 0, "the receipt was forgotten: nothing taken over");
  return proved;
}

Deno.test("a withheld claim about a receipt the memory forgot, brought with its receipt, is taken over: the worker that withholds here too is slashed, not paid", async () => {
  const t = await startValidator({ p: 0, model: true });
  try {
    const worker = await t.staked();
    const claimant = await t.staked();
    const withheld = await forgotten(t, worker, false);
    assert.equal((await t.resend(withheld, claimant)).recorded, true);
    await t.claimWithheld(withheld, claimant);
    await t.drained();
    const { challenged } = await t.stats();
    const record = (await t.record(withheld.id))!;
    await t.closeWindow();
    // The ledger first: who is paid.
    assert.equal((await t.record(withheld.id))!.status, "fraud", "slashed, not paid");
    assert.deepEqual(await t.account(worker.publicKey), {
      balance: 0,
      stake: STAKE - record.locked,
      locked: 0,
    });
    assert.equal(challenged, 1, "the claim was taken over");
    assert.equal(t.fetches(), 1, "this validator asked the worker itself");
    assert.equal((await t.account(claimant.publicKey)).stake, STAKE, "the claim cost nothing");
  } finally {
    await t.close();
  }
});

Deno.test("an honest worker's forgotten receipt, re-sent twice with a claim: taken over once, served, cleared and paid once", async () => {
  const t = await startValidator({ p: 0, model: true });
  try {
    const worker = await t.staked();
    const claimant = await t.staked();
    const honest = await forgotten(t, worker, true);
    const credit = (await t.record(honest.id))!.credit;
    assert.ok(credit > 0);
    await t.resend(honest, claimant);
    await t.resend(honest, claimant);
    await t.claimWithheld(honest, claimant);
    await t.resend(honest, await t.staked());
    await t.drained();
    assert.equal((await t.stats()).challenged, 1, "taken over once");
    assert.equal(t.fetches(), 1);
    // Challenged here once: a copy that comes after, with another claimant's claim, does not
    // make this validator ask the worker again.
    const late = await t.staked();
    await t.resend(honest, late);
    await t.claimWithheld(honest, late);
    await t.drained();
    assert.equal((await t.stats()).challenged, 1, "not asked again");
    assert.equal(t.fetches(), 1);
    await t.closeWindow();
    assert.equal((await t.record(honest.id))!.status, "final");
    assert.deepEqual(
      await t.account(worker.publicKey),
      { balance: credit, stake: STAKE, locked: 0 },
      "paid once, however often the receipt came",
    );
  } finally {
    await t.close();
  }
});

Deno.test("a forgotten receipt re-sent with another job, or with a signature not its worker's, is not remembered again; the genuine copy behind it is", async () => {
  const t = await startValidator({ p: 0, model: true });
  try {
    const worker = await t.staked();
    const [first, second] = [await t.staked(), await t.staked()];
    const withheld = await forgotten(t, worker, false);
    // Another job: refused at the intake (its id is not the receipt's job id).
    const other = { ...withheld.job, nonce: "another" };
    assert.equal((await t.resend(withheld, first, { job: other })).refusal, "job_mismatch");
    // The same id (it leaves out the signature and timings), signed by nobody: not the worker's.
    const forged = { ...withheld.receipt, sig: new Uint8Array(64) };
    await t.resend(withheld, first, { receipt: forged });
    await t.claimWithheld(withheld, first);
    await t.drained();
    assert.equal((await t.stats()).challenged, 0, "neither copy was taken as the receipt");
    // The genuine copy, with the next claim.
    await t.resend(withheld, second);
    await t.claimWithheld(withheld, second);
    await t.drained();
    assert.equal((await t.stats()).challenged, 1);
    await t.closeWindow();
    assert.equal((await t.record(withheld.id))!.status, "fraud");
    assert.equal((await t.account(worker.publicKey)).balance, 0);
  } finally {
    await t.close();
  }
});

Deno.test("a receipt no longer pending, re-sent, is neither remembered again nor paid again", async () => {
  const t = await startValidator({ p: 0, model: true });
  try {
    const worker = await t.staked();
    const claimant = await t.staked();
    const paid = await t.prove(worker);
    assert.equal((await t.announce(paid)).recorded, true);
    const credit = (await t.record(paid.id))!.credit;
    await t.closeWindow();
    assert.equal((await t.record(paid.id))!.status, "final");
    for (let i = 0; i < 2; i++) await t.resend(paid, claimant);
    await t.announce(paid);
    await t.claimWithheld(paid, claimant);
    await t.drained();
    assert.equal((await t.stats()).challenged, 0);
    await t.closeWindow();
    assert.deepEqual(await t.account(worker.publicKey), {
      balance: credit,
      stake: STAKE,
      locked: 0,
    });
  } finally {
    await t.close();
  }
});

/** The receipt and job the validator handed the network with each withheld claim it published. */
function evidenceOf(told: NetworkMessage[]) {
  return told.flatMap((m) =>
    m.type === "publish_verdict" && m.verdict.reason === "proof_unavailable"
      ? [{ by: toHex(m.verdict.validator), evidence: m.evidence }]
      : []
  );
}

Deno.test("a validator hands the network a withheld claim's receipt and job: with a peer's claim it passes on, and with its own after it took the claim over", async () => {
  const t = await startValidator({ p: 0, model: true });
  try {
    const worker = await t.staked();
    const claimant = await t.staked();
    const withheld = await t.prove(worker);
    t.served.delete(withheld.id);
    await t.announce(withheld);
    await t.claimWithheld(withheld, claimant);
    await t.drained();
    const published = evidenceOf(t.told);
    assert.deepEqual(
      published.map(({ by }) => by),
      [toHex(claimant.publicKey), toHex(t.me.publicKey)],
      "the peer's claim passed on, then this validator's own",
    );
    for (const { evidence } of published) {
      assert.deepEqual(evidence, { receipt: withheld.receipt, job: withheld.job });
    }
  } finally {
    await t.close();
  }
});

Deno.test("a receipt taken over and cleared here is not asked about again after a restart, when a copy of it comes ahead of another claim", async () => {
  await inLedgerDir(async (ledgerDir) => {
    const clock = { t: START };
    const me = Identity.generate();
    const [worker, requester] = [Identity.generate(), Identity.generate()];
    const [claimant, late] = [Identity.generate(), Identity.generate()];
    const job = textJob(requester, "s57-restart");
    const { receipt, proof } = await proveOn(job, worker);
    const id = receiptId(receipt);
    let fetches = 0;
    const start = (system: ActorSystem) =>
      spawnValidator(system, {
        identity: me,
        ledgerDir,
        clock,
        challengeProbability: 0,
        models: HONEST_MODELS,
        // An honest worker: it serves its proof data.
        source: { proof: () => (fetches++, Promise.resolve(signServedProof(id, proof, worker))) },
      });
    const claim = (v: ActorRef<ValidatorMessage>, by: Identity) =>
      v.ask({
        type: "verdict",
        verdict: withheldVerdict(id, worker.publicKey, clock.t, by),
        origin: toHex(by.publicKey),
      });
    const before = new ActorSystem({ name: "s57-restart-before" });
    try {
      const v = await start(before);
      for (const key of [worker, claimant, late]) {
        await v.ask({ type: "deposit", key: key.publicKey, amount: STAKE });
      }
      assert.equal((await announceAssigned(v, receipt, job, requester)).recorded, true);
      await claim(v, claimant);
      await ledgerReads(() => v, clock).drained();
      assert.equal(fetches, 1, "taken over once, served, cleared");
    } finally {
      await before.shutdown();
    }
    const after = new ActorSystem({ name: "s57-restart-after" });
    try {
      const v = await start(after);
      const ledger = ledgerReads(() => v, clock);
      const credit = (await ledger.record(id))!.credit;
      await v.ask({ type: "receipt", receipt, job, origin: toHex(late.publicKey) });
      await claim(v, late);
      await ledger.drained();
      assert.equal(fetches, 1, "challenged here once: not asked again");
      await ledger.closeWindow();
      assert.equal((await ledger.record(id))!.status, "final");
      assert.deepEqual(await ledger.account(worker.publicKey), {
        balance: credit,
        stake: STAKE,
        locked: 0,
      });
    } finally {
      await after.shutdown();
    }
  });
});

// -------------------------------------------------------------------------------------------------
// The validator's memory of peers' receipts (`_validator_memory.ts`, `remember` / `recent`), kept
// with their jobs for taking over a "proof withheld" claim, and mirrored on disk in `<ledger
// dir>/pending-receipts/`, was bounded by count only (4096). A job crossing nodes may take up to
// `MAX_NETWORK_JOB_BYTES` (448 KiB), and a receipt locks only its token count times the slash
// multiplier (a default self-stake backs thousands), so one staked key announcing receipts for jobs
// near that size grew the memory, and the folder, to about 1.8 GB.
//
// The bound chosen: 64 MiB of kept records (the canonical CBOR of `{ receipt, job }`, what each
// file holds) besides the 4096, oldest forgotten first. Honest jobs are a few KiB (4096 of them
// take a few MiB, so the count stays the bound that binds), and 64 MiB is what the validator's
// other floods may add (`MAX_HELD_FRAUD_PROOFS`, `MAX_KEPT_TAKEN_FRAUD_PROOFS`: 64 frames).
//
// What it costs, asserted on the ledger: a claim about a receipt forgotten is not taken over (no
// crash; the worker is paid here, as a receipt past the count bound was before), and a claim
// about one remembered still is (the worker that withholds is slashed).

/** The bound this review chose for what the memory (and so the folder) keeps: 64 MiB. */
const BOUND = 64 * 1024 * 1024;
/** Kept records past the bound in a flood: 160 near-maximal jobs take about 70 MiB. */
const FLOOD = 160;
/** A prompt that leaves a job just inside `MAX_NETWORK_JOB_BYTES`. */
const BIG_PROMPT = "x".repeat(MAX_NETWORK_JOB_BYTES - 1024);

/** What a remembered receipt costs: the record kept on disk for it. */
const keptBytes = (receipt: unknown, job: unknown) => encodeCanonical({ receipt, job }).length;

Deno.test("the memory of peers' receipts keeps at most 64 MiB of receipts and jobs, forgetting the oldest first", () => {
  const memory = new ValidatorMemory();
  // Stand-ins: a receipt's id is the hash of its fields, and nothing else is read here.
  const receipt = (n: number) => ({ n }) as unknown as Receipt;
  const job = (n: number) => ({ prompt: BIG_PROMPT, nonce: `${n}` }) as never;
  const ids: string[] = [];
  const forgotten: string[] = [];
  for (let n = 0; n < FLOOD; n++) {
    ids.push(receiptId(receipt(n)));
    forgotten.push(...memory.remember(receipt(n), job(n)));
  }
  const kept = ids.filter((id) => memory.recent(id) !== undefined);
  const bytes = kept.reduce((sum, id) => {
    const { receipt, job } = memory.recent(id)!;
    return sum + keptBytes(receipt, job);
  }, 0);
  assert.ok(bytes <= BOUND, `remembered ${bytes} bytes, over ${BOUND}`);
  // No more forgotten than the bound needs: one more record would not fit.
  assert.ok(bytes + keptBytes(receipt(0), job(0)) > BOUND, "forgot more than it had to");
  assert.deepEqual(kept, ids.slice(ids.length - kept.length), "the newest are kept");
  assert.deepEqual(forgotten, ids.slice(0, ids.length - kept.length), "the oldest told, in order");
  // What the memory forgot leaves its count too: forgetting the rest frees the bytes.
  assert.deepEqual(memory.forgetRecentUnless(() => false), kept);
  memory.remember(receipt(-1), job(-1));
  assert.notEqual(memory.recent(receiptId(receipt(-1))), undefined, "room again");
});

/** Bytes of the files in `ledgerDir`'s `pending-receipts/`, and how many there are. */
function pendingFolder(ledgerDir: string): { files: number; bytes: number } {
  let files = 0;
  let bytes = 0;
  for (const entry of Deno.readDirSync(join(ledgerDir, PENDING_RECEIPTS_DIR))) {
    files++;
    bytes += Deno.statSync(join(ledgerDir, PENDING_RECEIPTS_DIR, entry.name)).size;
  }
  return { files, bytes };
}

/**
 * A withholding worker's receipt, then `FLOOD` receipts of another staked key for jobs near the
 * size a job may cross nodes at (each consistent with its job: the same model and parameters, its
 * input's commitment), then the worker's second receipt, each announced to a validator (p = 0:
 * nothing drawn; proof data withheld from it) on a clock one millisecond later than the one
 * before. Then `between` runs (it may restart the validator, and is given what was announced);
 * then a staked peer claims the worker withheld both receipts
 * (on the validator `between` returns). Returns the older and newer receipts' status and credit
 * or lock, the worker's account after the window, and the takeovers.
 */
async function floodThenClaims(
  ledgerDir: string,
  between: (
    v: ActorRef<ValidatorMessage>,
    restart: () => Promise<ActorRef<ValidatorMessage>>,
    announced: { receipt: Receipt; job: TextJob }[],
  ) => Promise<ActorRef<ValidatorMessage>>,
) {
  const clock = { t: START };
  const me = Identity.generate();
  const worker = Identity.generate(); // withholds its proof data from everyone
  const flooder = Identity.generate();
  const claimant = Identity.generate();
  const requester = Identity.generate();
  const [oldJob, newJob] = [textJob(requester, "bytes-old"), textJob(requester, "bytes-new")];
  const [older, newer] = [await proveOn(oldJob, worker), await proveOn(newJob, worker)];
  const [oldId, newId] = [receiptId(older.receipt), receiptId(newer.receipt)];
  const { receipt: shape } = await proveOn(textJob(requester, "bytes-shape"), flooder);
  const { sig: _sig, worker: _worker, ...unsigned } = shape;
  const flood = Array.from({ length: FLOOD }, (_, n) => {
    const job: TextJob = { ...textJob(requester, `bytes-flood-${n}`), prompt: BIG_PROMPT };
    const receipt = signReceipt(
      { ...unsigned, jobId: jobId(job), inputHash: inputHashOf(job) },
      flooder,
    );
    return { receipt, job };
  });
  const announced = [
    { receipt: older.receipt, job: oldJob },
    ...flood,
    { receipt: newer.receipt, job: newJob },
  ];
  const systems: ActorSystem[] = [];
  const start = () => {
    const system = new ActorSystem({ name: `s56-memory-bytes-${systems.length}` });
    systems.push(system);
    return spawnValidator(system, {
      identity: me,
      ledgerDir,
      clock,
      challengeProbability: 0,
      models: HONEST_MODELS,
      source: { proof: () => Promise.resolve(undefined) },
    });
  };
  try {
    let v = await start();
    await v.ask({ type: "deposit", key: worker.publicKey, amount: 10_000 });
    await v.ask({ type: "deposit", key: claimant.publicKey, amount: 10_000 });
    await v.ask({ type: "deposit", key: flooder.publicKey, amount: 1_000_000 });
    for (const { receipt, job } of announced) {
      clock.t++;
      assert.equal((await announceAssigned(v, receipt, job, requester)).recorded, true);
    }
    v = await between(v, async () => {
      await systems.at(-1)!.shutdown();
      return await start();
    }, announced);
    const ledger = ledgerReads(() => v, clock);
    for (const id of [oldId, newId]) {
      const claim = withheldVerdict(id, worker.publicKey, START, claimant);
      const recorded = await v.ask({
        type: "verdict",
        verdict: claim,
        origin: toHex(claimant.publicKey),
      });
      assert.equal(typeof recorded, "string", "the claim is recorded either way");
    }
    await ledger.drained();
    const { challenged } = await ledger.stats();
    const [{ credit }, { locked }] = [(await ledger.record(oldId))!, (await ledger.record(newId))!];
    await ledger.closeWindow();
    return {
      challenged,
      older: (await ledger.record(oldId))?.status,
      newer: (await ledger.record(newId))?.status,
      credit,
      locked,
      account: await ledger.account(worker.publicKey),
      kept: pendingFolder(ledgerDir).files,
    };
  } finally {
    for (const system of systems) await system.shutdown();
  }
}

Deno.test("a flood of receipts for near-maximal jobs keeps at most 64 MiB on disk: a claim about a receipt forgotten is not taken over (paid here), one about a receipt remembered is (slashed)", async () => {
  await inLedgerDir(async (ledgerDir) => {
    const r = await floodThenClaims(ledgerDir, (v) => {
      const { files, bytes } = pendingFolder(ledgerDir);
      assert.ok(
        bytes <= BOUND,
        `${files} receipts kept on disk take ${bytes} bytes, over ${BOUND}`,
      );
      return Promise.resolve(v);
    });
    assert.equal(r.challenged, 1, "only the remembered one taken over");
    assert.equal(r.older, "final", "forgotten: not taken over, paid here");
    assert.equal(r.newer, "fraud", "remembered: taken over, slashed");
    assert.deepEqual(r.account, { balance: r.credit, stake: 10_000 - r.locked, locked: 0 });
    assert.equal(r.kept, 0, "the window closed: nothing kept");
  });
});

Deno.test("at the start, receipts kept over 64 MiB (by a version bounded by count only) are pruned to the newest: a claim about the newest is taken over after the restart, one about the oldest is not", async () => {
  await inLedgerDir(async (ledgerDir) => {
    const r = await floodThenClaims(ledgerDir, async (_, restart, announced) => {
      // What a version bounded by count only left: every receipt's record, over the bound.
      const folder = ReceiptFiles.in(ledgerDir, PENDING_RECEIPTS_DIR, { durable: false });
      for (const { receipt, job } of announced) {
        await folder.save(receiptId(receipt), { receipt, job });
      }
      assert.ok(pendingFolder(ledgerDir).bytes > BOUND);
      const v = await restart();
      const { files, bytes } = pendingFolder(ledgerDir);
      assert.ok(bytes <= BOUND, `${files} receipts kept after the start take ${bytes} bytes`);
      return v;
    });
    assert.equal(r.challenged, 1, "only the remembered one taken over");
    assert.equal(r.older, "final");
    assert.equal(r.newer, "fraud");
    assert.deepEqual(r.account, { balance: r.credit, stake: 10_000 - r.locked, locked: 0 });
  });
});
