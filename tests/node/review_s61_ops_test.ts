/**
 * Review s61 (ops): a `--peer` that is the node's own peer port (a slip copying the README's
 * three-node example: `--p2p-port 7712 --peer 127.0.0.1:7712`) was accepted. The node then dialled
 * itself for as long as it ran: its dial said `the peer claims our own key`, and its listener a
 * `handshake failed: the peer claims our own key` line for every redial, neither saying that the
 * address was the node's own. It is now refused at start, like a `--p2p-port` equal to `--port`.
 */
import assert from "node:assert/strict";
import { resolveStartConfig } from "../../node/start_command.ts";

Deno.test("review s61 ops: a --peer that is the node's own peer port is refused at start, naming it", async () => {
  await assert.rejects(
    resolveStartConfig([
      "--p2p-port",
      "7712",
      "--peer",
      "127.0.0.1:7711",
      "--peer",
      "127.0.0.1:7712",
    ]),
    /network\.peers\.1: 127\.0\.0\.1:7712 is this node's own peer port \(--p2p-port 7712\)/,
  );
  // `localhost` names the same loopback listener; so does any loopback address for a node
  // listening on every interface.
  await assert.rejects(
    resolveStartConfig(["--p2p-port", "7712", "--peer", "localhost:7712"]),
    /network\.peers\.0: localhost:7712 is this node's own peer port/,
  );
  await assert.rejects(
    resolveStartConfig(["--p2p-host", "0.0.0.0", "--p2p-port", "7712", "--peer", "127.0.0.1:7712"]),
    /network\.peers\.0: 127\.0\.0\.1:7712 is this node's own peer port/,
  );
});

Deno.test("review s61 ops: the same port on another host, another port, or no listener is no self-dial", async () => {
  const ok = async (args: string[]) => (await resolveStartConfig(args)).config.network.peers;
  // Another machine's node on the default port, from a node listening on every interface.
  assert.deepEqual(
    await ok(["--p2p-host", "0.0.0.0", "--p2p-port", "7712", "--peer", "10.1.2.3:7712"]),
    ["10.1.2.3:7712"],
  );
  assert.deepEqual(await ok(["--p2p-port", "7712", "--peer", "127.0.0.1:7711"]), [
    "127.0.0.1:7711",
  ]);
  // A node that listens on no port dials whatever it is given.
  assert.deepEqual(await ok(["--no-listen", "--peer", "127.0.0.1:7700"]), ["127.0.0.1:7700"]);
  // Port 0 picks a free port: no configured peer can name it.
  assert.deepEqual(await ok(["--p2p-port", "0", "--peer", "127.0.0.1:7700"]), ["127.0.0.1:7700"]);
});
