/**
 * A validator's own fraud proof is checked whatever its stake: one with less than the false
 * accusation penalty staked in its own ledger (a node run with `selfStake: 0`, or one whose
 * stake went on penalties) used to skip its own proof as `unstaked_accuser`, and the caught
 * cheat's receipt ended unpaid with nothing slashed (a review at stop 34).
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { Identity } from "../../protocols/identity.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { signServedProof } from "../../proof/served_proof.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import {
  announceAssigned,
  f,
  HONEST_MODELS,
  ledgerReads,
  proveOn,
  spawnValidator,
  START,
  textJob,
} from "./_validator_fixture.ts";

const WORKER_STAKE = 10_000;

for (const validatorStake of [1_000, 0]) {
  Deno.test(`a cheat caught by a validator with own stake ${validatorStake} is slashed`, async () => {
    const worker = Identity.generate();
    const requester = Identity.generate();
    const me = Identity.generate();
    const dir = await Deno.makeTempDir();
    const clock = { t: START };
    const system = new ActorSystem({ name: "unstaked" });
    try {
      const job = textJob(requester, crypto.randomUUID());
      const proved = await proveOn(job, worker, f.otherSeed); // a cheat: another model
      const id = receiptId(proved.receipt);
      const validator = await spawnValidator(system, {
        identity: me,
        ledgerDir: `${dir}/ledger`,
        clock,
        challengeProbability: 1,
        models: { has: (cid) => cid === f.honest.info.cid, ...HONEST_MODELS },
        source: { proof: () => Promise.resolve(signServedProof(id, proved.proof, worker)) },
      });
      await validator.ask({ type: "deposit", key: worker.publicKey, amount: WORKER_STAKE });
      if (validatorStake > 0) {
        await validator.ask({ type: "deposit", key: me.publicKey, amount: validatorStake });
      }
      const handled = await announceAssigned(validator, proved.receipt, job, requester);
      const { verdict } = await handled.result!;
      const ledger = ledgerReads(() => validator, clock);
      await ledger.closeWindow();
      const record = (await ledger.record(id))!;
      const account = await ledger.account(worker.publicKey);
      const slash = proved.receipt.tokenCount * DEFAULT_ECONOMICS.defaultTokenPrice *
        DEFAULT_ECONOMICS.slashMultiplier;
      assert.equal(verdict.outcome, "fraud");
      assert.equal(record.status, "fraud", "the caught cheat's receipt did not end as fraud");
      assert.equal(account.stake, WORKER_STAKE - slash, "the caught cheat was not slashed");
    } finally {
      await system.shutdown();
      await Deno.remove(dir, { recursive: true });
    }
  });
}
