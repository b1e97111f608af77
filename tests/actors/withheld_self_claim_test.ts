/**
 * A "proof withheld" claim signed by the very worker it accuses is refused at the verdict intake
 * (`actors/_peer_verdicts.ts`), as the worker's own fraud proof is (`self_accusation`). Review s76
 * (F5): it was recorded, passed on, and taken over — a takeover from the shared budget and a
 * challenge in every ledger it reached, on the word of the one key that cannot be evidence
 * against anyone else.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { ActorRef } from "../../actors/actor_ref.ts";
import type { ValidatorMessage, ValidatorStats } from "../../actors/validator_actor.ts";
import type { NetworkMessage } from "../../network/network_actor.ts";
import { RecordingNetwork } from "../_helpers/recording_network.ts";
import { Identity } from "../../protocols/identity.ts";
import { verdictId } from "../../protocols/verdict.ts";
import { eventually } from "../_helpers/wait.ts";
import { signStakePledge } from "../../protocols/stake_pledge.ts";
import type { ReceiptRecord } from "../../proof/ledger.ts";
import {
  assignedProof,
  HONEST_MODELS,
  spawnValidator,
  START,
  withheldVerdict,
} from "./_validator_fixture.ts";

const PEER = "ee".repeat(32);
const { worker, job, proved, id, assignment } = await assignedProof(
  "withheld-self-claim",
);
const claimant = Identity.generate();

Deno.test("the accused worker's own 'proof withheld' claim about its receipt is refused: not recorded, not passed on, not taken over", async () => {
  const root = await Deno.makeTempDir();
  const system = new ActorSystem({ name: "withheld-self-claim" });
  const clock = { t: START };
  const published: NetworkMessage[] = [];
  try {
    await system.spawn<NetworkMessage>({
      name: "test/network",
      factory: () => new RecordingNetwork(published),
    });
    const v: ActorRef<ValidatorMessage> = await spawnValidator(system, {
      name: "v/validator",
      identity: Identity.generate(),
      ledgerDir: `${root}/v`,
      clock,
      challengeProbability: 0,
      models: HONEST_MODELS,
      network: "test/network",
    });
    for (const key of [worker, claimant]) {
      await v.ask({ type: "pledge", pledge: signStakePledge(key, 1_000_000, 1), origin: PEER });
    }
    await v.ask({ type: "receipt", receipt: proved.receipt, job, assignment, origin: PEER });
    const before = await v.ask<ValidatorStats>({ type: "stats" });
    const own = withheldVerdict(id, worker.publicKey, START, worker);
    assert.equal(await v.ask({ type: "verdict", verdict: own, origin: PEER }), undefined);
    const after = await v.ask<ValidatorStats>({ type: "stats" });
    assert.equal(after.refusedVerdicts, before.refusedVerdicts + 1, "refused");
    assert.equal(after.peerVerdicts, before.peerVerdicts, "not recorded");
    assert.equal(after.openChallenges, 0, "no takeover on the worker's own word");
    assert.equal(
      (await v.ask<ReceiptRecord>({ type: "receipt_status", receiptId: id })).status,
      "pending",
    );
    // Another staked key's claim about the same receipt is still taken (the control).
    const other = withheldVerdict(id, worker.publicKey, START, claimant);
    assert.equal(typeof await v.ask({ type: "verdict", verdict: other, origin: PEER }), "string");
    assert.equal(
      (await v.ask<ValidatorStats>({ type: "stats" })).peerVerdicts,
      before.peerVerdicts + 1,
    );
    // ... and passed on: what the recording network sees, the refused claim was never sent.
    await eventually(() => published.some((m) => m.type === "publish_verdict"));
    const sent = published.flatMap((m) => m.type === "publish_verdict" ? [m.verdict] : []);
    assert.deepEqual(sent.map((verdict) => verdictId(verdict)), [verdictId(other)]);
  } finally {
    await system.shutdown();
    await Deno.remove(root, { recursive: true });
  }
});
