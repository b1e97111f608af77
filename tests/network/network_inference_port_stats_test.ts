/**
 * The router's job counters (`NetworkInferencePort.stats`): a worker connection's counts are kept
 * when it closes, moved from the open ports to the closing ones and folded in once their jobs end.
 * A `stats()` call that is running while a connection closes must count that connection once: it
 * read the open ports, awaited, and then read the closing ones, where the port had moved meanwhile,
 * so its jobs were counted twice, and the next call's total was lower (a counter that went down on
 * `/metrics`).
 */
import { assertEquals } from "../server/_assert.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { Actor } from "../../actors/actor.ts";
import { InferenceActor, type InferenceMessage } from "../../actors/inference_actor.ts";
import type { ValidatorMessage } from "../../actors/validator_actor.ts";
import type { InferenceStats } from "../../inference/inference_port.ts";
import { LocalInferencePort } from "../../inference/local_port.ts";
import { serveInference } from "../../inference/serve_inference.ts";
import type { TokenChunk } from "../../inference/text_model.ts";
import { NetworkInferencePort } from "../../network/network_inference_port.ts";
import type { NetworkMessage } from "../../network/network_actor.ts";
import { proveJob } from "../../proof/prover.ts";
import { Connection } from "../../protocols/connection.ts";
import { Identity } from "../../protocols/identity.ts";
import { INFERENCE_PROTOCOL } from "../../protocols/inference_messages.ts";
import type { TextJob } from "../../protocols/job.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import { params, ScriptedModel, StaticModels } from "../server/_fixtures.ts";

/** Stands in for the NetworkActor: one worker connection. */
class OneWorker implements Actor<NetworkMessage> {
  constructor(readonly connection: Connection, readonly models: unknown[]) {}
  receive(message: NetworkMessage): unknown {
    if (message.type === "worker") return this.connection;
    if (message.type === "worker_models") return this.models;
    return undefined;
  }
}

/** Stands in for the ValidatorActor. */
class Nobody implements Actor<ValidatorMessage> {
  receive(): undefined {
    return undefined;
  }
}

Deno.test("red team s56: a stats() call running while a worker's connection closes counts its jobs once", async () => {
  const worker = Identity.generate();
  const model = new ScriptedModel();
  const system = new ActorSystem({ name: "router-stats" });
  const inference = await system.spawn<InferenceMessage>({
    name: "worker/inference",
    factory: () =>
      new InferenceActor({
        models: new StaticModels([model]),
        prover: async (job: TextJob, _id: string, chunks: ReadableStream<TokenChunk>) =>
          (await proveJob(job, chunks, worker)).receipt,
      }),
  });
  const [a, b] = memoryDuplexPair();
  const protocols = [INFERENCE_PROTOCOL];
  const [toWorker, atWorker] = await Promise.all([
    Connection.open(a, { identity: Identity.generate(), protocols }),
    Connection.open(b, { identity: worker, protocols }),
  ]);
  serveInference(
    atWorker,
    new LocalInferencePort({ inference, models: new StaticModels([model]) }),
  );
  const network = await system.spawn<NetworkMessage>({
    name: "relay/network",
    factory: () => new OneWorker(toWorker, [model.info]),
  });
  const validator = await system.spawn<ValidatorMessage>({
    name: "relay/validator",
    factory: () => new Nobody(),
  });
  const port = new NetworkInferencePort(network, validator);
  try {
    // Asked for the router's totals as the connection closes (a scrape, a heartbeat, the
    // dashboard: whatever runs in that turn), before the router has moved the port.
    let during: Promise<InferenceStats> | undefined;
    toWorker.closed.then(() => during = port.stats());
    const job: TextJob = {
      kind: "text",
      model: model.info.cid,
      prompt: "x",
      params: params({ maxTokens: 4 }),
      nonce: "n",
    };
    const handle = await port.submit(job);
    for await (const _ of handle.tokens) { /* relay every token */ }
    await handle.done;
    const before = await port.stats();
    assertEquals([before.jobsStarted, before.jobsFinished], [1, 1]);
    await toWorker.close();
    await atWorker.close();
    const counted = await during!;
    assertEquals(
      [counted.jobsStarted, counted.jobsFinished, counted.tokensGenerated],
      [before.jobsStarted, before.jobsFinished, before.tokensGenerated],
      "counted once while it closed",
    );
    const after = await port.stats();
    assertEquals(after, { ...before, activeJobs: 0, queuedJobs: 0 });
  } finally {
    await toWorker.close();
    await atWorker.close();
    await system.shutdown();
  }
});
