/**
 * A node started by `NodeProcess` (`tools/node_process.ts`) stops when the process that started
 * it goes, however it goes (`tools/_stop_with_parent.ts`). `deno task demo` or a `deno test` run
 * stopped from outside (SIGTERM or SIGKILL from a CI job's timeout, `timeout`, a process manager)
 * left every node it had started, with its swarm host, running for good, reparented to init
 * (review s78, finding 2).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { eventually } from "../_helpers/wait.ts";

const PARENT = fileURLToPath(new URL("./_node_parent.ts", import.meta.url));

/** Whether process `pid` still runs (a zombie no one has reaped yet counts as gone). */
function running(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

Deno.test({
  name: "a node NodeProcess started stops gracefully when its parent is killed with SIGKILL",
  ignore: Deno.build.os !== "linux", // reads /proc
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "veriflow-orphan-" });
    const stopped = join(dir, "stopped");
    const parent = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", PARENT, stopped],
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    let nodePid: number | undefined;
    try {
      const reader = parent.stdout.pipeThrough(new TextDecoderStream()).getReader();
      let out = "";
      while (!/NODE \d+\n/.test(out)) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`the parent exited before it started its node: ${out}`);
        out += value;
      }
      reader.cancel().catch(() => {});
      nodePid = Number(out.match(/NODE (\d+)/)![1]);
      assert.ok(running(nodePid), "the node runs while its parent does");
      parent.kill("SIGKILL"); // no handler, no cleanup: only the kernel's closing of its pipes
      await parent.status;
      await eventually(() => !running(nodePid!), "the node to stop after its parent was killed");
      assert.equal(await Deno.readTextFile(stopped), "stopped on SIGTERM\n");
    } finally {
      if (nodePid !== undefined && running(nodePid)) Deno.kill(nodePid, "SIGKILL");
      await Deno.remove(dir, { recursive: true });
    }
  },
});
