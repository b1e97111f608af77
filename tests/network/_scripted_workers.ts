/**
 * What the router tests with scripted workers share (`queue_hold_test.ts`,
 * `review_s50_stalled_worker_test.ts`): the model the workers serve, its scripted tokens, a job
 * for it, and a stand-in for the NetworkActor that hands out workers.
 *
 * @module
 */
import type { Actor } from "../../actors/actor.ts";
import type { StreamedToken } from "../../inference/inference_port.ts";
import type { NetworkMessage } from "../../network/network_actor.ts";
import type { Connection } from "../../protocols/connection.ts";
import { toHex } from "../../protocols/hash.ts";
import type { TextJob } from "../../protocols/job.ts";
import { params, ScriptedModel } from "../server/_fixtures.ts";

/** The model every scripted worker serves. */
export const served = new ScriptedModel().info;
/** Tokens a job runs to. */
export const TOKENS = 4;

/** `TOKENS` tokens, the last one ending the job. */
export const script: StreamedToken[] = Array.from({ length: TOKENS }, (_, i) => ({
  index: i,
  tokenId: 97 + i,
  text: String.fromCharCode(97 + i),
  finishReason: i === TOKENS - 1 ? "length" : undefined,
}));

/** A job for {@link served} of {@link TOKENS} tokens, distinct by `nonce`. */
export const job = (nonce: string): TextJob => ({
  kind: "text",
  model: served.cid,
  prompt: "x",
  params: params({ maxTokens: TOKENS }),
  nonce,
});

/** Stands in for the NetworkActor: the first open worker not excluded, in the order given. */
export class Workers implements Actor<NetworkMessage> {
  /** @param connections The router's connections to its workers, best first. */
  constructor(readonly connections: Connection[]) {}
  /** Answers `worker` and `worker_models`. */
  receive(message: NetworkMessage): unknown {
    if (message.type === "worker") {
      const exclude = message.exclude ?? [];
      return this.connections.find((c) => !c.isClosed && !exclude.includes(toHex(c.peerKey!)));
    }
    if (message.type === "worker_models") return [served];
    return undefined;
  }
}
