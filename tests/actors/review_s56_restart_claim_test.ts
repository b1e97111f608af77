/**
 * Review s56: a staked peer's "proof withheld" claim (`invalid / proof_unavailable`) that reaches
 * this validator after it restarted, about a peer's receipt it recorded (pending, not drawn here)
 * before the restart. Taking the claim over needs the receipt and its job (the challenge asks the
 * worker for the data that opens the receipt's commitment); the ValidatorActor kept them only in
 * memory, so after any restart (a stop, a crash, its supervisor's restart) the claim was recorded
 * and passed on but never taken over here: the worker that withheld its proof data from everyone
 * was paid in this ledger and slashed in the ledgers that had not restarted.
 *
 * Now a peer's receipt recorded here and not drawn is kept on disk with its job while it is
 * pending (`pending-receipts/`, as a drawn one is kept in `drawn-challenges/` until its challenge
 * opens), and read back at the start. Asserted on the ledger: status, balance and stake after the
 * window.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { ValidatorActivity } from "../../actors/validator_messages.ts";
import { Identity } from "../../protocols/identity.ts";
import { toHex } from "../../protocols/hash.ts";
import { type Receipt, receiptId } from "../../protocols/receipt.ts";
import { type ServedProof, signServedProof } from "../../proof/served_proof.ts";
import { PENDING_RECEIPTS_DIR } from "../../actors/_receipt_files.ts";
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

const STAKE = 10_000;

/** Copy the folder `from` to `to` as it is at this instant (synchronously: nothing runs between). */
function copyNow(from: string, to: string): void {
  Deno.mkdirSync(to, { recursive: true });
  for (const entry of Deno.readDirSync(from)) {
    const [a, b] = [join(from, entry.name), join(to, entry.name)];
    if (entry.isDirectory) copyNow(a, b);
    else if (entry.isFile) Deno.copyFileSync(a, b);
  }
}

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
        if (crash && a.kind === "receipt" && a.recorded) copyNow(ledgerDir, crashed);
      });
      for (const key of [worker, claimant]) {
        await v.ask({ type: "deposit", key: key.publicKey, amount: STAKE });
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
  assert.deepEqual(account, { balance: 0, stake: STAKE - locked, locked: 0 });
  assert.equal(challenged, 1, "the claim was taken over after the restart");
  assert.equal(fetches, 1, "this validator asked the worker itself");
});

Deno.test("a withheld claim after a crash, about a receipt recorded just before it, is taken over: the withholder is slashed, not paid", async () => {
  const { status, account, locked, challenged } = await claimAfterRestart({
    serves: false,
    crash: true,
  });
  assert.equal(status, "fraud", "the receipt was kept at its intake, not at a later tick or stop");
  assert.deepEqual(account, { balance: 0, stake: STAKE - locked, locked: 0 });
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
  assert.deepEqual(account, { balance: credit, stake: STAKE, locked: 0 });
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
      await v.ask({ type: "deposit", key: worker.publicKey, amount: STAKE });
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
      await v.ask({ type: "pledge", pledge: signStakePledge(claimant, STAKE, 1) });
      await ledger.drained();
      const { locked } = (await ledger.record(id))!;
      const { challenged } = await ledger.stats();
      await ledger.closeWindow();
      assert.equal((await ledger.record(id))?.status, "fraud", "slashed, not paid");
      assert.deepEqual(await ledger.account(worker.publicKey), {
        balance: 0,
        stake: STAKE - locked,
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
        await v.ask({ type: "deposit", key: key.publicKey, amount: STAKE });
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
      await v.ask({ type: "deposit", key: worker.publicKey, amount: STAKE });
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
