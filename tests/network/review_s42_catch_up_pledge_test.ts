/**
 * Review s42: a connecting peer's catch-up (`network/catch_up.ts`) sends the convictions this
 * node confirmed, a peer's among them, but not their accusers' pledges. Gossip sends a proof's
 * accuser pledge just ahead of it (`PledgeSync.sendAhead`); the catch-up relies on the pledges
 * pushed on connect, which are at most `PLEDGES_PUSHED_ON_CONNECT` (47) of the keys active here,
 * the newest first. A ledger that was offline while the accuser's pledge was gossiped, in a
 * network with more active keys than that, holds the proof for a pledge that never comes
 * (`_pledge_held_proofs.ts`), and pays the cheat every other ledger slashed.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { FraudProof } from "../../protocols/fraud_proof.ts";
import { Identity } from "../../protocols/identity.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { PLEDGES_PUSHED_ON_CONNECT, signStakePledge } from "../../protocols/stake_pledge.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { signServedProof } from "../../proof/served_proof.ts";
import { eventually } from "../_helpers/wait.ts";
import {
  announceAssigned,
  f,
  HONEST_MODELS,
  ledgerReads,
  proveOn,
  spawnValidator,
  START,
  textJob,
} from "../actors/_validator_fixture.ts";
import { joinLedgerNodes, spawnLedgerNode } from "./_ledger_node.ts";

const STAKE = 10_000;

Deno.test("review s42: a peer's conviction sent in the catch-up reaches a ledger that lacks its accuser's pledge: the cheat is slashed there too", async () => {
  const dir = await Deno.makeTempDir();
  const clock = { t: START };
  const system = new ActorSystem({ name: "s42-catch-up-pledge" });
  try {
    const [v, worker, requester] = Array.from({ length: 3 }, Identity.generate);
    const job = textJob(requester, crypto.randomUUID());
    const proved = await proveOn(job, worker, f.otherSeed); // a cheat: another model
    const id = receiptId(proved.receipt);
    // V catches the cheat on its own (connected to no one here): its fraud proof.
    const caught = Promise.withResolvers<FraudProof>();
    const vValidator = await spawnValidator(system, {
      identity: v,
      ledgerDir: `${dir}/v`,
      clock,
      models: HONEST_MODELS,
      challengeProbability: 1,
      source: { proof: () => Promise.resolve(signServedProof(id, proved.proof, worker)) },
      onActivity: (a) => {
        if (a.kind === "verdict" && a.fraudProof) caught.resolve(a.fraudProof);
      },
    });
    await vValidator.ask({ type: "deposit", key: worker.publicKey, amount: STAKE });
    (await announceAssigned(vValidator, proved.receipt, job, requester)).result?.catch(() => {});
    const proof = await caught.promise;

    const node = (name: string) =>
      spawnLedgerNode(system, dir, name, {
        identity: Identity.generate(),
        models: HONEST_MODELS,
        clock,
      });
    // A holds V's pledge (gossiped long ago), then more active keys than a connect pushes.
    const a = await node("a");
    assert.equal(
      await a.validator.ask({ type: "pledge", pledge: signStakePledge(v, STAKE, START) }),
      true,
    );
    for (let i = 0; i < PLEDGES_PUSHED_ON_CONNECT + 2; i++) {
      const key = Identity.generate();
      await a.validator.ask({ type: "pledge", pledge: signStakePledge(key, STAKE, START) });
      await a.validator.ask({ type: "deposit", key: key.publicKey, amount: 1 }); // active
    }
    // C was offline when V's pledge was gossiped; both hold the cheat's receipt and its stake.
    const c = await node("c");
    for (const ledger of [a, c]) {
      await ledger.validator.ask({ type: "deposit", key: worker.publicKey, amount: STAKE });
      assert.equal(
        (await announceAssigned(ledger.validator, proved.receipt, job, requester)).recorded,
        true,
      );
    }
    // V's proof reaches A (gossip from V's side): A confirms it.
    await a.validator.ask({ type: "fraud_proof", proof, origin: "cd".repeat(32) });
    const aReads = ledgerReads(() => a.validator, clock);
    await eventually(
      async () => (await aReads.record(id))?.status === "fraud",
      "A to confirm V's proof",
    );

    await joinLedgerNodes(a, c);
    const cReads = ledgerReads(() => c.validator, clock);
    await eventually(
      async () => (await cReads.record(id))?.status === "fraud",
      "the conviction to settle at C",
    ).catch(() => {}); // lost: the window closes below
    await cReads.closeWindow();
    const slash = proved.receipt.tokenCount * DEFAULT_ECONOMICS.defaultTokenPrice *
      DEFAULT_ECONOMICS.slashMultiplier;
    assert.equal(
      (await cReads.record(id))?.status,
      "fraud",
      "the ledger that connected after the conviction settled the cheat's receipt otherwise",
    );
    assert.equal((await cReads.account(worker.publicKey)).stake, STAKE - slash);
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
