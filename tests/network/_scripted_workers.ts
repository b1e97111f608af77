/**
 * What the router tests with scripted workers share (`failover_test.ts`,
 * `silent_worker_test.ts`): the model the workers serve, its scripted tokens, a job
 * for it, and a router over them on one fake clock (its NetworkActor `_router_doubles.ts`'s).
 *
 * @module
 */
import { ActorSystem } from "../../actors/actor_system.ts";
import { serveInference } from "../../inference/serve_inference.ts";
import type { InferencePort, StreamedToken } from "../../inference/inference_port.ts";
import type { BusyRefusals } from "../../network/busy_refusals.ts";
import type { NetworkMessage } from "../../network/network_actor.ts";
import { NetworkInferencePort } from "../../network/network_inference_port.ts";
import { Connection } from "../../protocols/connection.ts";
import { Identity } from "../../protocols/identity.ts";
import { INFERENCE_PROTOCOL } from "../../protocols/inference_messages.ts";
import type { TextJob } from "../../protocols/job.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import { ManualTimers } from "../protocols/_helpers.ts";
import { params, ScriptedModel } from "../server/_fixtures.ts";
import { Workers } from "./_router_doubles.ts";

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

/**
 * A router over `ports`, in the order the network picks them, on one fake clock: each port is
 * served over an in-memory connection as a worker's. `options.busy` makes the router's memory of
 * refusals (on the same clock); `options.name` names the actor system.
 */
export async function routerOver(
  ports: InferencePort[],
  options: { name?: string; busy?: (timers: ManualTimers) => BusyRefusals } = {},
) {
  const system = new ActorSystem({ name: options.name ?? "scripted-workers" });
  const timers = new ManualTimers();
  const links: Connection[] = [];
  const toWorkers: Connection[] = [];
  for (const port of ports) {
    const [a, b] = memoryDuplexPair();
    const protocols = [INFERENCE_PROTOCOL];
    const [toWorker, atWorker] = await Promise.all([
      Connection.open(a, { identity: Identity.generate(), protocols }),
      Connection.open(b, { identity: Identity.generate(), protocols }),
    ]);
    serveInference(atWorker, port, { timers });
    links.push(toWorker, atWorker);
    toWorkers.push(toWorker);
  }
  const network = await system.spawn<NetworkMessage>({
    name: "router/network",
    factory: () => new Workers(toWorkers, [served]),
  });
  const port = new NetworkInferencePort(
    network,
    undefined,
    undefined,
    { timers },
    options.busy?.(timers),
  );
  const close = async () => {
    for (const c of links) await c.close();
    await system.shutdown();
  };
  return { port, timers, close };
}
