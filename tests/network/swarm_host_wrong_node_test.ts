/**
 * A `node` that is not Node.js (review s71, finding 7): Deno itself behind a link named `node`
 * outside Deno's own `node_compat_bin` (a user's `ln -s "$(which deno)" ~/bin/node`) runs the host
 * until Hyperswarm's native addon fails on libuv's symbols; start() then says plainly that the
 * swarm host needs Node.js and how to point the node at one, not only the symbol lookup error.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { SwarmHost, SwarmHostError } from "../../network/swarm_host.ts";
import { notNodeHint } from "../../network/_swarm_node_path.ts";
import { base, settled } from "./_swarm_host_fixture.ts";

Deno.test({
  name:
    "swarm host wrong node: Deno linked as node fails start() saying Node.js 20 or later is needed and how to point the node at it",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "veriflow-swarm-wrong-node-" });
    const nodePath = join(dir, "node");
    await Deno.symlink(Deno.execPath(), nodePath);
    try {
      const error = await settled(
        SwarmHost.start({ ...base(), nodePath }).then(async (host) => {
          await host.close();
          return "started";
        }, (e) => e),
        "start()",
        60_000,
      );
      assert.ok(error instanceof SwarmHostError, String(error));
      // What the host said is kept, and explained.
      assert.match(error.message, /undefined symbol: uv_/);
      assert.match(error.message, /is not Node\.js/);
      assert.match(error.message, /Node\.js 20 or later/);
      assert.match(error.message, /PATH/);
      assert.match(error.message, /nodePath/);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "swarm host wrong node: the hint is given only for libuv's missing symbols",
  fn: () => {
    const lines = ["node: symbol lookup error: /x/udx-native.node: undefined symbol: uv_udp_init"];
    assert.match(notNodeHint(lines, "/opt/node")!, /"\/opt\/node" is not Node\.js/);
    assert.equal(notNodeHint(["SyntaxError: Unexpected token '?'"], "node"), undefined);
    assert.equal(notNodeHint([], "node"), undefined);
  },
});
