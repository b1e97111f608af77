/**
 * A validator on a read-only node (a full disk: its ledger refuses every write `disk_full`,
 * `node/disk_room.ts`) fed what writes: a peer's fraud proof, a peer's "proof withheld" claim, its
 * own challenge ending mid-run, a peer's stake pledge, a peer's receipt by gossip, a local deposit.
 * Before, each was handled as a failed write: the actor crashed (a fraud proof's settlement, a
 * challenge's ending, a deposit), and crashes in a row take the node down through its supervisor,
 * or the evidence was dropped and the ledger's fault raised (`ledger_write_failed`: a claim, a
 * pledge, a receipt). Now nothing crashes, a receipt's sender is told `disk_full`, and what came is
 * held (`actors/_validator_read_only.ts`) and taken once the disk has room: the cheat is slashed,
 * the honest work paid, the pledge and the receipt recorded. The ledger's clock is the test's; no
 * timer is raced.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import type { FraudProofHandled, ValidatorStats } from "../../actors/validator_messages.ts";
import type { Verdict } from "../../protocols/verdict.ts";
import { Identity } from "../../protocols/identity.ts";
import { toHex } from "../../protocols/hash.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { signStakePledge } from "../../protocols/stake_pledge.ts";
import { type ServedProof, signServedProof } from "../../proof/served_proof.ts";
import { validateReceipt } from "../../proof/validation.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { eventually } from "../_helpers/wait.ts";
import {
  announceAssigned,
  f,
  HONEST_MODELS,
  ledgerReads,
  proveOn,
  START,
  textJob,
  withheldVerdict,
} from "./_validator_fixture.ts";
import { ReadOnlyRun, type ReadOnlySetup } from "./_read_only_validator.ts";
import { READ_ONLY_HELD } from "../../actors/_validator_read_only.ts";

const STAKE = 10_000;
const PEER = "ab".repeat(32);

/** A run in a temp dir with a worker's job proved on `model` (a cheat runs another). */
async function setUp(name: string, model = f.honest) {
  const dir = await Deno.makeTempDir();
  const [me, worker, requester, peer] = Array.from({ length: 4 }, Identity.generate);
  const job = textJob(requester, crypto.randomUUID());
  const proved = await proveOn(job, worker, model);
  const id = receiptId(proved.receipt);
  const clock = { t: START };
  const disk = { full: false };
  const run = new ReadOnlyRun(name, disk, clock);
  const reads = ledgerReads(() => run.validator, clock);
  const ledgerDir = join(dir, "ledger");
  return {
    dir,
    ledgerDir,
    me,
    worker,
    requester,
    peer,
    job,
    proved,
    id,
    clock,
    disk,
    run,
    reads,
    /**
     * Spawn the validator as `me` on the run's ledger, serving the honest models, challenging
     * nothing unless `options` say otherwise.
     */
    spawn(options: Partial<ReadOnlySetup> = {}) {
      return run.spawn({
        identity: me,
        ledgerDir,
        challengeProbability: 0,
        models: HONEST_MODELS,
        ...options,
      });
    },
    /** Wait for the validator to hold `what` while read-only, or to crash (the old way). */
    async heldOrCrashed(what: string) {
      await eventually(
        () => run.counts.crashes > 0 || run.said(`${READ_ONLY_HELD} ${what}`),
        `the ${what} held while read-only (or the validator's crash)`,
      );
    },
    async close() {
      await run.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/** What no test here may see: a crash, or the full disk taken for a failed ledger write. */
async function assertCleanRefusals(t: Awaited<ReturnType<typeof setUp>>): Promise<void> {
  assert.equal(t.run.counts.crashes, 0, "the validator never crashes for a refused write");
  assert.ok(!t.run.said("error: ledger:"), t.run.lines.join("\n"));
  const stats = await t.run.validator.ask<ValidatorStats>({ type: "stats" });
  assert.equal(stats.ledgerWriteFault, undefined, t.run.lines.join("\n"));
}

Deno.test("a peer's fraud proof reaching a read-only validator is held, not crashed on, and slashes the cheat once the disk has room, past the window", async () => {
  const t = await setUp("ro-fraud-proof", f.otherSeed);
  try {
    const validator = await t.spawn();
    for (const key of [t.worker, t.peer]) {
      await validator.ask({ type: "deposit", key: key.publicKey, amount: STAKE });
    }
    assert.equal(
      (await announceAssigned(validator, t.proved.receipt, t.job, t.requester)).recorded,
      true,
    );
    const { fraudProof } = await validateReceipt(
      { job: t.job, receipt: t.proved.receipt, proof: t.proved.proof },
      f.honest,
      t.peer,
      { now: () => START },
    );
    assert.ok(fraudProof);

    t.disk.full = true;
    await validator.ask<FraudProofHandled>({
      type: "fraud_proof",
      proof: fraudProof,
      origin: PEER,
    });
    await t.heldOrCrashed("fraud_checked");
    await assertCleanRefusals(t);
    // The window closes while the disk is full: nothing is paid (finalizing is refused too).
    t.clock.t += DEFAULT_ECONOMICS.challengeWindowMs + 1;
    await t.run.validator.ask({ type: "finalize" });
    assert.equal((await t.reads.record(t.id))?.status, "pending");

    t.disk.full = false;
    // The next message takes what was held first (the proof, taken inside the window), before
    // this finalize could pay the cheat.
    await t.run.validator.ask({ type: "finalize" });
    await eventually(
      async () => (await t.reads.record(t.id))?.status === "fraud",
      "the held proof to settle once the disk has room",
    );
    await t.run.validator.ask({ type: "finalize" });
    const cheat = await t.reads.account(t.worker.publicKey);
    assert.equal(cheat.balance, 0, "the cheat keeps no pay");
    assert.ok(cheat.stake < STAKE, "its stake is slashed");
    await assertCleanRefusals(t);
  } finally {
    await t.close();
  }
});

Deno.test("a validator's own challenge ending while the node is read-only does not crash it, and its ending is applied once the disk has room: the honest work is paid", async () => {
  const t = await setUp("ro-challenge-ending");
  try {
    const served = signServedProof(t.id, t.proved.proof, t.worker);
    const gate = Promise.withResolvers<void>();
    const validator = await t.spawn({
      challengeProbability: 1,
      // The worker's proof data comes once the test lets it: the challenge ends after the disk filled.
      source: {
        proof: async () => {
          await gate.promise;
          return served as ServedProof | undefined;
        },
      },
    });
    await validator.ask({ type: "deposit", key: t.worker.publicKey, amount: STAKE });
    const handled = await announceAssigned(validator, t.proved.receipt, t.job, t.requester);
    assert.deepEqual([handled.recorded, handled.challenged], [true, true]);

    t.disk.full = true;
    gate.resolve();
    await t.heldOrCrashed("challenged");
    await assertCleanRefusals(t);
    assert.equal((await t.reads.record(t.id))?.status, "challenged", "unpaid while read-only");

    t.disk.full = false;
    await t.run.validator.ask({ type: "finalize" });
    await t.reads.drained();
    await t.reads.closeWindow();
    assert.equal((await t.reads.record(t.id))?.status, "final");
    const credit = t.proved.receipt.tokenCount * DEFAULT_ECONOMICS.defaultTokenPrice;
    assert.deepEqual(await t.reads.account(t.worker.publicKey), {
      balance: credit,
      stake: STAKE,
      locked: 0,
    });
    await assertCleanRefusals(t);
  } finally {
    await t.close();
  }
});

Deno.test("a staked peer's withheld claim reaching a read-only validator is held, not dropped as a ledger fault, and recorded once the disk has room", async () => {
  const t = await setUp("ro-verdict");
  try {
    const served = signServedProof(t.id, t.proved.proof, t.worker);
    const validator = await t.spawn({
      source: { proof: () => Promise.resolve<ServedProof | undefined>(served) },
    });
    for (const key of [t.worker, t.peer]) {
      await validator.ask({ type: "deposit", key: key.publicKey, amount: STAKE });
    }
    assert.equal(
      (await announceAssigned(validator, t.proved.receipt, t.job, t.requester)).recorded,
      true,
    );
    const claim = withheldVerdict(t.id, t.worker.publicKey, START, t.peer);

    t.disk.full = true;
    await validator.ask({ type: "verdict", verdict: claim, origin: toHex(t.peer.publicKey) });
    assert.ok(t.run.said(`${READ_ONLY_HELD} verdict`), "held while read-only");
    await assertCleanRefusals(t);

    t.disk.full = false;
    await t.run.validator.ask({ type: "finalize" });
    const verdicts = await t.run.validator.ask<Verdict[]>({ type: "verdicts", receiptId: t.id });
    assert.ok(
      verdicts.some((v) => v.reason === "proof_unavailable"),
      "the claim is recorded once the disk has room",
    );
    // Taken over: the worker serves its proof here, the claim fails, the work is paid.
    await t.reads.drained();
    await t.reads.closeWindow();
    assert.equal((await t.reads.record(t.id))?.status, "final");
    await assertCleanRefusals(t);
  } finally {
    await t.close();
  }
});

Deno.test("a peer's stake pledge reaching a read-only validator is held and recorded once the disk has room", async () => {
  const t = await setUp("ro-pledge");
  try {
    const validator = await t.spawn();
    t.disk.full = true;
    const pledge = signStakePledge(t.worker, STAKE, 1);
    assert.equal(await validator.ask({ type: "pledge", pledge, origin: PEER }), false);
    assert.ok(t.run.said(`${READ_ONLY_HELD} pledge`), "held while read-only");
    assert.equal(await validator.ask({ type: "has_staked", key: t.worker.publicKey }), false);
    await assertCleanRefusals(t);

    t.disk.full = false;
    await t.run.validator.ask({ type: "finalize" });
    assert.equal(
      await t.run.validator.ask({ type: "has_staked", key: t.worker.publicKey }),
      true,
      "the pledge is recorded once the disk has room",
    );
    await assertCleanRefusals(t);
  } finally {
    await t.close();
  }
});

Deno.test("a peer's receipt announced to a read-only validator is refused disk_full (not ledger_write_failed), held, and recorded once the disk has room", async () => {
  const t = await setUp("ro-receipt");
  try {
    const validator = await t.spawn();
    await validator.ask({ type: "deposit", key: t.worker.publicKey, amount: STAKE });
    t.disk.full = true;
    const handled = await announceAssigned(validator, t.proved.receipt, t.job, t.requester);
    assert.equal(handled.recorded, false);
    assert.equal(handled.refusal, "disk_full", "the peer is told the disk is full");
    await assertCleanRefusals(t);

    t.disk.full = false;
    await t.run.validator.ask({ type: "finalize" });
    assert.equal((await t.reads.record(t.id))?.status, "pending", "recorded once there is room");
    await t.reads.closeWindow();
    assert.equal((await t.reads.record(t.id))?.status, "final");
    await assertCleanRefusals(t);
  } finally {
    await t.close();
  }
});

Deno.test("a local deposit asked of a read-only validator is refused disk_full without crashing it", async () => {
  const t = await setUp("ro-deposit");
  try {
    const validator = await t.spawn();
    t.disk.full = true;
    await assert.rejects(
      validator.ask({ type: "deposit", key: t.worker.publicKey, amount: STAKE }),
      (error: Error & { code?: string }) => error.code === "disk_full",
    );
    await assertCleanRefusals(t);
  } finally {
    await t.close();
  }
});
