/**
 * A hello from a newer version, with a field this one does not know, signed over all of it:
 * verified over what was signed, kept without the unknown field, and the connection stays. The
 * hello schema used to strip unknown fields before the signature check, so such a hello failed
 * it — ignored at first, and since the hello-flood fix it closed the connection on every
 * connect (a review at stop 34).
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { PeerInfo } from "../../network/network_actor.ts";
import { Identity } from "../../protocols/identity.ts";
import {
  knownHelloFields,
  type PeerHelloBody,
  signPeerHello,
  verifyPeerHello,
} from "../../protocols/peer_hello.ts";
import { eventually } from "../_helpers/wait.ts";
import { helloPair } from "./_hello_pair.ts";

Deno.test("a newer peer's hello with one more signed field: the connection stays", async () => {
  const system = new ActorSystem({ name: "hello-compat" });
  const describeB = (): Promise<PeerHelloBody> =>
    Promise.resolve({
      version: "9.9.9",
      roles: ["inference"],
      models: ["m"],
      load: { running: 0, queued: 0, slots: 4, queueLimit: 8 },
      region: "eu-west", // a field a later version adds to its hello
    } as PeerHelloBody);
  try {
    const { na, toB, lines } = await helloPair(system, describeB, 50);
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
