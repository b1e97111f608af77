/**
 * The validator's receipt counters across its restarts, kept outside the actor
 * (`ValidatorActorOptions.stats`, built once in the node's tree): at its start the validator hands
 * the receipts that waited for their worker's stake to its intake again (`_held_evidence.ts`), and
 * each such re-submission counted as one more receipt received (and refused again), so every
 * restart grew `received` and `refused` by the receipts waiting, on `/metrics`, the heartbeat and
 * the dashboard. A restart's re-submission of a receipt this node already received counts as
 * nothing, unless it is recorded now (its worker's pledge reached the ledger meanwhile): then it
 * counts as the pledge's replay does in a running validator, so that `received − copies − refused`
 * (`recorded_receipts.ts`) stays the number of receipts the ledger recorded.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { ActorRef } from "../../actors/actor_ref.ts";
import {
  emptyValidatorStats,
  type ValidatorMessage,
  type ValidatorStats,
} from "../../actors/validator_messages.ts";
import { recordedReceipts } from "../../actors/recorded_receipts.ts";
import { Ledger } from "../../proof/ledger.ts";
import { Identity } from "../../protocols/identity.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { signStakePledge } from "../../protocols/stake_pledge.ts";
import {
  announceAssigned,
  HONEST_MODELS,
  ledgerReads,
  proveOn,
  spawnValidator,
  START,
  textJob,
} from "./_validator_fixture.ts";

/** The worker's stake, once it pledges. */
const STAKE = 100_000;

/** The receipt counters of `stats` that the views read. */
function counts(stats: ValidatorStats) {
  const { received, fromPeers, copies, copiesFromPeers, refused, refusedFromPeers } = stats;
  return { received, fromPeers, copies, copiesFromPeers, refused, refusedFromPeers };
}

/**
 * A validator with kept `stats` that a peer told of an honest receipt whose worker has not
 * pledged yet (refused `insufficient_stake`, held for the pledge); `restart` stops it and starts it
 * again on the same ledger and stats, as its supervisor does.
 */
async function withHeldReceipt(
  test: (setup: {
    stats: ValidatorStats;
    validator: () => ActorRef<ValidatorMessage>;
    restart: (whileDown?: (ledgerDir: string) => Promise<void>) => Promise<void>;
    worker: Identity;
    me: Identity;
    id: string;
  }) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir();
  const clock = { t: START };
  const [me, worker, requester] = Array.from({ length: 3 }, Identity.generate);
  const stats = emptyValidatorStats();
  const system = new ActorSystem({ name: "validator-restart-counts" });
  const ledgerDir = join(dir, "ledger");
  const spawn = () =>
    spawnValidator(system, {
      identity: me,
      ledgerDir,
      clock,
      challengeProbability: 0,
      models: HONEST_MODELS,
      stats,
    });
  try {
    let validator = await spawn();
    const job = textJob(requester, "held-for-stake");
    const work = await proveOn(job, worker);
    const refused = await announceAssigned(validator, work.receipt, job, requester);
    assert.equal(refused.refusal, "insufficient_stake");
    await test({
      stats,
      validator: () => validator,
      restart: async (whileDown) => {
        await system.stop("node/validator");
        await whileDown?.(ledgerDir);
        validator = await spawn();
      },
      worker,
      me,
      id: receiptId(work.receipt),
    });
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("a receipt held for its worker's stake is not received again at each restart of a validator whose counters are kept", async () => {
  await withHeldReceipt(async ({ stats, validator, restart, worker, id }) => {
    const once = {
      received: 1,
      fromPeers: 1,
      copies: 0,
      copiesFromPeers: 0,
      refused: 1,
      refusedFromPeers: 1,
    };
    assert.deepEqual(counts(stats), once);
    await restart();
    await restart();
    // Failed before the fix: received 3, fromPeers 3, refused 3, refusedFromPeers 3.
    assert.deepEqual(counts(stats), once, "the restarts' re-submissions counted");
    assert.equal(recordedReceipts(stats).recorded, 0);

    // Still held: the pledge takes it up (a running validator's replay counts as a reception).
    const pledged = await validator().ask({
      type: "pledge",
      pledge: signStakePledge(worker, STAKE, 1),
      origin: "ab".repeat(32),
    });
    assert.equal(pledged, true);
    const clock = { t: START };
    const ledger = ledgerReads(validator, clock);
    assert.equal((await ledger.record(id))?.status, "pending");
    assert.deepEqual(counts(stats), { ...once, received: 2, fromPeers: 2 });
    assert.equal(recordedReceipts(stats).recorded, 1);
    assert.equal(recordedReceipts(stats).fromPeers, 1);
  });
});

Deno.test("a held receipt that a restart records (its worker's pledge reached the ledger meanwhile) counts once as recorded, not as a copy", async () => {
  await withHeldReceipt(async ({ stats, validator, restart, worker, me, id }) => {
    await restart(async (ledgerDir) => {
      // The pledge reached the ledger while the actor was down (its replay never ran).
      const ledger = await Ledger.open(ledgerDir, me, { now: () => START });
      try {
        assert.equal(await ledger.recordPledge(signStakePledge(worker, STAKE, 1)), true);
      } finally {
        await ledger.close();
      }
    });
    const clock = { t: START };
    assert.equal((await ledgerReads(validator, clock).record(id))?.status, "pending");
    assert.equal(stats.copies, 0);
    assert.equal(stats.refused, 1);
    assert.equal(recordedReceipts(stats).recorded, 1);
    assert.equal(recordedReceipts(stats).fromPeers, 1);
    // A second restart finds nothing held: nothing counts.
    await restart();
    assert.equal(recordedReceipts(stats).recorded, 1);
    assert.deepEqual(counts(stats), {
      received: 2,
      fromPeers: 2,
      copies: 0,
      copiesFromPeers: 0,
      refused: 1,
      refusedFromPeers: 1,
    });
  });
});
