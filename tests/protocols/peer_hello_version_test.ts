/**
 * A hello's `version` is version-shaped printable ASCII (`protocols/peer_hello.ts`,
 * `HELLO_VERSION_PATTERN`): it reaches the operator's `/metrics`, dashboard and `cli.ts status`.
 * Any text up to 32 characters used to pass (review s76 F1: CR, ESC and U+202E in a validly
 * signed hello).
 */
import assert from "node:assert/strict";
import { decodeCbor, encodeCbor } from "../../protocols/cbor.ts";
import { Identity } from "../../protocols/identity.ts";
import { PeerHelloMessage, signPeerHello, verifyPeerHello } from "../../protocols/peer_hello.ts";
import { createCoreRegistry } from "../../protocols/messages.ts";
import { InvalidBodyError } from "../../protocols/protocol_errors.ts";

const node = Identity.generate();
const helloOf = (version: string) =>
  signPeerHello(node, { version, roles: ["inference"], models: [] }, 1, 0);

Deno.test("a hello's version is refused as an invalid body unless it is 1 to 32 semver characters", () => {
  const registry = createCoreRegistry().register(PeerHelloMessage);
  for (
    const bad of [
      'v"} 1\r\\x\u2028\u202ey\x1b[31m', // review s76 F1's
      "0.1.0\x1b]0;owned\x07",
      "0.1.0 beta", // a space: not a version's
      "0.1.0-ü",
      "",
      "1".repeat(33),
    ]
  ) {
    const hello = helloOf(bad);
    assert.equal(verifyPeerHello(hello), false, JSON.stringify(bad));
    assert.throws(
      () => registry.parseBody(PeerHelloMessage.type, decodeCbor(encodeCbor({ hello }))),
      (error) =>
        error instanceof InvalidBodyError && error.code === "invalid_body" &&
        /version is 1 to 32 of 0-9 A-Z a-z \. \+ -/.test(error.message),
      JSON.stringify(bad),
    );
  }
  for (const good of ["0.1.0", "1.2.0-rc.1+build.5", "v2", "1".repeat(32)]) {
    assert.ok(verifyPeerHello(helloOf(good)), good);
  }
});
