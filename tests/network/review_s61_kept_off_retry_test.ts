/**
 * Review s61 (hint): a forwarding node whose connected workers list the model, but each is kept
 * off it for a while after a failure (`REFUSED_MODEL_COOLDOWN_MS`), answered `no_worker` with
 * "try again shortly" and no retry hint, so a client (StreamClient, `cli.ts infer`, the `openai`
 * package) could not know when. It now carries `retry_after_s` (HTTP `Retry-After`): the seconds
 * until the earliest such worker may take the model again, by the routing's own clock.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { NetworkActor, type NetworkMessage, type PeerInfo } from "../../network/network_actor.ts";
import { NetworkInferencePort, NoWorkerError } from "../../network/network_inference_port.ts";
import { Identity } from "../../protocols/identity.ts";
import { toHex } from "../../protocols/hash.ts";
import type { PeerAddress } from "../../network/peer_address.ts";
import type { VeriflowError } from "../../protocols/errors.ts";
import { errorResponse, retryAfterOf } from "../../server/http_errors.ts";
import { eventually } from "../_helpers/wait.ts";
import { connectWorker, job, refusal, TwoTokenWorker } from "./_router_fixture.ts";

Deno.test("review s61: no_worker while every worker of the model is kept off it says when the first comes back", async () => {
  let clock = Date.now();
  const system = new ActorSystem({ name: "review-s61-kept-off" });
  try {
    const net = await system.spawn<NetworkMessage>({
      name: "r/network",
      factory: () =>
        new NetworkActor({ identity: Identity.generate(), services: {}, now: () => clock }),
    });
    const port = new NetworkInferencePort(net);
    const worker = new TwoTokenWorker(true, "unknown_model", "not here");
    await connectWorker(net, worker, { running: 0, queued: 0, slots: 4, queueLimit: 4 });
    await eventually(async () => {
      const peers = await net.ask<PeerInfo[]>({ type: "peers" });
      return peers.some((p) => p.models.length > 0 && p.load) ? true : undefined;
    }, "the worker listed and said its load");
    // Its refusal keeps it off the model for REFUSED_MODEL_COOLDOWN_MS (60 s).
    const first = await refusal(port.submit(job("s61-refused")));
    assert.equal((first as VeriflowError).code, "unknown_model");
    assert.equal(worker.submits, 1);

    const error = await refusal(port.submit(job("s61-kept-off")));
    assert.ok(error instanceof NoWorkerError, String(error));
    assert.match(error.message, /kept off the model/);
    assert.equal(retryAfterOf(error), 60, "the whole cooldown is left");
    const response = errorResponse(error);
    assert.equal(response.headers.get("retry-after"), "60");
    await response.body?.cancel();

    // 20.5 s later by the routing's clock: 39.5 s left, rounded up.
    clock += 20_500;
    const later = await refusal(port.submit(job("s61-later")));
    assert.equal(retryAfterOf(later), 40);
    // Within its last second: still at least 1.
    clock += 39_400;
    const last = await refusal(port.submit(job("s61-last")));
    assert.equal(retryAfterOf(last), 1);
    assert.equal(worker.submits, 1, "kept off: asked no job while the hint ran");
    // The cooldown over, by the same clock: the worker is asked again (and refuses again).
    clock += 200;
    const again = await refusal(port.submit(job("s61-again")));
    assert.equal((again as VeriflowError).code, "unknown_model");
    assert.equal(worker.submits, 2);
  } finally {
    await system.shutdown();
  }
});

/** A loopback address nothing listens on (bound, read, released). */
function deadAddress(): PeerAddress {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return { hostname: "127.0.0.1", port };
}

/** A router on clock `now` dialling `peers`, with one connected worker that refused the model. */
async function keptOff(now: () => number, peers: PeerAddress[] = []) {
  const system = new ActorSystem({ name: "review-s61-kept-off-more" });
  const net = await system.spawn<NetworkMessage>({
    name: "r/network",
    factory: () =>
      new NetworkActor({
        identity: Identity.generate(),
        services: {},
        now,
        peers,
        // The configured peer stays unconnected for the whole test.
        redialMs: 60_000,
      }),
  });
  const port = new NetworkInferencePort(net);
  const identity = Identity.generate();
  const worker = new TwoTokenWorker(true, "unknown_model", "not here");
  await connectWorker(net, worker, { running: 0, queued: 0, slots: 4, queueLimit: 4 }, {
    identity,
  });
  await eventually(async () => {
    const listed = await net.ask<PeerInfo[]>({ type: "peers" });
    return listed.some((p) => p.models.length > 0 && p.load) ? true : undefined;
  }, "the worker listed and said its load");
  const first = await refusal(port.submit(job("s61-refused")));
  assert.equal((first as VeriflowError).code, "unknown_model");
  return { net, port, key: toHex(identity.publicKey), close: () => system.shutdown() };
}

Deno.test("review s61: a kept-off worker that is then convicted gives no_worker no retry hint", async () => {
  const clock = Date.now();
  const r = await keptOff(() => clock);
  try {
    assert.equal(retryAfterOf(await refusal(r.port.submit(job("s61-before")))), 60);
    await r.net.ask({ type: "peer_convicted", key: r.key });
    const error = await refusal(r.port.submit(job("s61-convicted")));
    assert.ok(error instanceof NoWorkerError, String(error));
    assert.equal(retryAfterOf(error), undefined, "a convicted worker is never coming back");
  } finally {
    await r.close();
  }
});

Deno.test("review s61: kept off and still connecting, no_worker carries the smaller hint", async () => {
  const clock = Date.now();
  const r = await keptOff(() => clock, [deadAddress()]);
  try {
    const error = await refusal(r.port.submit(job("s61-both")));
    assert.ok(error instanceof NoWorkerError, String(error));
    assert.match(error.message, /still connecting/);
    assert.equal(retryAfterOf(error), 1, "the connecting hint, not the 60 s cooldown");
  } finally {
    await r.close();
  }
});
