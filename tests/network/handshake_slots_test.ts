/**
 * The handshake slots of inbound TCP connections (`network/connection_limits.ts`) against one
 * host holding many addresses (review s71, finding 5): 64 silent sockets from 8 IPv6 /64s of one
 * /48 took every slot for 5 s at a time, so no other peer could shake hands with the node; and
 * a dialer refused before the handshake read the close as `truncated_frame`.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import {
  addressGroup,
  ConnectionLimits,
  DEFAULT_MAX_HANDSHAKES,
} from "../../network/connection_limits.ts";
import { NetworkActor, type NetworkMessage } from "../../network/network_actor.ts";
import { Connection } from "../../protocols/connection.ts";
import { Identity } from "../../protocols/identity.ts";
import { INFERENCE_PROTOCOL } from "../../protocols/inference_messages.ts";
import { connectTcp } from "../../protocols/tcp_transport.ts";
import { eventually } from "../_helpers/wait.ts";

/** Take a slot for `address`; whether it was given, and whether it was taken back since. */
function take(limits: ConnectionLimits, address: string) {
  const taken = { admitted: false, evicted: false, slot: undefined as unknown };
  const answer = limits.startHandshake(addressGroup(address), () => taken.evicted = true);
  taken.admitted = typeof answer !== "string";
  taken.slot = answer;
  return taken;
}

Deno.test("handshakes from one IPv6 /48 take a bounded share of the slots, however many /64s they come from", () => {
  const limits = new ConnectionLimits();
  let admitted = 0;
  for (let net = 0; net < 8; net++) {
    for (let host = 1; host <= 8; host++) {
      if (take(limits, `2001:db8:0:${net}::${host}`).admitted) admitted++;
    }
  }
  assert.ok(admitted >= 8, "one /64's share is still admitted");
  assert.ok(
    admitted <= DEFAULT_MAX_HANDSHAKES / 4,
    `one /48 took ${admitted} of ${DEFAULT_MAX_HANDSHAKES} slots`,
  );
  assert.equal(take(limits, "198.51.100.7").admitted, true);
  assert.equal(take(limits, "2001:db8:ffff::1").admitted, true, "another /64 of that /48");
});

Deno.test("with every slot taken, a newcomer from another address takes the oldest slot of the group holding the most, which is closed", () => {
  const limits = new ConnectionLimits();
  // Four /48s of 16 each, the oldest first: every slot is taken.
  const attackers = [];
  for (let block = 0; block < 4; block++) {
    for (let net = 0; net < 2; net++) {
      for (let host = 1; host <= 8; host++) {
        attackers.push(take(limits, `2001:db8:${block}:${net}::${host}`));
      }
    }
  }
  assert.equal(attackers.filter((a) => a.admitted).length, DEFAULT_MAX_HANDSHAKES);
  const honest = take(limits, "198.51.100.7");
  assert.equal(honest.admitted, true, "the newcomer is admitted, not refused");
  assert.deepEqual(
    attackers.map((a, i) => a.evicted ? i : -1).filter((i) => i >= 0),
    [0],
    "the oldest handshake of a largest group is closed, and only it",
  );
  assert.equal(limits.handshakes, DEFAULT_MAX_HANDSHAKES);
  // Another newcomer: the largest groups now hold 16, it holds 1 after: another slot is taken.
  assert.equal(take(limits, "198.51.100.8").admitted, true);
  assert.equal(attackers.filter((a) => a.evicted).length, 2);
});

Deno.test("with every slot taken, the slot given up is the oldest of a block holding more than the newcomer's will; with none such, the newcomer is refused", () => {
  const limits = new ConnectionLimits({ maxHandshakes: 3, maxHandshakesPerAddress: 3 });
  const a = take(limits, "10.0.0.1");
  const b = take(limits, "10.0.0.2");
  const c = take(limits, "10.0.0.2");
  assert.deepEqual([a.admitted, b.admitted, c.admitted], [true, true, true]);
  const d = take(limits, "10.0.0.3");
  assert.equal(d.admitted, true);
  assert.deepEqual([a.evicted, b.evicted, c.evicted], [false, true, false], "10.0.0.2's oldest");
  // Every block at one slot: the newcomer is refused, nobody's slot is closed.
  const e = take(limits, "10.0.0.4");
  assert.equal(e.admitted, false);
  assert.deepEqual([a.evicted, c.evicted, d.evicted], [false, false, false]);
  assert.equal(limits.handshakes, 3);
  assert.equal(take(limits, "10.0.0.3").admitted, false, "its block would hold 2, none holds more");
});

Deno.test("red team s71 (verify F5): attackers connecting from one IPv4 address each, past 64 slots, never close an honest handshake; they are refused", () => {
  const limits = new ConnectionLimits();
  for (let i = 0; i < DEFAULT_MAX_HANDSHAKES - 1; i++) take(limits, `203.0.113.${i}`);
  const honest = take(limits, "198.51.100.7");
  assert.equal(honest.admitted, true);
  let refused = 0;
  for (let n = 0; n < 1_000; n++) {
    if (!take(limits, `203.0.${114 + (n >> 8)}.${n & 255}`).admitted) refused++;
  }
  // Review s71 (verify): closed after 64 such connects.
  assert.equal(honest.evicted, false, "the honest handshake is not closed");
  assert.equal(refused, 1_000, "each attacker newcomer is refused");
  assert.equal(limits.handshakes, DEFAULT_MAX_HANDSHAKES);
});

Deno.test("a dialer refused before the handshake (its address at its bound) fails with handshake_refused, not a truncated frame", async () => {
  const system = new ActorSystem({ name: "refusing" });
  try {
    const network = await system.spawn<NetworkMessage>({
      name: "net",
      factory: () =>
        new NetworkActor({
          identity: Identity.generate(),
          listen: { hostname: "127.0.0.1", port: 0 },
          limits: { maxHandshakesPerAddress: 1 },
          services: {},
        }),
    });
    const { port } = await network.ask<Deno.NetAddr>({ type: "listening" });
    // A silent socket holds the address's one slot until its handshake deadline.
    const silent = await Deno.connect({ hostname: "127.0.0.1", port });
    try {
      const error = await eventually(async () => {
        const duplex = await connectTcp({ hostname: "127.0.0.1", port });
        try {
          const c = await Connection.open(duplex, {
            identity: Identity.generate(),
            protocols: [INFERENCE_PROTOCOL],
          });
          await c.close();
          return undefined; // admitted: the silent socket's slot was not taken yet
        } catch (error) {
          return error as { code?: string; message: string };
        }
      }, "a refused handshake");
      assert.equal(error.code, "handshake_refused", error.message);
      assert.match(error.message, /handshakes from loopback already in progress/);
    } finally {
      silent.close();
    }
  } finally {
    await system.shutdown();
  }
});
