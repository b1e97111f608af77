/**
 * A router for the routing tests against fresh keys and restarts (`sybil_routing_test.ts`,
 * `worker_crash_routing_test.ts`): a real NetworkActor and NetworkInferencePort whose port
 * writes the node's record of its workers, in memory, on a fake clock; workers connect as peers
 * in an address group, under a key of their own or a given one (a restart).
 *
 * @module
 */
import { BusyRefusals } from "../../network/busy_refusals.ts";
import { peerOriginsOf } from "../../network/_peer_origins.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { ActorRef } from "../../actors/actor_ref.ts";
import { NetworkActor, type NetworkMessage, type PeerInfo } from "../../network/network_actor.ts";
import { NetworkInferencePort } from "../../network/network_inference_port.ts";
import { MAX_WORKERS_PER_JOB } from "../../network/failover.ts";
import { Identity } from "../../protocols/identity.ts";
import { eventually } from "../_helpers/wait.ts";
import { MODEL } from "./_router_fixture.ts";
import { serveInference } from "../../inference/serve_inference.ts";
import type { InferencePort } from "../../inference/inference_port.ts";
import { Connection } from "../../protocols/connection.ts";
import { toHex } from "../../protocols/hash.ts";
import { INFERENCE_PROTOCOL } from "../../protocols/inference_messages.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import {
  PEER_PROTOCOL,
  PeerHelloMessage,
  type PeerLoad,
  signPeerHello,
} from "../../protocols/peer_hello.ts";
import { GOODBYE_PROTOCOL } from "../../protocols/peer_goodbye.ts";
import { ManualTimers } from "../protocols/_helpers.ts";
import { jobOf } from "./_resuming_ports.ts";

/** The router's stall timeout: small (a fake clock: its size costs nothing). */
export const STALL_MS = 10_000;

/** What {@link sybilRouter} gives a test. */
export interface SybilRouter {
  /** The router's actor system (its record of its workers: `workerRecordOf(system)`). */
  system: ActorSystem;
  /** The port's clock. */
  timers: ManualTimers;
  /** The router's port. */
  port: NetworkInferencePort;
  /** Connect a worker (see the function's doc). */
  connect: (
    worker: InferencePort,
    load: PeerLoad,
    group?: string,
    identity?: Identity,
  ) => Promise<{ key: string; connection: Connection }>;
  /** Run one job to its end (see the function's doc). */
  run: (nonce: string) => Promise<{
    got: number[];
    finishReason: string;
    code?: string;
    fakeMs: number;
  }>;
  /** Submit a job per nonce at once and run all to their end (see the function's doc). */
  runAtOnce: (nonces: string[]) => Promise<string[]>;
  /** Close every link and the system. */
  close: () => Promise<void>;
}

/**
 * A router whose port writes the node's record of its workers (`system` given), on a fake clock;
 * `connect` can place a worker in an address group (as a TCP or swarm peer's remote address
 * would, `_peer_origins.ts`).
 */
export async function sybilRouter(): Promise<SybilRouter> {
  const system = new ActorSystem({ name: "sybil-routing" });
  const net: ActorRef<NetworkMessage> = await system.spawn<NetworkMessage>({
    name: "r/network",
    factory: () => new NetworkActor({ identity: Identity.generate(), services: {} }),
  });
  const timers = new ManualTimers();
  const busy = new BusyRefusals({
    firstMs: 4 * STALL_MS,
    maxMs: 16 * STALL_MS,
    now: () => timers.now(),
  });
  const port = new NetworkInferencePort(
    net,
    undefined,
    undefined,
    { timers, stallTimeoutMs: STALL_MS, tokensPerEvent: 1, system },
    busy,
  );
  const links: Connection[] = [];
  const leaves: (() => void)[] = [];

  /** Connect `worker` as `identity` from `group`, its hello saying `load`; once routable. */
  const connect = async (
    worker: InferencePort,
    load: PeerLoad,
    group?: string,
    identity = Identity.generate(),
  ) => {
    const key = toHex(identity.publicKey);
    const [a, b] = memoryDuplexPair();
    // Goodbyes too: a worker that stops cleanly says so (`peer_goodbye.ts`, review s76 vroute F3).
    const protocols = [INFERENCE_PROTOCOL, PEER_PROTOCOL, GOODBYE_PROTOCOL];
    const opened = Connection.open(b, { identity, protocols, closeGraceMs: 10 }).then((c) => {
      serveInference(c, worker);
      return c;
    });
    const [, peer] = await Promise.all([
      net.ask({ type: "attach", duplex: a, address: "mem", outbound: true }),
      opened,
    ]);
    links.push(peer);
    if (group !== undefined) leaves.push(peerOriginsOf(system).connected(key, group));
    const body = { version: "1.0.0", roles: ["inference" as const], models: [MODEL], load };
    await peer.notify(PeerHelloMessage, { hello: signPeerHello(identity, body, 1, Date.now()) });
    await eventually(async () => {
      const peers = await net.ask<PeerInfo[]>({ type: "peers" });
      return peers.some((p) => p.key === key && p.models.length > 0 && p.load) || undefined;
    }, "the worker listed and said its load");
    return { key, connection: peer };
  };

  /**
   * Run one job to its end, moving the fake clock in half stall timeouts until it ended: the
   * indices the client got, how it ended, and the fake ms it took.
   */
  const run = async (nonce: string) => {
    const t0 = timers.now();
    const handle = await port.submit(jobOf(nonce));
    const got: number[] = [];
    let ended = false;
    const all = (async () => {
      try {
        for await (const t of handle.tokens) got.push(t.index);
      } catch { /* the summary says how it ended */ }
      ended = true;
    })();
    for (let step = 0; step < 4 * MAX_WORKERS_PER_JOB && !ended; step++) {
      await timers.advance(STALL_MS / 2);
      await new Promise((res) => setTimeout(res, 0));
    }
    await all;
    const summary = await handle.done;
    return {
      got,
      finishReason: summary.finishReason,
      code: summary.error?.code,
      fakeMs: timers.now() - t0,
    };
  };

  /**
   * Submit a job for each of `nonces`, one after another before any runs, and run them to their
   * end, the client reading every token, moving the fake clock as {@link run} does: how each ended.
   */
  const runAtOnce = async (nonces: string[]) => {
    const handles = [];
    for (const nonce of nonces) handles.push(await port.submit(jobOf(nonce)));
    const ends = handles.map(async (handle) => {
      for await (const _ of handle.tokens) { /* the client reads every token */ }
      return (await handle.done).finishReason;
    });
    for (let step = 0; step < 4 * MAX_WORKERS_PER_JOB; step++) {
      await timers.advance(STALL_MS / 2);
      await new Promise((res) => setTimeout(res, 0));
    }
    return await Promise.all(ends);
  };

  const close = async () => {
    for (const leave of leaves) leave();
    for (const c of links) await c.close();
    await system.shutdown();
  };
  return { system, timers, port, connect, run, runAtOnce, close };
}
