/**
 * Review s54 of a restart while a challenge taken over on a peer's "proof withheld" claim is
 * open (`ValidatorActor`'s start). A takeover undecided here — this validator's own gap — clears
 * the challenge: the claim cost its author nothing and proved nothing, so the work stands as it
 * would without it (`validator_takeover_budget_test.ts`). A restart is the same gap, but the
 * start ended every challenge open at the stop as `unresolved / validator_restarted`: an honest
 * worker lost its pay to anyone's free claim plus this validator's restart. A challenge this
 * validator drew still ends unpaid at a restart (its draw was owed, and nothing here checked it).
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ActorSystem } from "../../actors/actor_system.ts";
import { Identity } from "../../protocols/identity.ts";
import { toHex } from "../../protocols/hash.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { signVerdict } from "../../protocols/verdict.ts";
import { type ServedProof, signServedProof } from "../../proof/served_proof.ts";
import {
  announceAssigned,
  HONEST_MODELS,
  ledgerReads,
  proveOn,
  spawnValidator,
  START,
  textJob,
} from "./_validator_fixture.ts";
import { eventually } from "../_helpers/wait.ts";
import { ReceiptFiles, TAKEN_OVER_CLAIMS_DIR } from "../../actors/_receipt_files.ts";

const STAKE = 10_000;

/**
 * An honest worker's receipt, announced to a validator with coin `p`; a staked peer claims the
 * worker withheld its proof (when `claim`). The worker's answer is slow: the validator stops
 * (a restart) while the challenge waits for it, and starts again on the same ledger, where the
 * worker serves at once. Returns the receipt's status after the window and the worker's account.
 */
async function restartMidChallenge(p: number, claim: boolean) {
  const clock = { t: START };
  const dir = await Deno.makeTempDir();
  const ledgerDir = join(dir, "ledger");
  const me = Identity.generate();
  const worker = Identity.generate();
  const claimant = Identity.generate();
  const requester = Identity.generate();
  const job = textJob(requester, `takeover-restart-${p}-${claim}`);
  const { receipt, proof } = await proveOn(job, worker);
  const id = receiptId(receipt);
  const served = signServedProof(id, proof, worker);
  const asked = Promise.withResolvers<void>();
  const never = new Promise<ServedProof | undefined>(() => {});
  try {
    const before = new ActorSystem({ name: `s54-takeover-before-${p}-${claim}` });
    try {
      const validator = await spawnValidator(before, {
        identity: me,
        ledgerDir,
        clock,
        challengeProbability: p,
        models: HONEST_MODELS,
        source: {
          proof: () => {
            asked.resolve();
            return never;
          },
        },
      });
      for (const key of [worker, claimant]) {
        await validator.ask({ type: "deposit", key: key.publicKey, amount: STAKE });
      }
      await announceAssigned(validator, receipt, job, requester);
      if (claim) {
        const verdict = signVerdict({
          v: 1,
          subject: "inference",
          subjectId: id,
          target: receipt.worker,
          outcome: "invalid",
          reason: "proof_unavailable",
          issuedAt: clock.t,
        }, claimant);
        await validator.ask({ type: "verdict", verdict, origin: toHex(claimant.publicKey) });
      }
      await asked.promise;
      const files = await ReceiptFiles.in(ledgerDir, TAKEN_OVER_CLAIMS_DIR).all();
      assert.equal(files.size, claim ? 1 : 0, "a takeover's claim is kept while it is open");
      const status = await validator.ask<{ status: string } | undefined>({
        type: "receipt_status",
        receiptId: id,
      });
      assert.equal(status?.status, "challenged", "the challenge is open at the stop");
    } finally {
      await before.shutdown();
    }
    const after = new ActorSystem({ name: `s54-takeover-after-${p}-${claim}` });
    try {
      const validator = await spawnValidator(after, {
        identity: me,
        ledgerDir,
        clock,
        challengeProbability: p,
        models: HONEST_MODELS,
        source: { proof: () => Promise.resolve(served) },
      });
      const reads = ledgerReads(() => validator, clock);
      await eventually(async () => (await reads.stats()).openChallenges === 0, "challenges end");
      await reads.closeWindow();
      const left = await ReceiptFiles.in(ledgerDir, TAKEN_OVER_CLAIMS_DIR).all();
      assert.equal(left.size, 0, "and removed once it has ended");
      return {
        status: (await reads.record(id))?.status,
        account: await reads.account(worker.publicKey),
      };
    } finally {
      await after.shutdown();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("a restart while a takeover on a peer's withheld claim is open leaves the honest work paid, as the takeover's own failure does", async () => {
  const { status, account } = await restartMidChallenge(0, true);
  assert.equal(status, "final", "the claim proved nothing: the work stands");
  assert.ok(account.balance > 0, "the honest worker is paid");
  assert.equal(account.stake, STAKE);
});

Deno.test("a restart while a challenge this validator drew is open leaves the job unpaid, nobody slashed", async () => {
  const { status, account } = await restartMidChallenge(1, false);
  assert.equal(status, "unpaid");
  assert.deepEqual(account, { balance: 0, stake: STAKE, locked: 0 });
});

Deno.test("a claim file planted beside a challenge this validator drew does not make it end as a takeover: the claim must be one the ledger recorded", async () => {
  const clock = { t: START };
  const dir = await Deno.makeTempDir();
  const ledgerDir = join(dir, "ledger");
  const me = Identity.generate();
  const worker = Identity.generate();
  const requester = Identity.generate();
  const job = textJob(requester, "planted-claim");
  const { receipt } = await proveOn(job, worker);
  const id = receiptId(receipt);
  const asked = Promise.withResolvers<void>();
  try {
    const before = new ActorSystem({ name: "s54-planted-before" });
    try {
      const validator = await spawnValidator(before, {
        identity: me,
        ledgerDir,
        clock,
        challengeProbability: 1,
        models: HONEST_MODELS,
        source: {
          proof: () => {
            asked.resolve();
            return new Promise<ServedProof | undefined>(() => {});
          },
        },
      });
      await validator.ask({ type: "deposit", key: worker.publicKey, amount: STAKE });
      await announceAssigned(validator, receipt, job, requester);
      await asked.promise;
    } finally {
      await before.shutdown();
    }
    // A well-formed claim, signed, but never recorded by this ledger.
    const claim = signVerdict({
      v: 1,
      subject: "inference",
      subjectId: id,
      target: receipt.worker,
      outcome: "invalid",
      reason: "proof_unavailable",
      issuedAt: clock.t,
    }, Identity.generate());
    await ReceiptFiles.in(ledgerDir, TAKEN_OVER_CLAIMS_DIR).save(id, { claim });
    const after = new ActorSystem({ name: "s54-planted-after" });
    try {
      const validator = await spawnValidator(after, {
        identity: me,
        ledgerDir,
        clock,
        challengeProbability: 1,
        models: HONEST_MODELS,
      });
      const reads = ledgerReads(() => validator, clock);
      await reads.closeWindow();
      assert.equal((await reads.record(id))?.status, "unpaid");
      assert.equal(
        (await ReceiptFiles.in(ledgerDir, TAKEN_OVER_CLAIMS_DIR).all()).size,
        0,
        "the file is removed with its challenge",
      );
    } finally {
      await after.shutdown();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
