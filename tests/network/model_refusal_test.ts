/**
 * A worker that lists a model and refuses every job for it: the router stops picking it for that
 * model, so such peers (four Sybil keys in a review, each claiming a huge free capacity) cost a
 * model's jobs one try each, not every job.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { NetworkActor, type NetworkMessage, type PeerInfo } from "../../network/network_actor.ts";
import { NetworkInferencePort } from "../../network/network_inference_port.ts";
import { Identity } from "../../protocols/identity.ts";
import type { VeriflowError } from "../../protocols/errors.ts";
import { eventually } from "../_helpers/wait.ts";
import { connectWorker, job, TwoTokenWorker } from "./_router_fixture.ts";

/** A worker that lists the model and either runs a two-token job or refuses `unknown_model`. */
class Worker extends TwoTokenWorker {
  constructor(refuses: boolean) {
    super(refuses, "unknown_model", "not here");
  }
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
    await connectWorker(net, honest, { running: 1, queued: 0, slots: 4, queueLimit: 4 });
    const huge = { running: 0, queued: 0, slots: 1_000_000, queueLimit: 1_000_000 };
    const liars = [0, 1, 2, 3].map(() => new Worker(true));
    for (const liar of liars) await connectWorker(net, liar, huge);
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
