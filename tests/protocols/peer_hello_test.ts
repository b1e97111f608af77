import assert from "node:assert/strict";
import { decodeCbor, encodeCbor } from "../../protocols/cbor.ts";
import { Identity } from "../../protocols/identity.ts";
import { PeerHelloSchema, signPeerHello, verifyPeerHello } from "../../protocols/peer_hello.ts";

const hello = signPeerHello(
  Identity.generate(),
  {
    version: "0.1.0-ü",
    roles: ["inference"],
    models: ["bafkreimodel"],
  },
  1,
  10,
);

Deno.test("peer hello: a lone surrogate in a known or a later version's field is refused, not thrown", () => {
  assert.ok(verifyPeerHello(hello));
  assert.ok(verifyPeerHello(decodeCbor(encodeCbor(hello))));
  for (
    const bad of [
      { ...hello, version: "0.1\uD800" },
      { ...hello, models: ["bafk\uDC00"] },
      { ...hello, later: { "\uD800": "x" } }, // unknown fields are kept and signed too
    ]
  ) {
    assert.equal(verifyPeerHello(bad), false);
    assert.equal(PeerHelloSchema.safeParse(bad).success, false);
  }
});
