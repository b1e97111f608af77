/**
 * Review s61 (lib3, S4): a router's first jobs after it starts, while its dial to a configured
 * peer has not finished, were answered `no_worker` with no retry hint, so a client (the library
 * walkthrough's two-node program) could only loop or give up. They now carry `retry_after_s`
 * (HTTP `Retry-After`) while a configured peer is not connected or a connected peer's models are
 * still being asked; a router with nothing to wait for answers as before.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { NetworkActor, type NetworkMessage, type PeerInfo } from "../../network/network_actor.ts";
import { NetworkInferencePort, NoWorkerError } from "../../network/network_inference_port.ts";
import { formatPeerAddress, type PeerAddress } from "../../network/peer_address.ts";
import { Connection } from "../../protocols/connection.ts";
import { Identity } from "../../protocols/identity.ts";
import { INFERENCE_PROTOCOL } from "../../protocols/inference_messages.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import { serveInference } from "../../inference/serve_inference.ts";
import { errorResponse, retryAfterOf } from "../../server/http_errors.ts";
import { eventually } from "../_helpers/wait.ts";
import { job, MODEL, refusal, TwoTokenWorker } from "./_router_fixture.ts";

/** A loopback address nothing listens on (bound, read, released). */
function deadAddress(): PeerAddress {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return { hostname: "127.0.0.1", port };
}

/** A router (NetworkActor + forwarding port) configured to dial `peers`. */
async function router(peers: PeerAddress[]) {
  const system = new ActorSystem({ name: "review-s61-no-worker" });
  const net = await system.spawn<NetworkMessage>({
    name: "r/network",
    // Redialled after a minute: the configured peer stays unconnected for the whole test.
    factory: () =>
      new NetworkActor({ identity: Identity.generate(), services: {}, peers, redialMs: 60_000 }),
  });
  const port = new NetworkInferencePort(net, undefined, Identity.generate());
  return { net, port, close: () => system.shutdown() };
}

Deno.test("review s61: a router whose configured peer is not connected yet says when to retry no_worker", async () => {
  const r = await router([deadAddress()]);
  try {
    const error = await refusal(r.port.submit(job("s61-first")));
    assert.ok(error instanceof NoWorkerError, String(error));
    assert.equal(error.code, "no_worker");
    // The WebSocket's `retry_after_s` and the HTTP `Retry-After` both come from retryAfterOf.
    assert.equal(retryAfterOf(error), 1, "no_worker while a configured peer is being dialled");
    const response = errorResponse(error);
    assert.equal(response.status, 503);
    assert.equal(response.headers.get("retry-after"), "1");
    await response.body?.cancel();
    // `/v1/models` of such a router: the same hint.
    const listing = await refusal(r.port.models());
    assert.equal(retryAfterOf(listing), 1);
  } finally {
    await r.close();
  }
});

Deno.test("review s61: a router with no peer to wait for answers no_worker without a retry hint", async () => {
  const r = await router([]);
  try {
    const error = await refusal(r.port.submit(job("s61-none")));
    assert.ok(error instanceof NoWorkerError);
    assert.equal(retryAfterOf(error), undefined);
    assert.equal(errorResponse(error).headers.get("retry-after"), null);
  } finally {
    await r.close();
  }
});

Deno.test("review s61: once its configured peer is connected and listed, no_worker for another model has no hint", async () => {
  const address = deadAddress();
  const r = await router([address]);
  const identity = Identity.generate();
  const [a, b] = memoryDuplexPair();
  const worker = Connection.open(b, { identity, protocols: [INFERENCE_PROTOCOL] }).then((c) => {
    serveInference(c, new TwoTokenWorker(false, "", ""));
    return c;
  });
  try {
    // The configured peer's connection, as its dial would report it (same address, outbound).
    await Promise.all([
      r.net.ask({
        type: "attach",
        duplex: a,
        address: formatPeerAddress(address),
        outbound: true,
      }),
      worker,
    ]);
    await eventually(async () => {
      const peers = await r.net.ask<PeerInfo[]>({ type: "peers" });
      return peers.some((p) => p.models.includes(MODEL)) ? true : undefined;
    }, "the configured peer to list its model");
    const error = await refusal(r.port.submit({ ...job("s61-other"), model: "bafkother" }));
    assert.ok(error instanceof NoWorkerError);
    assert.equal(retryAfterOf(error), undefined, "nothing left to wait for");
  } finally {
    await (await worker).close();
    await r.close();
  }
});
