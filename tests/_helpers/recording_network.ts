/**
 * A stand-in for the NetworkActor that records every message it is told (for tests of actors
 * that tell the network about peers: convictions, refusals, pledges).
 */
import type { Actor } from "../../actors/actor.ts";
import type { NetworkMessage } from "../../network/network_actor.ts";

/** Records what it is told in `told`; answers nothing. */
export class RecordingNetwork implements Actor<NetworkMessage> {
  /** @param told Where each message goes, in order. */
  constructor(readonly told: NetworkMessage[]) {}

  /** Record `message`. */
  receive(message: NetworkMessage): undefined {
    this.told.push(message);
    return undefined;
  }
}
