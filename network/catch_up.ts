/**
 * The NetworkActor's half of a connecting peer's catch-up (`actors/_catch_up.ts`): a
 * ledger-keeping peer that connects is sent the fraud proofs this node's validator settled as
 * confirmed and the verdicts its start applied, whose receipt's window is still open. Gossip
 * reached only the peers connected when they were decided: at a node's first start, none; a peer
 * that was offline or joined later, never. Sent after this node's own pledge
 * (`PledgeSync.sendPledges` sends it first on connect), so the peer has the accuser's stake when
 * the proof comes (a peer's conviction's accuser has its pledge among the first pushed on connect,
 * the validator's `pledges` answer: a peer that lacks it holds the proof until it comes, not for
 * good, `tests/network/review_s42_catch_up_pledge_test.ts`); convictions first, so a connection that drops midway carries those. A peer
 * that has one already takes it once (a verdict by its id, a fraud proof by its hash or its
 * accuser's settled accusation, without running the model again). The bounds, and who pays for
 * them, are `_catch_up.ts`'s.
 *
 * @module
 */
import type { ActorContext } from "../actors/actor.ts";
import type { CatchUpItem, CatchUpMessage } from "../actors/validator_messages.ts";
import type { Connection } from "../protocols/connection.ts";
import {
  FraudProofAnnouncementMessage,
  VerdictAnnouncementMessage,
} from "../protocols/inference_messages.ts";
import type { NetworkMessage } from "./network_actor.ts";

/**
 * Ask the validator at `validator` (an actor path) for its catch-up and send it to the peer of
 * `connection`, one item after another (each waits for room in the connection's write budget).
 * A validator that does not answer (restarting) sends nothing to this peer. The catch-up
 * outlives the validator's restarts (one `CatchUp` per ledger directory), so a peer that
 * connects after a crash of the validator is still sent it
 * (`tests/network/network_review_s41_test.ts`).
 */
export function sendCatchUp(
  connection: Connection,
  validator: string,
  ctx: ActorContext<NetworkMessage>,
): void {
  ctx.system.lookup<CatchUpMessage>(validator)
    ?.ask<CatchUpItem[]>({ type: "catch_up" })
    .then(async (items) => {
      for (const item of items) {
        if (connection.isClosed) return;
        if (item.kind === "verdict") {
          await connection.notify(VerdictAnnouncementMessage, { verdict: item.verdict });
        } else {
          await connection.notify(FraudProofAnnouncementMessage, { proof: item.proof });
        }
      }
    })
    .catch(() => {}); // it closed, or the validator is restarting: nothing left to send
}
