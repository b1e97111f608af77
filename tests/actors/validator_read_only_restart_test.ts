/**
 * A validator started on a read-only node (a full disk: its ledger refuses writes) leaves what its
 * start would write for the next start with room (`ValidatorActor.preStart`): a challenge's ending
 * kept on disk is not applied, a challenge open at the stop is not ended, and the start does not
 * fail on the refusal. Given room, the next start applies each: the kept ending settles its receipt
 * (honest work cleared, paid when the window closes) and the open challenge ends undecided (not
 * paid, nobody slashed). The ledger's clock is the test's; no timer is raced.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { CHALLENGE_ENDINGS_DIR } from "../../actors/_challenge_endings.ts";
import { READ_ONLY_HELD } from "../../actors/_validator_read_only.ts";
import type { ValidatorActorOptions } from "../../actors/validator_actor.ts";
import { Identity } from "../../protocols/identity.ts";
import { type Receipt, receiptId } from "../../protocols/receipt.ts";
import { type ServedProof, signServedProof } from "../../proof/served_proof.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { eventually } from "../_helpers/wait.ts";
import {
  announceAssigned,
  HONEST_MODELS,
  ledgerReads,
  proveOn,
  START,
  textJob,
} from "./_validator_fixture.ts";
import { ReadOnlyRun } from "./_read_only_validator.ts";

const STAKE = 10_000;

/** The names of the endings kept on disk in `ledgerDir`. */
async function keptEndings(ledgerDir: string): Promise<string[]> {
  const names: string[] = [];
  try {
    for await (const entry of Deno.readDir(join(ledgerDir, CHALLENGE_ENDINGS_DIR))) {
      names.push(entry.name);
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  return names;
}

Deno.test("a validator restarted read-only keeps its kept ending and its open challenge as they are, and the next start with room applies the ending (the honest worker paid) and runs the open challenge again (not paid while open, not slashed)", async () => {
  const dir = await Deno.makeTempDir();
  const ledgerDir = join(dir, "ledger");
  const clock = { t: START };
  const disk = { full: false };
  const [me, kept, open, requester] = Array.from({ length: 4 }, Identity.generate);
  const keptJob = textJob(requester, "kept-ending");
  const openJob = textJob(requester, "open-challenge");
  const keptWork = await proveOn(keptJob, kept);
  const openWork = await proveOn(openJob, open);
  const keptId = receiptId(keptWork.receipt);
  const openId = receiptId(openWork.receipt);
  // The kept worker's proof data comes once the test lets it; the open one's never does.
  const gate = Promise.withResolvers<void>();
  const served = signServedProof(keptId, keptWork.proof, kept);
  const source = {
    proof: async (receipt: Receipt) => {
      if (receiptId(receipt) !== keptId) return await new Promise<never>(() => {});
      await gate.promise;
      return served as ServedProof | undefined;
    },
  };
  const options: Omit<ValidatorActorOptions, "ledger" | "finalizeIntervalMs"> = {
    identity: me,
    ledgerDir,
    challengeProbability: 1,
    models: HONEST_MODELS,
    source,
  };
  try {
    // 1. With room: both drawn and challenged; the disk fills; the kept one's challenge ends
    // then, its ending kept on disk for the ledger that refuses it; the node stops.
    const first = new ReadOnlyRun("ro-restart-1", disk, clock);
    try {
      const validator = await first.spawn(options);
      for (const worker of [kept, open]) {
        await validator.ask({ type: "deposit", key: worker.publicKey, amount: STAKE });
      }
      for (const [work, job] of [[keptWork, keptJob], [openWork, openJob]] as const) {
        const handled = await announceAssigned(validator, work.receipt, job, requester);
        assert.deepEqual([handled.recorded, handled.challenged], [true, true]);
      }
      disk.full = true;
      gate.resolve();
      await eventually(
        () => first.said(`${READ_ONLY_HELD} challenged`),
        "the kept challenge to end while read-only",
      );
      assert.deepEqual(await keptEndings(ledgerDir), [`${keptId}.cbor`]);
    } finally {
      await first.close();
    }

    // 2. Restarted read-only: the start writes nothing and does not fail; both stay challenged
    // (unpaid) and the ending stays kept.
    const second = new ReadOnlyRun("ro-restart-2", disk, clock);
    try {
      await second.spawn(options);
      const reads = ledgerReads(() => second.validator, clock);
      assert.equal((await reads.record(keptId))?.status, "challenged");
      assert.equal((await reads.record(openId))?.status, "challenged");
      assert.equal(second.counts.crashes, 0, "a read-only start does not fail on the refusal");
      assert.deepEqual(await keptEndings(ledgerDir), [`${keptId}.cbor`]);
      for (const worker of [kept, open]) {
        assert.equal((await reads.account(worker.publicKey)).balance, 0, "nobody paid yet");
      }
    } finally {
      await second.close();
    }

    // 3. Room again: the next start applies the kept ending and runs the open challenge again
    // (review s79 crash F3; it ended unpaid before), whose worker still does not answer.
    disk.full = false;
    const third = new ReadOnlyRun("ro-restart-3", disk, clock);
    try {
      await third.spawn(options);
      const reads = ledgerReads(() => third.validator, clock);
      assert.deepEqual(await keptEndings(ledgerDir), [], "the kept ending is applied");
      await reads.closeWindow();
      assert.equal((await reads.record(keptId))?.status, "final");
      const credit = keptWork.receipt.tokenCount * DEFAULT_ECONOMICS.defaultTokenPrice;
      assert.deepEqual(await reads.account(kept.publicKey), {
        balance: credit,
        stake: STAKE,
        locked: 0,
      }, "the honest worker whose ending was kept is paid");
      assert.equal((await reads.record(openId))?.status, "challenged", "run again, still open");
      const { balance, stake } = await reads.account(open.publicKey);
      assert.deepEqual({ balance, stake }, { balance: 0, stake: STAKE }, "not paid, not slashed");
      assert.equal(third.counts.crashes, 0);
    } finally {
      await third.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a peer's receipt held while read-only is kept across a stop: a start still read-only holds it again, and it is recorded once the disk has room", async () => {
  const dir = await Deno.makeTempDir();
  const ledgerDir = join(dir, "ledger");
  const clock = { t: START };
  const disk = { full: false };
  const [me, worker, requester] = Array.from({ length: 3 }, Identity.generate);
  const job = textJob(requester, "held-across-stop");
  const work = await proveOn(job, worker);
  const id = receiptId(work.receipt);
  const options = { identity: me, ledgerDir, challengeProbability: 0, models: HONEST_MODELS };
  /** One run of the validator on the ledger: `body` with it, then its stop. */
  const withRun = async (name: string, body: (run: ReadOnlyRun) => Promise<void>) => {
    const run = new ReadOnlyRun(name, disk, clock);
    try {
      await run.spawn(options);
      await body(run);
    } finally {
      await run.close();
    }
  };
  try {
    await withRun("ro-held-1", async (run) => {
      await run.validator.ask({ type: "deposit", key: worker.publicKey, amount: STAKE });
      disk.full = true;
      const handled = await announceAssigned(run.validator, work.receipt, job, requester);
      assert.deepEqual([handled.recorded, handled.refusal], [false, "disk_full"]);
    });
    await withRun("ro-held-2", async (run) => {
      assert.ok(run.said(`${READ_ONLY_HELD} receipt`), "held again at a read-only start");
      assert.equal(await ledgerReads(() => run.validator, clock).record(id), undefined);
    });
    disk.full = false;
    await withRun("ro-held-3", async (run) => {
      const reads = ledgerReads(() => run.validator, clock);
      assert.equal((await reads.record(id))?.status, "pending", "recorded at the start with room");
      await reads.closeWindow();
      assert.equal((await reads.record(id))?.status, "final");
      assert.equal(run.counts.crashes, 0);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
