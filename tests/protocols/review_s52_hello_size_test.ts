/**
 * Review s52 (wire): a peer hello keeps the fields a later version adds (they are signed), but
 * only as many as a hello can honestly hold. Unbounded, one validly signed `peer.hello` of 1 MiB
 * standing for ~95,000 extra fields passed the schema and verified — ~1.5 s of schema work,
 * canonical encoding and hashing on the receiver — and, never refused, it could be sent again
 * and again: a connected peer held the node's event loop for as long as it kept sending.
 */
import assert from "node:assert/strict";
import { decodeCbor, encodeCbor } from "../../protocols/cbor.ts";
import { Identity } from "../../protocols/identity.ts";
import { createCoreRegistry } from "../../protocols/messages.ts";
import {
  type PeerHelloBody,
  PeerHelloMessage,
  signPeerHello,
  verifyPeerHello,
} from "../../protocols/peer_hello.ts";
import { InvalidBodyError } from "../../protocols/protocol_errors.ts";

const BODY: PeerHelloBody = {
  version: "9.9.9",
  roles: ["inference", "storage"],
  models: ["m"],
  load: { running: 1, queued: 0, slots: 4, queueLimit: 8 },
  storage: { usedBytes: 10, quotaBytes: null },
};

/** `BODY` with `count` more top-level fields, as a later version (or a hostile peer) adds. */
function withExtraFields(count: number): PeerHelloBody {
  const extra: Record<string, number> = {};
  for (let i = 0; i < count; i++) extra[`f${i}`] = i;
  return { ...BODY, ...extra } as PeerHelloBody;
}

Deno.test("a validly signed peer.hello of 100,000 extra fields is refused as an invalid body, not verified", () => {
  const node = Identity.generate();
  const hello = signPeerHello(node, withExtraFields(100_000), 1, 0);
  const received = decodeCbor(encodeCbor({ hello })); // as it arrives: the message's body
  const registry = createCoreRegistry().register(PeerHelloMessage);
  assert.throws(
    () => registry.parseBody(PeerHelloMessage.type, received),
    (error) => error instanceof InvalidBodyError && error.code === "invalid_body",
  );
  assert.equal(verifyPeerHello((received as { hello: unknown }).hello), false);
});

Deno.test("a hello whose extra fields are refused is refused before its fields are read one by one", () => {
  let reads = 0;
  const hello: Record<string, unknown> = { ...signPeerHello(Identity.generate(), BODY, 1, 0) };
  for (let i = 0; i < 100_000; i++) {
    Object.defineProperty(hello, `f${i}`, {
      enumerable: true,
      get: () => {
        reads++;
        return i;
      },
    });
  }
  assert.equal(PeerHelloMessage.schema.safeParse({ hello }).success, false);
  assert.ok(reads < 10_000, `${reads} of 100,000 extra fields read`);
});

Deno.test("an honest newer hello with a few dozen extra signed fields still verifies", () => {
  const hello = signPeerHello(Identity.generate(), withExtraFields(40), 1, 0);
  const parsed = PeerHelloMessage.schema.safeParse(decodeCbor(encodeCbor({ hello })));
  assert.ok(parsed.success, "the message schema refused it");
  assert.equal(verifyPeerHello(parsed.data!.hello), true);
});
