/**
 * Shared setup for the late-cancel tests (`late_cancel_receipt_test.ts`,
 * `late_cancel_floor_test.ts`, `router_cancel_floor_test.ts`): two nodes in memory, a worker
 * (InferenceActor, ProverActor, the honest model, served as a node serves its peers) and a router
 * (a `NetworkInferencePort` whose validator keeps a real ledger), plus a third ledger that hears
 * the router's gossip. The worker holds {@link WORKER_STAKE} in both ledgers.
 *
 * @module
 */
import type { Actor } from "../../actors/actor.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { InferenceHandle, InferencePort, JobSummary } from "../../inference/inference_port.ts";
import type { NetworkMessage } from "../../network/network_actor.ts";
import { NetworkInferencePort } from "../../network/network_inference_port.ts";
import { servePeer } from "../../network/peer_services.ts";
import { proverCut, proverJobTrace } from "../../actors/prover_actor.ts";
import { serveInference, UnsentReceipts } from "../../inference/serve_inference.ts";
import type { ConnectionTimers } from "../../protocols/connection_timers.ts";
import { Connection } from "../../protocols/connection.ts";
import { Identity } from "../../protocols/identity.ts";
import { INFERENCE_PROTOCOL } from "../../protocols/inference_messages.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import { HONEST_MODELS, ledgerReads, spawnValidator, START } from "../actors/_validator_fixture.ts";
import { spawnHonestInference } from "./_honest_inference.ts";
import { OneWorker, spawnRouter } from "./_proving_worker.ts";

/** The worker's stake, deposited in the router's ledger and the third one. */
export const WORKER_STAKE = 1_000_000;

/** A clock that never moves: a worker's gathering (`gatherMs`) waits for its event to fill. */
const STILL_CLOCK: ConnectionTimers = {
  now: () => 0,
  setTimeout: () => undefined,
  clearTimeout: () => {},
};

/** A receipt a validator gossips. */
export type Announced = Extract<NetworkMessage, { type: "announce_receipt" }>;

/** The router's network stand-in, keeping what its validator gossips. */
export class GossipingWorker extends OneWorker {
  readonly announced: Announced[] = [];
  override receive(message: NetworkMessage): unknown {
    if (message.type === "announce_receipt") this.announced.push(message);
    return super.receive(message);
  }
}

/** A third node's network stand-in: what its validator gossips on. */
export class Gossip implements Actor<NetworkMessage> {
  readonly announced: Announced[] = [];
  receive(message: NetworkMessage): unknown {
    if (message.type === "announce_receipt") this.announced.push(message);
    return undefined;
  }
}

/** The worker's local port, keeping each job's own summary (its finished receipt). */
export class Summaries implements InferencePort {
  readonly done: Promise<JobSummary>[] = [];
  constructor(readonly inner: InferencePort) {}
  models(): ReturnType<InferencePort["models"]> {
    return this.inner.models();
  }
  stats(): ReturnType<InferencePort["stats"]> {
    return this.inner.stats();
  }
  async submit(...args: Parameters<InferencePort["submit"]>): Promise<InferenceHandle> {
    const handle = await this.inner.submit(...args);
    this.done.push(handle.done);
    return handle;
  }
}

/**
 * Router, worker and a third ledger. `name`: the actor systems' names (`${name}-router`,
 * `${name}-worker`). `cuts`: the worker serves its peers with its prover named, so it signs a
 * cancelled receipt over `held` (false: it answers as a worker from before `held`). `network`: the
 * router's network stand-in, connected to the worker here. `grouped`: the router asks for
 * events of up to that many tokens, and the worker gathers them on a clock that never moves, so
 * each event after its first token holds `grouped` tokens (or the job's rest): deterministic
 * events of several tokens, which the router's connection takes whole and its reader one by one.
 */
export async function setUpLateCancel<N extends GossipingWorker>(
  options: { name: string; cuts: boolean; network: N; grouped?: number },
) {
  const { name, cuts, network, grouped } = options;
  const dir = await Deno.makeTempDir();
  const clock = { t: START };
  const routerSystem = new ActorSystem({ name: `${name}-router` });
  const workerSystem = new ActorSystem({ name: `${name}-worker` });
  const [router, worker] = [Identity.generate(), Identity.generate()];
  const { networkRef, validator } = await spawnRouter(routerSystem, dir, clock, router, network);
  await validator.ask({ type: "deposit", key: worker.publicKey, amount: WORKER_STAKE });
  const gossip = new Gossip();
  await routerSystem.spawn<NetworkMessage>({ name: "third/network", factory: () => gossip });
  const third = await spawnValidator(routerSystem, {
    name: "third/validator",
    identity: Identity.generate(),
    ledgerDir: `${dir}/third`,
    clock,
    challengeProbability: 0,
    network: "third/network",
    models: HONEST_MODELS,
  });
  await third.ask({ type: "deposit", key: worker.publicKey, amount: WORKER_STAKE });
  const port = new NetworkInferencePort(
    networkRef,
    validator,
    router,
    grouped === undefined ? { tokensPerEvent: 1 } : { tokensPerEvent: grouped, gatherMs: 1 },
  );
  const { prover, local } = await spawnHonestInference(workerSystem, worker);
  const served = new Summaries(local);
  const [a, b] = memoryDuplexPair();
  const protocols = [INFERENCE_PROTOCOL];
  const [toWorker, atWorker] = await Promise.all([
    Connection.open(a, { identity: router, protocols }),
    Connection.open(b, { identity: worker, protocols }),
  ]);
  if (grouped === undefined) {
    servePeer(atWorker, router.publicKey, {
      system: workerSystem,
      inference: served,
      ...(cuts ? { prover: "prover" } : {}),
    });
  } else {
    // As `servePeer` serves it, with the gathering's clock standing still.
    const prover = cuts ? "prover" : undefined;
    serveInference(atWorker, served, {
      unsent: new UnsentReceipts(),
      trace: proverJobTrace(workerSystem, prover),
      cut: proverCut(workerSystem, prover),
      timers: STILL_CLOCK,
    });
  }
  network.connection = toWorker;
  return {
    routerValidator: validator,
    router,
    worker,
    network,
    gossip,
    port,
    prover,
    served,
    third,
    reads: ledgerReads(() => validator, clock),
    thirdReads: ledgerReads(() => third, clock),
    async close() {
      await toWorker.close();
      await atWorker.close();
      await routerSystem.shutdown();
      await workerSystem.shutdown();
      await Deno.remove(dir, { recursive: true });
    },
  };
}
