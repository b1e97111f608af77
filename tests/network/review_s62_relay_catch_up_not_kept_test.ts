/**
 * Review s62: a catch-up receipt (`network/catch_up.ts`) refused `INSUFFICIENT_STAKE_NOT_KEPT`:
 * the peer's validator lacks the worker's stake and already keeps as many of that worker's
 * receipts as it keeps waiting for a pledge (`actors/_validator_memory.ts`), so it did not keep
 * this one. The catch-up reacted only to `insufficient_stake` (kept: the pledge is sent and the
 * peer takes it again), so one not kept was lost on that connection, and the honest worker went
 * unpaid there until a later connection sent it again. Now the pledge is sent and the receipt
 * again after it, once. The peer here is a real validator behind a connection that hands it each
 * request; asserted on its ledger: the worker is paid for every job it served.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { ActorContext } from "../../actors/actor.ts";
import type { ActorRef } from "../../actors/actor_ref.ts";
import { MAX_AWAITING_STAKE_PER_WORKER } from "../../actors/_validator_memory.ts";
import type {
  AssignedReceiptItem,
  CatchUpItem,
  ReceiptHandled,
  ValidatorMessage,
} from "../../actors/validator_messages.ts";
import { sendCatchUp } from "../../network/catch_up.ts";
import type { NetworkMessage } from "../../network/network_actor.ts";
import { signAssignment } from "../../protocols/assignment.ts";
import type { Connection } from "../../protocols/connection.ts";
import { toHex } from "../../protocols/hash.ts";
import { Identity } from "../../protocols/identity.ts";
import type {
  ReceiptAckBody,
  ReceiptAnnouncementBody,
} from "../../protocols/inference_messages.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { signStakePledge } from "../../protocols/stake_pledge.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { eventually } from "../_helpers/wait.ts";
import {
  HONEST_MODELS,
  inLedgerDir,
  ledgerReads,
  proveOn,
  spawnValidator,
  START,
  textJob,
} from "../actors/_validator_fixture.ts";

/** Receipts of the worker in the catch-up, past what the peer keeps waiting. */
const NOT_KEPT = 4;

/** `requester`'s assigned receipt of a job it forwarded to `worker`, as the catch-up holds it. */
async function assigned(
  requester: Identity,
  worker: Identity,
  tag: string,
): Promise<AssignedReceiptItem> {
  const job = textJob(requester, tag);
  const { receipt } = await proveOn(job, worker);
  const assignment = signAssignment({ job, worker: worker.publicKey, issuedAt: 0 }, requester);
  return { kind: "assigned_receipt", receipt, job, assignment };
}

/** A connection to the peer whose validator is `peer`: each receipt request handed to it. */
function connectionTo(peer: ActorRef<ValidatorMessage>, origin: string): Connection {
  return {
    isClosed: false,
    supports: () => true,
    request: async (_definition: unknown, body: ReceiptAnnouncementBody) => {
      const handled = await peer.ask<ReceiptHandled>({ type: "receipt", ...body, origin });
      const ack: ReceiptAckBody = { recorded: handled.recorded, refusal: handled.refusal };
      return ack;
    },
  } as unknown as Connection;
}

Deno.test("review s62: catch-up receipts a peer refused as not kept for the worker's pledge are sent again after the pledge: the honest worker is paid there for every job", () =>
  inLedgerDir(async (ledgerDir) => {
    const system = new ActorSystem({ name: "s62-catch-up-not-kept" });
    const clock = { t: START };
    try {
      const [a, worker] = [Identity.generate(), Identity.generate()];
      const peer = await spawnValidator(system, {
        identity: Identity.generate(),
        ledgerDir,
        models: HONEST_MODELS,
        challengeProbability: 0,
        clock,
      });
      const origin = toHex(a.publicKey);
      // The peer already keeps as many of the worker's receipts as it keeps waiting for its pledge
      // (gossip that outran the pledge).
      const early: AssignedReceiptItem[] = [];
      for (let n = 0; n < MAX_AWAITING_STAKE_PER_WORKER; n++) {
        const item = await assigned(a, worker, `s62-early-${n}`);
        const { kind: _, ...body } = item;
        const handled = await peer.ask<ReceiptHandled>({ type: "receipt", ...body, origin });
        assert.equal(handled.refusal, "insufficient_stake");
        early.push(item);
      }
      // A's catch-up: more of the worker's receipts that A assigned.
      const items: CatchUpItem[] = [];
      for (let n = 0; n < NOT_KEPT; n++) items.push(await assigned(a, worker, `s62-late-${n}`));
      const ctx = {
        system: { lookup: () => ({ ask: () => Promise.resolve(items) }) },
      } as unknown as ActorContext<NetworkMessage>;
      const pledge = signStakePledge(worker, 1_000_000, 1);
      let pledgesSent = 0;
      // As `PledgeSync.sendNeeded`: true once the pledge is written ahead of what follows.
      const sendPledge = async () => {
        pledgesSent++;
        await peer.ask({ type: "pledge", pledge, origin });
        return true;
      };
      sendCatchUp(connectionTo(peer, origin), "a-validator", ctx, undefined, sendPledge);

      const reads = ledgerReads(() => peer, clock);
      const all = [...early, ...items as AssignedReceiptItem[]];
      const recorded = async () => {
        const records = await Promise.all(
          all.map(({ receipt }) => reads.record(receiptId(receipt))),
        );
        return records.filter((record) => record !== undefined).length;
      };
      await eventually(async () => await recorded() === all.length, "every receipt recorded")
        .catch(() => {}); // lost: the ledger tells below
      await reads.closeWindow();
      const tokens = all.reduce((sum, { receipt }) => sum + receipt.tokenCount, 0);
      assert.equal(
        (await reads.account(worker.publicKey)).balance,
        tokens * DEFAULT_ECONOMICS.defaultTokenPrice,
        "the catch-up's receipts the peer did not keep went unpaid there",
      );
      assert.equal(pledgesSent, 1, "the pledge is sent once a connect");
    } finally {
      await system.shutdown();
    }
  }));
