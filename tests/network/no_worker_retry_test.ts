/**
 * The retry hint (`retry_after_s`, HTTP `Retry-After`) of a router's `no_worker` answer: while its
 * workers of the model are kept off it, while a configured peer is not connected yet, and while a
 * swarm node is still connecting.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { NetworkActor, type NetworkMessage, type PeerInfo } from "../../network/network_actor.ts";
import { NetworkInferencePort, NoWorkerError } from "../../network/network_inference_port.ts";
import { Identity } from "../../protocols/identity.ts";
import { toHex } from "../../protocols/hash.ts";
import type { VeriflowError } from "../../protocols/errors.ts";
import { errorResponse, retryAfterOf } from "../../server/http_errors.ts";
import { eventually } from "../_helpers/wait.ts";
import { connectWorker, job, MODEL, refusal, TwoTokenWorker } from "./_router_fixture.ts";
import { formatPeerAddress, type PeerAddress } from "../../network/peer_address.ts";
import { Connection } from "../../protocols/connection.ts";
import { INFERENCE_PROTOCOL } from "../../protocols/inference_messages.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import { serveInference } from "../../inference/serve_inference.ts";
import { join } from "node:path";
import { startLocalTestnet } from "../../network/swarm_testnet.ts";
import { SWARM_SETTLE_MS } from "../../network/_swarm_settling.ts";

// ---- kept off retry -------------------------------------------------------------------------------
// A forwarding node whose connected workers list the model, but each is kept off it for a while
// after a failure (`REFUSED_MODEL_COOLDOWN_MS`), answered `no_worker` with "try again shortly" and
// no retry hint, so a client (StreamClient, `cli.ts infer`, the `openai` package) could not know
// when. It now carries `retry_after_s` (HTTP `Retry-After`): the seconds until the earliest such
// worker may take the model again, by the routing's own clock.

Deno.test("no_worker while every worker of the model is kept off it says when the first comes back", async () => {
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

Deno.test("a kept-off worker that is then convicted gives no_worker no retry hint", async () => {
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

Deno.test("kept off and still connecting, no_worker carries the smaller hint", async () => {
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

// ---- no worker retry ------------------------------------------------------------------------------
// A router's first jobs after it starts, while its dial to a configured peer has not finished, were
// answered `no_worker` with no retry hint, so a client (the library walkthrough's two-node program)
// could only loop or give up. They now carry `retry_after_s` (HTTP `Retry-After`) while a
// configured peer is not connected or a connected peer's models are still being asked; a router
// with nothing to wait for answers as before.

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

Deno.test("a router whose configured peer is not connected yet says when to retry no_worker", async () => {
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

Deno.test("a router with no peer to wait for answers no_worker without a retry hint", async () => {
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

Deno.test("once its configured peer is connected and listed, no_worker for another model has no hint", async () => {
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

// ---- swarm connecting window ----------------------------------------------------------------------
// A swarm node's "still connecting" window (`SWARM_SETTLE_MS`, the retry hint of a job it has no
// worker for) counts from when its swarm host came up and joined its topics, not from the
// NetworkActor's start. The host starts in the background and may take up to its 30 s ready
// timeout: before, a node whose host came up late had no window left to find its peers in, a node
// whose host was still starting counted as settled once 30 s passed, and a node whose swarm could
// not start at all said "connecting" for 30 s. Each on the actor's fake clock.

/** Whether `net` says it is still connecting to its peers. */
async function connecting(
  net: { ask: <T>(message: NetworkMessage) => Promise<T> },
): Promise<boolean> {
  return (await net.ask<{ connecting: boolean }>({ type: "connecting" })).connecting;
}

/**
 * A swarm node on `swarm`'s settings and a fake clock, under `system`: the clock moves on by more
 * than the window as the actor is built (before its host can be up), and its log lines are kept.
 */
async function swarmNode(
  system: ActorSystem,
  swarm: NonNullable<ConstructorParameters<typeof NetworkActor>[0]["swarm"]>,
) {
  const clock = { t: 1_000_000 };
  const lines: string[] = [];
  const net = await system.spawn<NetworkMessage>({
    name: "n/network",
    factory: () => {
      const actor = new NetworkActor({
        identity: Identity.generate(),
        services: {},
        swarm,
        now: () => clock.t,
        log: (line) => lines.push(line),
      });
      clock.t += SWARM_SETTLE_MS + 1; // the host's start took longer than the window
      return actor;
    },
  });
  return { net, clock, lines };
}

Deno.test({
  name:
    "a swarm node whose host came up after the window's length is connecting for the window from its join, then settled",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const testnet = await startLocalTestnet();
    const system = new ActorSystem({ name: "s64-swarm-window" });
    try {
      const { net, clock, lines } = await swarmNode(system, {
        bootstrap: testnet.bootstrap,
        bind: "127.0.0.1",
        topic: crypto.getRandomValues(new Uint8Array(32)),
      });
      await eventually(() => lines.some((l) => l.startsWith("swarm joined")), "the swarm joined");
      // Before: false (the window had run out since the actor's start).
      assert.equal(await connecting(net), true, "just joined: its peers may still come");
      clock.t += SWARM_SETTLE_MS - 1;
      assert.equal(await connecting(net), true, "inside the window");
      clock.t += 1;
      assert.equal(await connecting(net), false, "the window over: settled");
    } finally {
      await system.shutdown();
      await testnet.stop();
    }
  },
});

Deno.test({
  name: "a swarm node whose host is still starting past the window's length counts as connecting",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "veriflow-s64-slow-host-" });
    const system = new ActorSystem({ name: "s64-swarm-starting" });
    try {
      // A "Node.js" that never says ready (it reads its stdin until it is closed).
      const nodePath = join(dir, "node");
      await Deno.writeTextFile(nodePath, "#!/bin/sh\nexec cat >/dev/null\n");
      await Deno.chmod(nodePath, 0o755);
      const { net, lines } = await swarmNode(system, { bootstrap: [], nodePath });
      // Before: false (the window ran from the actor's start).
      assert.equal(await connecting(net), true, "its host is still starting");
      assert.ok(!lines.some((l) => l.startsWith("swarm")), `not up: ${lines.join(" | ")}`);
    } finally {
      await system.shutdown();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "a swarm node whose host could not start is not connecting",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "veriflow-s64-no-host-" });
    const system = new ActorSystem({ name: "s64-swarm-unavailable" });
    try {
      const clock = { t: 1_000_000 };
      const lines: string[] = [];
      const net = await system.spawn<NetworkMessage>({
        name: "n/network",
        factory: () =>
          new NetworkActor({
            identity: Identity.generate(),
            services: {},
            swarm: { bootstrap: [], nodePath: join(dir, "no-such-node") },
            now: () => clock.t,
            log: (line) => lines.push(line),
          }),
      });
      await eventually(
        () => lines.some((l) => l.startsWith("swarm unavailable")),
        "the swarm given up",
      );
      // Before: true for 30 s from the actor's start, though no swarm peer can come.
      assert.equal(await connecting(net), false, "nothing to wait for");
    } finally {
      await system.shutdown();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
