/**
 * `deno task demo` (`tools/demo.ts`) and the node processes it starts (`NodeProcess`).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

// ---- the whole story ----------------------------------------------------------------------------
//
// `deno task demo` runs its whole story — a DHT testnet, four node processes, a job, its receipt
// and verdict, a cheater convicted and routed around, a file read back after its first holder was
// killed, a clean shutdown — and exits 0.

Deno.test("deno task demo exits 0 and prints the receipt, the verdict and the conviction", async () => {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL("../../tools/demo.ts", import.meta.url).pathname, "--quiet"],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const out = new TextDecoder().decode(stdout);
  assert.equal(code, 0, `${out}\n${new TextDecoder().decode(stderr)}`);
  assert.match(out, /The receipt the client got/);
  assert.match(out, /commits {2}Merkle root [0-9a-f]{64}/);
  assert.match(out, /verdict {2}challenged job [0-9a-f]{12} → valid/);
  assert.match(out, /convicted="true"/);
  assert.match(out, /the next job runs on the worker/);
  assert.match(out, /read back through \w+: \d+ bytes, identical/);
  assert.match(out, /holder\(s\) left; repaired [1-9]\d* copies/);
  assert.match(out, /Done\./);
});

Deno.test("cli.ts demo with an unknown flag exits 2 with one line naming it, no stack trace", async () => {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL("../../cli.ts", import.meta.url).pathname, "demo", "--bogus"],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const err = new TextDecoder().decode(stderr);
  assert.equal(code, 2, err);
  assert.equal(new TextDecoder().decode(stdout), "");
  assert.equal(err.trimEnd().split("\n").length, 1, err);
  assert.match(err, /--bogus.*--help/);
});

// ---- a checkout under a folder with a space -----------------------------------------------------
//
// `NodeProcess` (and `deno task demo`, which starts its nodes with it) runs scripts found beside
// its own module. A URL's `pathname` is percent-encoded: in a checkout under a folder with a space
// (`/home/me/My Projects/veriflow`) it named `My%20Projects`, a folder that is not there, and every
// node failed to start with "Module not found". Data directories with spaces travel as arguments,
// never through a shell, and reach the node intact.

const SOURCE = new URL("../../tools/node_process.ts", import.meta.url);

Deno.test("NodeProcess starts cli.ts from a checkout whose path has a space, args intact", async () => {
  const root = await Deno.makeTempDir({ prefix: "veriflow s55 checkout " });
  try {
    await Deno.mkdir(join(root, "tools"));
    await Deno.copyFile(SOURCE, join(root, "tools", "node_process.ts"));
    // Preloaded into every node it starts (the node stops when its parent goes).
    await Deno.copyFile(
      new URL("../../tools/_stop_with_parent.ts", import.meta.url),
      join(root, "tools", "_stop_with_parent.ts"),
    );
    // A stand-in for cli.ts: prints the arguments it got, as a node prints its ports.
    await Deno.writeTextFile(
      join(root, "cli.ts"),
      'console.log("args " + JSON.stringify(Deno.args));\n',
    );
    const { NodeProcess } = await import(
      pathToFileURL(join(root, "tools", "node_process.ts")).href
    ) as typeof import("../../tools/node_process.ts");
    const data = join(root, "data dir");
    const node = NodeProcess.start("spaced", ["--data", data]);
    try {
      const [, args] = await node.waitForLine(/^args (.*)$/);
      assert.deepEqual(JSON.parse(args), ["start", "--data", data]);
    } finally {
      await node.stop();
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
