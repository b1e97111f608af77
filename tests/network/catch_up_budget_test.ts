/**
 * Catch-ups sent on connect in each address group's turn (`network/catch_up.ts`, `catchUpTurn`).
 *
 * Review s71 (finding 4): the catch-up went out in full on every connection that offered
 * `validation/1`, and a connection costs a fresh key and a handshake: 269 bytes from the peer
 * bought 91.5 KB from the node (348×), again and again with fresh keys from one address. Here:
 * fresh keys from one address (loopback over TCP) get the address group's burst of catch-ups, no
 * more at once; a connection past it waits and is sent its catch-up once room comes back; and a
 * peer that reconnects after a while is sent it at once. The bucket's clock and the connections'
 * timers are the test's.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { CatchUpItem } from "../../actors/validator_messages.ts";
import {
  CATCH_UPS_PER_GROUP_BURST,
  CATCH_UPS_PER_GROUP_REFILL_MS,
} from "../../network/catch_up.ts";
import { NetworkActor, type NetworkMessage } from "../../network/network_actor.ts";
import { Connection } from "../../protocols/connection.ts";
import { Identity } from "../../protocols/identity.ts";
import { connectTcp } from "../../protocols/tcp_transport.ts";
import {
  FraudProofAnnouncementMessage,
  ReceiptAnnouncementMessage,
  StakeAnnouncementMessage,
  VALIDATION_PROTOCOL,
  VerdictAnnouncementMessage,
} from "../../protocols/inference_messages.ts";
import { signStakePledge } from "../../protocols/stake_pledge.ts";
import { HONEST_MODELS, START } from "../actors/_validator_fixture.ts";
import { FakeTimers } from "../_helpers/fake_timers.ts";
import { eventually } from "../_helpers/wait.ts";
import { caughtCheat, spawnLedgerNode } from "./_ledger_node.ts";

/** A peer's connection to V over TCP from 127.0.0.1 and the fraud proofs V sent it. */
interface Peer {
  connection: Connection;
  proofs: () => number;
}

Deno.test("red team s71: fresh keys from one address get the address group's burst of catch-ups; past it a connection waits for room and is sent it then; a peer that reconnects after a while is sent it at once", async () => {
  const system = new ActorSystem({ name: "s71-catch-up-budget" });
  const dir = await Deno.makeTempDir();
  const ledgerClock = { t: START };
  const net = { t: 5_000_000 }; // the catch-up bucket's clock
  const timers = new FakeTimers(); // the NetworkActor's connections' timers
  try {
    const identity = Identity.generate();
    const v = await spawnLedgerNode(system, dir, "v", {
      identity,
      pledge: signStakePledge(identity, 10_000, 1),
      models: HONEST_MODELS,
      clock: ledgerClock,
    });
    // One conviction in V's catch-up.
    const accuser = Identity.generate();
    await v.validator.ask({ type: "pledge", pledge: signStakePledge(accuser, 50_000, 1) });
    const worker = Identity.generate();
    const { fraudProof } = await caughtCheat(
      [v],
      { worker, requester: Identity.generate(), accuser, tag: "s71" },
      [worker],
      1_000,
    );
    const handled = await v.validator.ask<{ result?: Promise<unknown> }>({
      type: "fraud_proof",
      proof: fraudProof,
      origin: "ab".repeat(32),
    });
    await handled.result;
    await eventually(
      async () =>
        (await v.validator.ask<CatchUpItem[]>({ type: "catch_up" }))
          .some((item) => item.kind === "fraud_proof"),
      "the conviction in V's catch-up",
    );
    const network = await system.spawn<NetworkMessage>({
      name: "v/network-tcp",
      factory: () =>
        new NetworkActor({
          identity,
          listen: { hostname: "127.0.0.1", port: 0 },
          now: () => net.t,
          connection: { timers },
          services: { validator: "v/validator" },
        }),
    });
    const { port } = await network.ask<Deno.NetAddr>({ type: "listening" });
    const connect = async (key = Identity.generate()): Promise<Peer> => {
      let proofs = 0;
      const duplex = await connectTcp({ hostname: "127.0.0.1", port });
      const connection = await Connection.open(duplex, {
        identity: key,
        protocols: [VALIDATION_PROTOCOL],
      });
      connection.handle(FraudProofAnnouncementMessage, () => void proofs++);
      connection.handle(VerdictAnnouncementMessage, () => {});
      connection.handle(ReceiptAnnouncementMessage, () => ({ recorded: true }));
      connection.handle(StakeAnnouncementMessage, () => {});
      return { connection, proofs: () => proofs };
    };

    // The address group's burst: each fresh key is sent the catch-up.
    for (let i = 0; i < CATCH_UPS_PER_GROUP_BURST; i++) {
      const peer = await connect();
      await eventually(() => peer.proofs() > 0, `connection ${i + 1} to be sent the catch-up`);
      await peer.connection.close();
    }
    // One more fresh key from the same address: not sent it now.
    const late = await connect();
    await late.connection.ping();
    await v.validator.ask({ type: "catch_up" }); // what V would have asked for it is answered
    await late.connection.ping();
    await late.connection.ping();
    assert.equal(late.proofs(), 0, "past the address group's burst: no catch-up at once");
    // Room comes back: the waiting connection is sent it then.
    net.t += CATCH_UPS_PER_GROUP_REFILL_MS;
    const due = [...timers.armed].filter(([, t]) => t.ms === CATCH_UPS_PER_GROUP_REFILL_MS);
    assert.equal(due.length, 1, "one connection waits for its turn");
    for (const [handle, { callback }] of due) {
      timers.armed.delete(handle);
      callback();
    }
    await eventually(() => late.proofs() > 0, "the waiting connection to be sent the catch-up");
    await late.connection.close();
    // A peer that reconnects after a while (a refill period) is sent it at once.
    net.t += CATCH_UPS_PER_GROUP_REFILL_MS;
    const back = await connect();
    await eventually(() => back.proofs() > 0, "a peer back after a while to be sent it");
    await back.connection.close();
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
