/**
 * The local DHT testnet (`network/swarm_testnet.ts`) under Deno's stand-in `node`: with no Node.js
 * installed, Deno answers `node` with a stand-in of its own, first on the PATH it gives child
 * processes, and the testnet died in it on Hyperswarm's native addon (`undefined symbol:
 * uv_interface_addresses`). The demo printed that line and "is Node.js 20+ installed?" (review
 * s78, finding 4). It is refused before it runs, with the swarm host's sentence.
 */
import assert from "node:assert/strict";
import { delimiter, join } from "node:path";
import { DENO_STAND_IN_DIR } from "../../network/_swarm_node_path.ts";

const TESTNET = new URL("../../network/swarm_testnet.ts", import.meta.url).href;

Deno.test("the DHT testnet refuses Deno's stand-in node with the swarm host's sentence, and runs nothing", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-testnet-stand-in-" });
  try {
    // A folder named like Deno's, holding an executable `node` that records that it ran.
    const bin = join(dir, DENO_STAND_IN_DIR);
    await Deno.mkdir(bin);
    await Deno.writeTextFile(join(bin, "node"), `#!/bin/sh\necho ran > "${dir}/ran"\nexit 127\n`, {
      mode: 0o755,
    });
    // In a child: the PATH is the process's own (what Deno gives children), not set here for
    // every test module of this process.
    const code = `import { startLocalTestnet } from ${JSON.stringify(TESTNET)};
      try { await startLocalTestnet(); console.log("started"); }
      catch (error) { console.log(error.code + " " + error.message); }`;
    const { stdout } = await new Deno.Command(Deno.execPath(), {
      args: ["eval", code],
      env: { PATH: [bin, Deno.env.get("PATH") ?? ""].join(delimiter) },
      stdout: "piped",
      stderr: "inherit",
    }).output();
    const out = new TextDecoder().decode(stdout).trim();
    assert.match(out, /^swarm_host_failed cannot start the DHT testnet with /, out);
    assert.ok(out.includes(join(bin, "node")), out);
    assert.match(out, /Deno's stand-in, not Node\.js/);
    assert.match(out, /install Node\.js 20 or later/);
    await assert.rejects(Deno.stat(join(dir, "ran")), Deno.errors.NotFound, "the stand-in ran");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
