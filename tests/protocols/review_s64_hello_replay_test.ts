/**
 * Review s64 (red team of the wire): a peer replaying its own signed hello.
 *
 * A `peer.hello` is one-way: its handler hands it to the NetworkActor and returns, so nothing
 * bounds how many a peer sends. One already seen (its `seq` not newer than the kept hello's) is
 * dropped by `PeerHellos.onHello`, but only after its signature was checked and its fields
 * parsed again: a peer resending one valid hello (no signing on its side, a few hundred bytes
 * each) buys a schema parse, a canonical encoding and an ed25519 verify per frame on its
 * receiver, without end and without a refusal: measured here (2-core machine, other tests
 * running), `onHello` alone took ~240 µs per replay of a 287-byte hello frame, ~850 ns a byte of
 * the peer's bandwidth, where a flood of plain 35-byte pings costs ~13 ns a byte (decode and
 * schema; the hello's own decode and schema come on top). The `seq` of a hello on a connection
 * that proved its key can be compared before any of that: a hello not newer than a verified one
 * is dropped whatever its signature says.
 */
import assert from "node:assert/strict";
import { Identity } from "../../protocols/identity.ts";
import { type PeerHello, signPeerHello } from "../../protocols/peer_hello.ts";
import { PeerHellos } from "../../network/_peer_hellos.ts";
import { LogLimiter } from "../../network/log_limiter.ts";
import type { Connection } from "../../protocols/connection.ts";
import type { PeerEntry } from "../../network/_peer_entry.ts";
import type { NetworkActorOptions } from "../../network/network_actor.ts";
import type { ActorContext } from "../../actors/actor.ts";
import type { NetworkMessage } from "../../network/network_actor.ts";
import { toHex } from "../../protocols/hash.ts";

/** `hello` whose `sig` counts its reads: a read is the hello's signature being looked at. */
function counted(hello: PeerHello): { hello: PeerHello; sigReads: () => number } {
  let reads = 0;
  const copy = { ...hello } as Record<string, unknown>;
  const sig = hello.sig;
  delete copy.sig;
  Object.defineProperty(copy, "sig", {
    enumerable: true,
    get: () => {
      reads++;
      return sig;
    },
  });
  return { hello: copy as unknown as PeerHello, sigReads: () => reads };
}

/** A peer's connection with its entry, and the PeerHellos that takes its hellos. */
function helloWorld() {
  const peer = Identity.generate();
  const connection = { peerKey: peer.publicKey, supports: () => false } as unknown as Connection;
  const entry = {
    connection,
    info: { key: toHex(peer.publicKey), roles: [], models: [], protocols: [] },
    models: [],
  } as unknown as PeerEntry;
  const hellos = new PeerHellos({
    options: { identity: Identity.generate() } as NetworkActorOptions,
    peers: new Map(),
    entryOf: () => entry,
    services: () => undefined,
    peerLog: new LogLimiter(() => {}),
    tell: () => {},
  });
  const ctx = {} as ActorContext<NetworkMessage>;
  const body = { version: "0.1.0", roles: ["storage" as const], models: [] };
  return { peer, connection, entry, hellos, ctx, body };
}

Deno.test({
  name:
    "review s64: a peer resending a hello already taken (seq not newer) costs no signature check (each replay was parsed, encoded and verified again)",
  // Failed before the fix ("a replayed hello's signature was looked at", 150 !== 0): each
  // replay's signature was read three times (verifyPeerHello's parse and verify,
  // knownHelloFields) before its seq was compared in PeerHellos.onHello.
  fn() {
    const { peer, connection, entry, hellos, ctx, body } = helloWorld();
    const hello = signPeerHello(peer, body, 7, 1_000);
    hellos.onHello(connection, hello, ctx);
    assert.equal(entry.hello?.seq, 7, "the first hello is taken");

    let replayReads = 0;
    for (let i = 0; i < 50; i++) {
      const replay = counted(hello);
      hellos.onHello(connection, replay.hello, ctx);
      replayReads += replay.sigReads();
    }
    assert.equal(entry.hello?.seq, 7);
    assert.equal(replayReads, 0, "a replayed hello's signature was looked at");
  },
});

Deno.test("review s64: a forged hello with a higher seq is still verified (refused, counted), and a genuine newer one is kept", () => {
  const { peer, connection, entry, hellos, ctx, body } = helloWorld();
  hellos.onHello(connection, signPeerHello(peer, body, 7, 1_000), ctx);
  // seq 9 claimed over a signature made for seq 8: not the peer's hello.
  const forged = { ...signPeerHello(peer, body, 8, 2_000), seq: 9 } as PeerHello;
  hellos.onHello(connection, forged, ctx);
  assert.equal(entry.hello?.seq, 7, "the forged hello was kept");
  assert.equal(entry.badHellos, 1, "the forged hello was not verified and counted");
  hellos.onHello(connection, signPeerHello(peer, body, 8, 2_000), ctx);
  assert.equal(entry.hello?.seq, 8, "the genuine newer hello is kept");
});
