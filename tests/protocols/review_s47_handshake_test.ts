/**
 * Review (stop 47) of the handshake and the signed messages between peers: each test failed on
 * the code before its fix.
 */
import assert from "node:assert/strict";
import { decodeCbor, encodeCbor } from "../../protocols/cbor.ts";
import { Identity } from "../../protocols/identity.ts";
import {
  knownHelloFields,
  type PeerHelloBody,
  PeerHelloMessage,
  signPeerHello,
  verifyPeerHello,
} from "../../protocols/peer_hello.ts";

Deno.test("a newer peer's hello with one more signed field inside load or storage verifies: the nested field is signed, not stripped before the check", () => {
  const node = Identity.generate();
  // What a later version might add: a field inside an object this version knows.
  const body = {
    version: "9.9.9",
    roles: ["inference", "storage"],
    models: ["m"],
    load: { running: 1, queued: 0, slots: 4, queueLimit: 8, gpuMemoryBytes: 1 << 30 },
    storage: { usedBytes: 10, quotaBytes: null, pinnedBytes: 5 },
  } as unknown as PeerHelloBody;
  const hello = signPeerHello(node, body, 1, 0);
  // As a peer receives it: over the wire, then through the message's schema.
  const parsed = PeerHelloMessage.schema.safeParse(decodeCbor(encodeCbor({ hello })));
  assert.ok(parsed.success, "the message schema refused it");
  const received = parsed.data!.hello;
  assert.equal(verifyPeerHello(received), true, "an honest newer hello is refused");
  const changed = { ...received, load: { ...received.load!, gpuMemoryBytes: 0 } };
  assert.equal(verifyPeerHello(changed), false, "the nested field is signed");
  const kept = knownHelloFields(received);
  assert.deepEqual(kept.load, { running: 1, queued: 0, slots: 4, queueLimit: 8 });
  assert.deepEqual(kept.storage, { usedBytes: 10, quotaBytes: null });
});
