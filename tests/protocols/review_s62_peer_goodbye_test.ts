/**
 * Review s62 (goodbye, the schema): `peer.goodbye`'s reason is a code — `stopping`, or a newer
 * node's own reason, still read as a stop — and nothing else; the error a goodbye closes the
 * connection with is a closed connection by its code (whatever fails over or retries on one still
 * does) and a stop by its class.
 */
import assert from "node:assert/strict";
import {
  GOODBYE_PROTOCOL,
  GOODBYE_REASONS,
  MAX_GOODBYE_REASON_LENGTH,
  PeerGoodbyeMessage,
  PeerStoppedError,
} from "../../protocols/peer_goodbye.ts";
import { ConnectionClosedError } from "../../protocols/protocol_errors.ts";

Deno.test("review s62: a goodbye's reason is a code, known or a newer node's, and nothing else", () => {
  const accepts = (reason: unknown) => PeerGoodbyeMessage.schema.safeParse({ reason }).success;
  for (const reason of GOODBYE_REASONS) assert.ok(accepts(reason), reason);
  assert.ok(accepts("upgrading"), "a reason this node does not know is still a stop");
  assert.ok(accepts("a".repeat(MAX_GOODBYE_REASON_LENGTH)));
  for (const bad of ["", "Stopping", "stop now", "a".repeat(MAX_GOODBYE_REASON_LENGTH + 1), 7]) {
    assert.equal(accepts(bad), false, JSON.stringify(bad));
  }
  assert.deepEqual(GOODBYE_PROTOCOL.messages, [PeerGoodbyeMessage]);
  assert.equal(GOODBYE_PROTOCOL.version, 1);
});

Deno.test("review s62: PeerStoppedError is a closed connection by its code, and a stop by its class", () => {
  const error = new PeerStoppedError("stopping");
  assert.ok(error instanceof ConnectionClosedError);
  assert.equal(error.code, "connection_closed");
  assert.equal(error.reason, "stopping");
  assert.equal(error.message, "peer stopped (stopping)");
});
