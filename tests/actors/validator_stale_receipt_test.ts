/**
 * A receipt first recorded long after its worker signed it (`MAX_RECEIPT_AGE_MS`): anyone
 * holding a receipt, its job and its assignment can replay it to a ledger that has not seen it,
 * and a pledge can reach a ledger late. Recorded then, its window would open when the worker has
 * rightly deleted its proof data (`DEFAULT_PROOF_RETENTION_MS`), and the coin would get the
 * honest worker slashed for withholding (a review at stop 34). Such a receipt is refused
 * (`receipt_stale`): not paid there, never challenged; on time, it is paid as before.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import {
  DEFAULT_PROOF_RETENTION_MS,
  type ProveHandle,
  ProverActor,
  type ProverMessage,
} from "../../actors/prover_actor.ts";
import type { ServedProof } from "../../proof/served_proof.ts";
import { Identity } from "../../protocols/identity.ts";
import { jobId } from "../../protocols/job.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import {
  announceAssigned,
  f,
  HONEST_MODELS,
  ledgerReads,
  spawnValidator,
  START,
  textJob,
} from "./_validator_fixture.ts";
import { manualStream } from "../proof/_models.ts";
import { eventually } from "../_helpers/wait.ts";
import { signStakePledge } from "../../protocols/stake_pledge.ts";
import { CLOCK_SKEW_MS, MAX_RECEIPT_AGE_MS } from "../../proof/challenge_timing.ts";

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
