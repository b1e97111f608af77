/**
 * `NodeProcess` (and `deno task demo`, which starts its nodes with it) runs scripts found beside
 * its own module. A URL's `pathname` is percent-encoded: in a checkout under a folder with a
 * space (`/home/me/My Projects/veriflow`) it named `My%20Projects`, a folder that is not there,
 * and every node failed to start with "Module not found". Data directories with spaces travel
 * as arguments, never through a shell, and reach the node intact.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const SOURCE = new URL("../../tools/node_process.ts", import.meta.url);

Deno.test("NodeProcess starts cli.ts from a checkout whose path has a space, args intact", async () => {
  const root = await Deno.makeTempDir({ prefix: "veriflow s55 checkout " });
  try {
    await Deno.mkdir(join(root, "tools"));
    await Deno.copyFile(SOURCE, join(root, "tools", "node_process.ts"));
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
