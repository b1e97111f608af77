/**
 * The NetworkActor's half of a connecting peer's catch-up (`actors/_catch_up.ts`): a
 * ledger-keeping peer that connects is sent the fraud proofs this node's validator settled as
 * confirmed and the verdicts its start applied, whose receipt's window is still open. Gossip
 * reached only the peers connected when they were decided: at a node's first start, none; a peer
 * that was offline or joined later, never. Sent after this node's own pledge
 * (`PledgeSync.sendPledges` sends it first on connect), so the peer has the accuser's stake when
 * the proof comes (a peer's conviction's accuser has its pledge among the first pushed on connect,
 * the validator's `pledges` answer: a peer that lacks it holds the proof until it comes, not for
 * good, `tests/network/review_s42_catch_up_pledge_test.ts`); convictions first, so a connection
 * that drops midway carries those. A training conviction goes as training gossip
 * (`training.fraud_proof`), to a peer that offers training only (its training validator checks
 * it; `tests/training/training_catch_up_test.ts`). A peer that has one already takes it once (a
 * verdict by its id, a fraud proof by its hash or its accuser's settled accusation, without
 * running the model again). The bounds, and who pays for them, are `_catch_up.ts`'s.
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
import { TRAINING_PROTOCOL, TrainingFraudProofMessage } from "../protocols/training_messages.ts";
import { FrameTooLargeError } from "../protocols/protocol_errors.ts";
import type { NetworkMessage } from "./network_actor.ts";

/**
 * Ask the validator at `validator` (an actor path) for its catch-up and send it to the peer of
 * `connection`, one item after another (each waits for room in the connection's write budget).
 * A validator that does not answer (restarting) sends nothing to this peer. The catch-up
 * outlives the validator's restarts (one `CatchUp` per ledger directory), so a peer that
 * connects after a crash of the validator is still sent it
 * (`tests/network/network_review_s41_test.ts`); its convictions are kept on disk, so also after
 * the node's process restarted (`tests/network/catch_up_restart_test.ts`).
 */
export function sendCatchUp(
  connection: Connection,
  validator: string,
  ctx: ActorContext<NetworkMessage>,
): void {
  ctx.system.lookup<CatchUpMessage>(validator)
    ?.ask<CatchUpItem[]>({ type: "catch_up" })
    .then(async (items) => {
      const training = connection.supports(TRAINING_PROTOCOL.name);
      for (const item of items) {
        if (connection.isClosed) return;
        await send(connection, item, training).catch((error) => {
          // Larger than a frame (a training proof of a large model: gossip could not carry it
          // either): that one is not sent, the rest are. Anything else: the connection closed.
          if (!(error instanceof FrameTooLargeError)) throw error;
        });
      }
    })
    .catch(() => {}); // it closed, or the validator is restarting: nothing left to send
}

/** Send one catch-up item; a training conviction only to a peer that offers training. */
function send(connection: Connection, item: CatchUpItem, training: boolean): Promise<void> {
  switch (item.kind) {
    case "verdict":
      return connection.notify(VerdictAnnouncementMessage, { verdict: item.verdict });
    case "fraud_proof":
      return connection.notify(FraudProofAnnouncementMessage, { proof: item.proof });
    case "training_fraud_proof":
      return training ? connection.notify(TrainingFraudProofMessage, item.body) : Promise.resolve();
  }
}
