/**
 * A worker that accepts a job and then says nothing keeps its connection alive (it answers
 * pings), so no connection loss ever moves the job on: the router's own timers must.
 */
import { assert, assertEquals } from "../server/_assert.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { Actor } from "../../actors/actor.ts";
import { InferenceActor, type InferenceMessage } from "../../actors/inference_actor.ts";
import { LocalInferencePort } from "../../inference/local_port.ts";
import { serveInference } from "../../inference/remote_port.ts";
import type {
  InferenceHandle,
  InferencePort,
  InferenceStats,
  ServedModelInfo,
  SubmitOptions,
} from "../../inference/inference_port.ts";
import { NetworkInferencePort } from "../../network/network_inference_port.ts";
import type { NetworkMessage } from "../../network/network_actor.ts";
import { Connection } from "../../protocols/connection.ts";
import { Identity } from "../../protocols/identity.ts";
import { INFERENCE_PROTOCOL } from "../../protocols/inference_messages.ts";
import type { TextJob } from "../../protocols/job.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import { toHex } from "../../protocols/hash.ts";
import { params, ScriptedModel, StaticModels } from "../server/_fixtures.ts";

/** Stands in for the NetworkActor: the first open worker not excluded. */
class Workers implements Actor<NetworkMessage> {
  constructor(readonly connections: Connection[], readonly models: unknown[]) {}
  receive(message: NetworkMessage): unknown {
    if (message.type === "worker") {
      const exclude = message.exclude ?? [];
      return this.connections.find((c) => !c.isClosed && !exclude.includes(toHex(c.peerKey!)));
    }
    if (message.type === "worker_models") return this.models;
    return undefined;
  }
}

/** A port that accepts every submission and never answers it, until its requester cancels. */
class SilentPort implements InferencePort {
  submits = 0;
  cancelled = 0;
  constructor(readonly served: ServedModelInfo[]) {}
  submit(_job: TextJob, options?: SubmitOptions): Promise<InferenceHandle> {
    this.submits++;
    return new Promise((_, reject) => {
      options?.signal?.addEventListener("abort", () => {
        this.cancelled++;
        reject(options.signal!.reason);
      }, { once: true });
    });
  }
  models(): Promise<readonly ServedModelInfo[]> {
    return Promise.resolve(this.served);
  }
  stats(): Promise<InferenceStats> {
    return Promise.reject(new Error("not asked"));
  }
}

/** Fails the test if `promise` has not settled after `ms` (it would otherwise hang for ever). */
async function settlesWithin<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: still pending after ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

Deno.test("a worker that accepts a job and never starts it is passed over after the start timeout: the job completes on the next worker", async () => {
  const model = new ScriptedModel();
  const system = new ActorSystem({ name: "silent-worker-test" });
  const models = new StaticModels([model]);
  const inference = await system.spawn<InferenceMessage>({
    name: "honest/inference",
    factory: () => new InferenceActor({ models }),
  });
  const silent = new SilentPort([]); // the stand-in network actor lists the models
  const protocols = [INFERENCE_PROTOCOL];
  const links: Connection[] = [];
  const toWorkers: Connection[] = [];
  for (const port of [silent, new LocalInferencePort({ inference, models })]) {
    const [a, b] = memoryDuplexPair();
    const [toWorker, atWorker] = await Promise.all([
      Connection.open(a, { identity: Identity.generate(), protocols }),
      Connection.open(b, { identity: Identity.generate(), protocols }),
    ]);
    serveInference(atWorker, port);
    links.push(toWorker, atWorker);
    toWorkers.push(toWorker);
  }
  const network = await system.spawn<NetworkMessage>({
    name: "router/network",
    // The silent worker is the router's first choice.
    factory: () => new Workers(toWorkers, [model.info]),
  });
  // A short start timeout; the job's outcome does not depend on when exactly it fires.
  const port = new NetworkInferencePort(network, undefined, undefined, { startTimeoutMs: 50 });
  const job: TextJob = {
    kind: "text",
    model: model.info.cid,
    prompt: "x",
    params: params({ maxTokens: 4 }),
    nonce: "n",
  };
  try {
    const handle = await settlesWithin(port.submit(job), 10_000, "submit");
    const reader = handle.tokens.getReader();
    let tokens = 0;
    while (!(await reader.read()).done) tokens++;
    assertEquals(tokens, 4);
    const summary = await handle.done;
    assertEquals(summary.finishReason, "length");
    assertEquals(silent.submits, 1, "the silent worker was tried first");
    // The router cancelled the job it gave up on, so the silent worker's slot is free again.
    await settlesWithin(
      (async () => {
        while (silent.cancelled === 0) await new Promise((r) => setTimeout(r, 5));
      })(),
      5_000,
      "the silent worker's cancel",
    );
    assert(silent.cancelled === 1);
  } finally {
    for (const c of links) await c.close();
    await system.shutdown();
  }
});
