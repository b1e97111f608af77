/**
 * A worker that lists a model and refuses every job for it: the router stops picking it for that
 * model, so such peers (four Sybil keys in a review, each claiming a huge free capacity) cost a
 * model's jobs one try each, not every job.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { ActorRef } from "../../actors/actor_ref.ts";
import { NetworkActor, type NetworkMessage, type PeerInfo } from "../../network/network_actor.ts";
import { NetworkInferencePort } from "../../network/network_inference_port.ts";
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
import { eventually } from "../_helpers/wait.ts";

const MODEL = "bafkmodelm";
const INFO: ServedModelInfo = { cid: MODEL, name: "m", kind: "text" };
const job = (nonce: string): TextJob => ({
  kind: "text",
  model: MODEL,
  prompt: "hi",
  params: params({ maxTokens: 2 }),
  nonce,
});

/** A worker that lists the model and either runs a two-token job or refuses `unknown_model`. */
class Worker implements InferencePort {
  submits = 0;
  constructor(readonly refuses: boolean) {}
  models() {
    return Promise.resolve([INFO]);
  }
  stats() {
    return Promise.resolve(emptyInferenceStats());
  }
  submit(j: TextJob): Promise<InferenceHandle> {
    this.submits++;
    if (this.refuses) return Promise.reject(new VeriflowError("unknown_model", "not here"));
    const summary: JobSummary = {
      jobId: jobId(j),
      finishReason: "length",
      usage: { promptTokens: 1, completionTokens: 2 },
      timings: { queueMs: 0, ttftMs: 0, totalMs: 0, tokensPerS: 0 },
    };
    const tokens = ReadableStream.from<StreamedToken>([
      { index: 0, tokenId: 65, text: "a" } as StreamedToken,
      { index: 1, tokenId: 66, text: "b", finishReason: "length" } as StreamedToken,
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

/** Connect `worker` to the router's network actor; it says `load` in a signed hello. */
async function connect(net: ActorRef<NetworkMessage>, worker: Worker, load: PeerLoad) {
  const identity = Identity.generate();
  const [a, b] = memoryDuplexPair();
  const opened = Connection.open(b, { identity, protocols: [INFERENCE_PROTOCOL, PEER_PROTOCOL] })
    .then((c) => {
      serveInference(c, worker);
      return c;
    });
  const [, peer] = await Promise.all([
    net.ask({ type: "attach", duplex: a, address: "mem", outbound: true }),
    opened,
  ]);
  const hello: PeerHelloBody = { version: "1.0.0", roles: ["inference"], models: [MODEL], load };
  await peer.notify(PeerHelloMessage, { hello: signPeerHello(identity, hello, 1, Date.now()) });
}

Deno.test("workers that list a model and refuse its jobs cost one job's tries, then the honest worker gets the rest", async () => {
  const system = new ActorSystem({ name: "model-refusal-test" });
  try {
    const net = await system.spawn<NetworkMessage>({
      name: "r/network",
      factory: () => new NetworkActor({ identity: Identity.generate(), services: {} }),
    });
    const port = new NetworkInferencePort(net);
    const honest = new Worker(false);
    await connect(net, honest, { running: 1, queued: 0, slots: 4, queueLimit: 4 });
    const huge = { running: 0, queued: 0, slots: 1_000_000, queueLimit: 1_000_000 };
    const liars = [0, 1, 2, 3].map(() => new Worker(true));
    for (const liar of liars) await connect(net, liar, huge);
    await eventually(async () => {
      const peers = await net.ask<PeerInfo[]>({ type: "peers" });
      return peers.filter((p) => p.models.length > 0 && p.load).length === 5 ? true : undefined;
    }, "every worker listed and said its load");
    let ok = 0;
    for (let i = 0; i < 10; i++) {
      try {
        const handle = await port.submit(job(`j${i}`));
        for await (const _ of handle.tokens) { /* run it */ }
        ok++;
      } catch (error) {
        assert.equal((error as VeriflowError).code, "unknown_model");
      }
    }
    // The first job tried the four liars (each looks idle and huge); every later one ran.
    assert.equal(ok, 9);
    assert.equal(honest.submits, 9);
    assert.deepEqual(liars.map((l) => l.submits), [1, 1, 1, 1]);
  } finally {
    await system.shutdown();
  }
});
