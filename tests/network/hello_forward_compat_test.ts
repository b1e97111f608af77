/**
 * A hello from a newer version, with a field this one does not know, signed over all of it:
 * verified over what was signed, kept without the unknown field, and the connection stays. The
 * hello schema used to strip unknown fields before the signature check, so such a hello failed
 * it — ignored at first, and since the hello-flood fix it closed the connection on every
 * connect (a review at stop 34).
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { NetworkActor, type NetworkMessage, type PeerInfo } from "../../network/network_actor.ts";
import type { Connection } from "../../protocols/connection.ts";
import { Identity } from "../../protocols/identity.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import {
  knownHelloFields,
  type PeerHelloBody,
  signPeerHello,
  verifyPeerHello,
} from "../../protocols/peer_hello.ts";
import { eventually } from "../_helpers/wait.ts";

Deno.test("a newer peer's hello with one more signed field: the connection stays", async () => {
  const system = new ActorSystem({ name: "hello-compat" });
  const [a, b] = [Identity.generate(), Identity.generate()];
  const describeB = (): Promise<PeerHelloBody> =>
    Promise.resolve({
      version: "9.9.9",
      roles: ["inference"],
      models: ["m"],
      load: { running: 0, queued: 0, slots: 4, queueLimit: 8 },
      region: "eu-west", // a field a later version adds to its hello
    } as PeerHelloBody);
  const lines: string[] = [];
  try {
    const na = await system.spawn<NetworkMessage>({
      name: "a/network",
      factory: () => new NetworkActor({ identity: a, services: {}, log: (l) => lines.push(l) }),
    });
    const nb = await system.spawn<NetworkMessage>({
      name: "b/network",
      factory: () =>
        new NetworkActor({ identity: b, services: {}, describe: describeB, helloIntervalMs: 50 }),
    });
    const [da, db] = memoryDuplexPair();
    const [toB] = await Promise.all([
      na.ask<Connection>({ type: "attach", duplex: da, address: "mem:b", outbound: true }),
      nb.ask<Connection>({ type: "attach", duplex: db, address: "mem:a", outbound: false }),
    ]);
    const peers = await eventually(async () => {
      const rows = await na.ask<PeerInfo[]>({ type: "peers" });
      return rows[0]?.version === "9.9.9" ? rows : undefined;
    }, "B's hello taken");
    assert.equal(toB.isClosed, false, `closed: ${String(toB.closeReason)}`);
    assert.deepEqual(peers[0].roles, ["inference"]);
    assert.ok(!lines.some((l) => l.includes("hello refused")), lines.join("\n"));
  } finally {
    await system.shutdown();
  }
});

Deno.test("verifyPeerHello checks a hello over every field signed, a later version's too; knownHelloFields keeps this version's", () => {
  const node = Identity.generate();
  const body = { version: "9.9.9", roles: ["inference"], models: [], region: "eu" };
  const hello = signPeerHello(node, body as PeerHelloBody, 1, 0);
  assert.equal(verifyPeerHello(hello), true);
  assert.equal(verifyPeerHello({ ...hello, region: "us" }), false, "the extra field is signed");
  const kept = knownHelloFields(hello);
  assert.equal("region" in kept, false);
  assert.deepEqual(kept.roles, ["inference"]);
});
