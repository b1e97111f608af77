/**
 * The address the swarm host gives a peer connection (`network/swarm/peer_address.mjs`): the IP
 * its UDP stream comes from, none for a stream that comes through a blind relay. Hyperdht 6.34
 * relays a connection when either side asks (its `relayThrough`), and a relayed stream is
 * connected to the relay's address: taken for the peer's, it would put every peer behind one relay
 * into one address group of the node's budgets. Runs `_relayed_connection.mjs` (Node.js, a local
 * testnet on 127.0.0.1 of its own, a blind relay on it).
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";

const SCRIPT = fileURLToPath(new URL("./_relayed_connection.mjs", import.meta.url));

Deno.test({
  name:
    "swarm peer address: a connection relayed through a blind relay has no address (its stream's remote is the relay's); a direct one has its peer's",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const { code, stdout, stderr } = await new Deno.Command("node", {
      args: [SCRIPT],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const out = new TextDecoder().decode(stdout);
    assert.equal(code, 0, `${out}\n${new TextDecoder().decode(stderr)}`);
    const seen = JSON.parse(out.trim().split("\n").at(-1)!);
    // The relayed connection did come through the relay: its stream's remote is the relay's DHT
    // socket, not the peer's.
    assert.ok(seen.relayingSuccesses >= 1, out);
    assert.equal(seen.relayedRemotePort, seen.relayPort, "the relay's port, not the peer's");
    assert.equal(seen.relayedAddress, "", "relayed: no address");
    // The direct one: its peer's own DHT socket, on 127.0.0.1.
    assert.equal(seen.directRemotePort, seen.directClientPort, out);
    assert.equal(seen.directAddress, "127.0.0.1");
  },
});
