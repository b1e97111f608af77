/**
 * Review s61 (ops2, S7): with no Node.js installed, Deno answers `node` with its own stand-in
 * (`~/.cache/deno/node_compat_bin/node`, put first on the PATH it gives child processes), and the
 * swarm host died in it with `symbol lookup error: …/udx-native.node: undefined symbol:
 * uv_interface_addresses`: nothing said Node.js was missing. The swarm host now refuses to start
 * under the stand-in, with a sentence that says so, before it runs anything.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { denoStandInNode } from "../../network/_swarm_node_path.ts";
import { SwarmHost, SwarmHostError } from "../../network/swarm_host.ts";
import { base, script, settled } from "./_swarm_host_fixture.ts";

/** A directory named like Deno's, holding an executable `node` that records that it ran. */
async function standIn(): Promise<{ dir: string; bin: string; nodePath: string }> {
  const { dir } = await script("true", "veriflow-stand-in-");
  const bin = join(dir, "node_compat_bin");
  await Deno.mkdir(bin);
  const nodePath = join(bin, "node");
  await Deno.writeTextFile(nodePath, `#!/bin/sh\necho ran > "${dir}/ran"\nexit 127\n`, {
    mode: 0o755,
  });
  return { dir, bin, nodePath };
}

Deno.test({
  name:
    "review s61 ops2: the swarm host refuses Deno's stand-in node with a sentence naming it, and runs nothing",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const { dir, nodePath } = await standIn();
    try {
      const error = await settled(
        SwarmHost.start({ ...base(), nodePath }).then(() => undefined, (e) => e),
        "start()",
      );
      assert.ok(error instanceof SwarmHostError, `start() rejects: ${error}`);
      assert.match(error.message, /is Deno's stand-in, not Node\.js/);
      assert.match(error.message, /install Node\.js 20 or later, or set the path to it/);
      assert.ok(error.message.includes(nodePath), error.message);
      await assert.rejects(Deno.stat(join(dir, "ran")), Deno.errors.NotFound, "nothing ran");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("review s61 ops2: a bare `node` is looked up on the PATH: the stand-in first on it is named; a real node first is not", async () => {
  const { dir, bin } = await standIn();
  const real = join(dir, "real");
  await Deno.mkdir(real);
  await Deno.writeTextFile(join(real, "node"), "#!/bin/sh\n", { mode: 0o755 });
  try {
    assert.equal(denoStandInNode("node", `${bin}:${real}`), join(bin, "node"));
    assert.equal(denoStandInNode("node", `${real}:${bin}`), undefined);
    assert.equal(denoStandInNode("node", `${join(dir, "none")}`), undefined);
    assert.equal(denoStandInNode(join(real, "node"), bin), undefined, "a path is taken as given");
    assert.equal(denoStandInNode(join(bin, "node"), real), join(bin, "node"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
