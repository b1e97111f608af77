/**
 * A router's workers, for tests of whom a NetworkActor's inference port picks: a worker that
 * runs a two-token job or refuses it with a given error, connected in memory with a signed hello
 * that lists the model and says its load.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { ActorRef } from "../../actors/actor_ref.ts";
import type { NetworkMessage } from "../../network/network_actor.ts";
import { Connection } from "../../protocols/connection.ts";
import { Identity } from "../../protocols/identity.ts";
import { INFERENCE_PROTOCOL } from "../../protocols/inference_messages.ts";
import {
  PEER_PROTOCOL,
  type PeerHelloBody,
  PeerHelloMessage,
  type PeerLoad,
  signPeerHello,
} from "../../protocols/peer_hello.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import { serveInference } from "../../inference/serve_inference.ts";
import {
  emptyInferenceStats,
  type InferenceHandle,
  type InferencePort,
  type JobSummary,
  type ServedModelInfo,
  type StreamedToken,
} from "../../inference/inference_port.ts";
import { jobId, type TextJob } from "../../protocols/job.ts";
import { VeriflowError } from "../../protocols/errors.ts";
import { params } from "../server/_fixtures.ts";

/** The one model every worker lists. */
export const MODEL = "bafkmodelm";
/** {@link MODEL} as a worker serves it. */
export const INFO: ServedModelInfo = { cid: MODEL, name: "m", kind: "text" };

/** A two-token job on {@link MODEL}. */
export const job = (nonce: string): TextJob => ({
  kind: "text",
  model: MODEL,
  prompt: "hi",
  params: params({ maxTokens: 2 }),
  nonce,
});

/** A worker that runs a two-token job, or refuses it with `code` while `refuses`. */
export class TwoTokenWorker implements InferencePort {
  /** Jobs submitted to it, refused or not. */
  submits = 0;
  /** Jobs it ran. */
  ran = 0;
  constructor(public refuses: boolean, readonly code: string, readonly message: string) {}
  models(): Promise<ServedModelInfo[]> {
    return Promise.resolve([INFO]);
  }
  stats(): ReturnType<InferencePort["stats"]> {
    return Promise.resolve(emptyInferenceStats());
  }
  submit(j: TextJob): Promise<InferenceHandle> {
    this.submits++;
    if (this.refuses) return Promise.reject(new VeriflowError(this.code, this.message));
    this.ran++;
    const summary: JobSummary = {
      jobId: jobId(j),
      finishReason: "length",
      usage: { promptTokens: 1, completionTokens: 2 },
      timings: { queueMs: 0, ttftMs: 0, totalMs: 0, tokensPerS: 0 },
    };
    const tokens = ReadableStream.from<StreamedToken>([
      { index: 0, tokenId: 65, text: "a" },
      { index: 1, tokenId: 66, text: "b", finishReason: "length" },
    ]);
    return Promise.resolve({
      jobId: jobId(j),
      model: INFO,
      promptTokens: 1,
      tokens,
      done: Promise.resolve(summary),
      cancel: () => {},
    });
  }
}

/**
 * Connect `worker` to the router's network actor `net`; it says `load` in a signed hello, under
 * `as.identity` (a new one by default), serving `as.model` (the fixture's model by default).
 * Resolves with the router's end of the connection.
 */
export async function connectWorker(
  net: ActorRef<NetworkMessage>,
  worker: InferencePort,
  load: PeerLoad,
  as: { identity?: Identity; model?: string } = {},
): Promise<Connection> {
  const identity = as.identity ?? Identity.generate();
  const [a, b] = memoryDuplexPair();
  const protocols = [INFERENCE_PROTOCOL, PEER_PROTOCOL];
  const opened = Connection.open(b, { identity, protocols }).then((c) => {
    serveInference(c, worker);
    return c;
  });
  const [, peer] = await Promise.all([
    net.ask({ type: "attach", duplex: a, address: "mem", outbound: true }),
    opened,
  ]);
  const hello: PeerHelloBody = {
    version: "1.0.0",
    roles: ["inference"],
    models: [as.model ?? MODEL],
    load,
  };
  await peer.notify(PeerHelloMessage, { hello: signPeerHello(identity, hello, 1, Date.now()) });
  return peer;
}

/** What `promise` rejected with; it must reject (a refused job, a refused listing). */
export async function refusal(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  assert.fail("expected a refusal");
}
