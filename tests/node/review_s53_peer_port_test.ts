/**
 * A peer to dial, or a DHT bootstrap node, needs a port: `HOST:0` names no listener anywhere
 * (port 0 means "any" only when binding). It was accepted, and the node then dialled port 0
 * forever, every attempt refused, with nothing saying why the peer never connected.
 */
import assert from "node:assert/strict";
import { resolveStartConfig } from "../../node/start_command.ts";

Deno.test("--peer HOST:0 is refused at start, naming the flag and what a peer address needs", async () => {
  await assert.rejects(
    resolveStartConfig(["--peer", "127.0.0.1:0"]),
    /network\.peers\.0: expected HOST:PORT with a port 1–65535, got "127\.0\.0\.1:0" \[from --peer\]/,
  );
  await assert.rejects(
    resolveStartConfig(["--peer", "[::1]:0"]),
    /network\.peers\.0: expected HOST:PORT with a port 1–65535/,
  );
});

Deno.test("a DHT bootstrap node at port 0 is refused the same way; real ports still pass", async () => {
  await assert.rejects(
    resolveStartConfig(["--swarm-bootstrap", "127.0.0.1:0"]),
    /network\.swarm\.bootstrap\.0: expected HOST:PORT with a port 1–65535/,
  );
  const { config } = await resolveStartConfig([
    "--peer",
    "127.0.0.1:1",
    "--peer",
    "[::1]:65535",
    "--swarm-bootstrap",
    "127.0.0.1:49737",
  ]);
  assert.deepEqual(config.network.peers, ["127.0.0.1:1", "[::1]:65535"]);
});
