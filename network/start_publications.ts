/**
 * The NetworkActor's half of passing on what this node's validator decided or resumed at its
 * start (`actors/_start_publications.ts`): a ledger-keeping peer that connects is sent those
 * verdicts and own fraud proofs whose receipt's window is still open. At a node's first start the
 * validator starts before this actor, and the peers connect after it: told at once, they reached
 * nobody. Sent after this node's own pledge (`PledgeSync.sendPledges` sends it first on connect),
 * so the peer has the accuser's stake when the proof comes; a peer that has one already takes it
 * once (a verdict by its id, a fraud proof by its hash).
 *
 * @module
 */
import type { ActorContext } from "../actors/actor.ts";
import type { StartPublication, StartPublicationsMessage } from "../actors/validator_messages.ts";
import type { Connection } from "../protocols/connection.ts";
import {
  FraudProofAnnouncementMessage,
  VerdictAnnouncementMessage,
} from "../protocols/inference_messages.ts";
import type { NetworkMessage } from "./network_actor.ts";

/**
 * Ask the validator at `validator` (an actor path) for its start's publications and send them to
 * the peer of `connection`, one after another (each waits for room in the connection's write
 * budget). A validator that does not answer (restarting) sends nothing to this peer. What its
 * start passed on outlives its restarts (one `StartPublications` per ledger directory), so a peer
 * that connects after a crash of the validator is still sent it
 * (`tests/network/network_review_s41_test.ts`).
 */
export function sendStartPublications(
  connection: Connection,
  validator: string,
  ctx: ActorContext<NetworkMessage>,
): void {
  ctx.system.lookup<StartPublicationsMessage>(validator)
    ?.ask<StartPublication[]>({ type: "start_publications" })
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
