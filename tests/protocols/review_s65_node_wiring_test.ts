/**
 * Review s65 (wire): the node's budget reaches its connections. The node's config
 * (`network.wire`) becomes one `WireBudget` and the two deadlines in the options of every peer
 * connection (`connectionOptionsOf`), and the NetworkActor opens every connection with that one
 * budget, logging its refusals (`network/_peer_transports.ts`). Peers connect over in-memory
 * duplexes.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { NetworkActor, type NetworkMessage } from "../../network/network_actor.ts";
import { Connection } from "../../protocols/connection.ts";
import { Identity } from "../../protocols/identity.ts";
import { INFERENCE_PROTOCOL, ProofRequestMessage } from "../../protocols/inference_messages.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import { RemoteError } from "../../protocols/protocol_errors.ts";
import { WireBudget } from "../../protocols/wire_budget.ts";
import { connectionOptionsOf, parseNodeConfig } from "../../node/config.ts";
import { eventually } from "../_helpers/wait.ts";

/** The code a request failed with (or "ok"). */
async function outcome(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
    return "ok";
  } catch (error) {
    return error instanceof RemoteError ? error.code : String(error);
  }
}

Deno.test("network.wire in the node's config becomes one budget and the deadlines of every peer connection", () => {
  const network = parseNodeConfig({
    network: { wire: { maxHandlers: 3, maxStreamsPerPeer: 2, frameTimeoutMs: 0 } },
  }).network;
  const options = connectionOptionsOf(network);
  assert.equal(options.budget?.maxHandlers, 3);
  assert.equal(options.budget?.maxStreamsPerPeer, 2);
  assert.equal(options.budget?.maxHandlersPerPeer, 1024, "the rest keep their defaults");
  assert.equal(options.frameTimeoutMs, 0);
  assert.equal(options.streamCreditTimeoutMs, 120_000);
  assert.equal(options.keepaliveMs, network.keepaliveMs);
  assert.throws(() => parseNodeConfig({ network: { wire: { maxHandlers: 0 } } }));
});

Deno.test("the NetworkActor opens every connection with the node's one budget: a request past it is answered busy and logged, and served once there is room", async () => {
  const budget = new WireBudget({ maxHandlers: 1 });
  const system = new ActorSystem({ name: "s65-wiring" });
  const logs: string[] = [];
  const network = await system.spawn<NetworkMessage>({
    name: "n/network",
    factory: () =>
      new NetworkActor({
        identity: Identity.generate(),
        services: {},
        connection: { budget },
        log: (line) => logs.push(line),
      }),
  });
  const [near, far] = memoryDuplexPair();
  const [, peer] = await Promise.all([
    network.ask<Connection>({ type: "attach", duplex: near, address: "mem", outbound: false }),
    Connection.open(far, { identity: Identity.generate(), protocols: [INFERENCE_PROTOCOL] }),
  ]);
  try {
    const ask = () => peer.request(ProofRequestMessage, { receiptId: "ab".repeat(32) });
    assert.equal(budget.admit("another connection", false), undefined); // the node's one slot
    assert.equal(await outcome(ask()), "busy", "refused by the node's budget, not its own");
    assert.ok(logs.some((l) => l.includes("request refused busy") && l.includes("at most 1")));
    budget.release("another connection", false);
    // Served now: this node runs no prover, which is its answer.
    assert.equal(await outcome(ask()), "service_unavailable");
    await eventually(() => budget.stats().handlers === 0, "the handler's slot given back");
  } finally {
    await peer.close();
    await system.shutdown();
  }
});
