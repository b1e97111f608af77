/**
 * Review at stop 54 of the handshake's reads on a socket (`protocols/session_handshake.ts` over
 * `protocols/socket_duplex.ts`): the handshake read with a default reader, for which a socket
 * duplex allocates its read buffer, `readBufferBytes` (256 KiB on the swarm link, 64 KiB on TCP),
 * and keeps it until a BYOB reader takes over after the handshake. Every connection still in its
 * handshake held one: strangers holding the swarm host's 512 connections in their handshakes,
 * sending nothing, cost the node 128 MiB. Real sockets on 127.0.0.1.
 */
import assert from "node:assert/strict";
import { SWARM_LINK_READ_BYTES } from "../../network/swarm_link.ts";
import { Connection } from "../../protocols/connection.ts";
import { Identity } from "../../protocols/identity.ts";
import { PeerTimeoutError } from "../../protocols/protocol_errors.ts";
import {
  authenticateTransport,
  MAX_HANDSHAKE_FRAME_BYTES,
} from "../../protocols/session_handshake.ts";
import { socketDuplex } from "../../protocols/socket_duplex.ts";
import { LENGTH_PREFIX_BYTES } from "../../streams/length_prefixed_stream.ts";
import { ManualTimers } from "./_helpers.ts";
import { eventually } from "../_helpers/wait.ts";

/** A socket pair on 127.0.0.1; `reads` lists the size of each buffer the node's side reads into. */
async function socketPair(): Promise<{ node: Deno.Conn; peer: Deno.Conn; reads: number[] }> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const [peer, accepted] = await Promise.all([
    Deno.connect({ hostname: "127.0.0.1", port: (listener.addr as Deno.NetAddr).port }),
    listener.accept(),
  ]);
  listener.close();
  const reads: number[] = [];
  const node = {
    read: (into: Uint8Array) => {
      reads.push(into.byteLength);
      return accepted.read(into);
    },
    write: (bytes: Uint8Array) => accepted.write(bytes),
    closeWrite: () => accepted.closeWrite(),
    close: () => accepted.close(),
    localAddr: accepted.localAddr,
    remoteAddr: accepted.remoteAddr,
  } as unknown as Deno.Conn;
  return { node, peer, reads };
}

Deno.test("handshake review s54: a peer that stalls in its handshake costs no socket read buffer, only what it sent", async () => {
  const { node, peer, reads } = await socketPair();
  const duplex = socketDuplex(node, { readBufferBytes: SWARM_LINK_READ_BYTES });
  const timers = new ManualTimers();
  const outcome = authenticateTransport(duplex, { identity: Identity.generate(), timers })
    .then(() => "authenticated", (error) => error);
  // The peer says nothing more than the length of a hello it never sends.
  const prefix = new Uint8Array(LENGTH_PREFIX_BYTES);
  new DataView(prefix.buffer).setUint32(0, 200);
  await peer.write(prefix);
  // Real socket I/O, which the manual clock does not wait for: the handshake has read the length
  // and waits for the hello it announced. (After the deadline the connection is drained with the
  // duplex's read buffer, for a moment, as it closes: not what a stalled peer holds.)
  await eventually(() => reads.length >= 2, "the handshake waiting for the announced hello");
  const whileStalled = reads.slice();
  await timers.advance(5_000); // the handshake's deadline
  assert.ok(await outcome instanceof PeerTimeoutError);
  assert.ok(
    Math.max(...whileStalled) <= MAX_HANDSHAKE_FRAME_BYTES,
    `the node read into buffers of ${whileStalled.join(", ")} bytes for a peer that sent 4`,
  );
  duplex.close();
  peer.close();
});

Deno.test("handshake review s54: over sockets read exactly, a connection runs after the handshake with the peer's first frames intact", async () => {
  const { node, peer, reads } = await socketPair();
  const [a, b] = [
    socketDuplex(node, { readBufferBytes: SWARM_LINK_READ_BYTES }),
    socketDuplex(peer),
  ];
  const alice = Identity.generate();
  const bob = Identity.generate();
  const [ca, cb] = await Promise.all([
    Connection.open(a, { identity: alice }),
    Connection.open(b, { identity: bob }),
  ]);
  try {
    assert.deepEqual(ca.peerKey, bob.publicKey);
    assert.deepEqual(cb.peerKey, alice.publicKey);
    // Both ways, right after the handshake (the peer's first frames may come with its proof).
    await Promise.all([ca.ping(), cb.ping()]);
    assert.ok(Math.max(...reads) > MAX_HANDSHAKE_FRAME_BYTES, "the connection reads in bulk");
  } finally {
    await Promise.all([ca.close(), cb.close()]);
  }
});
