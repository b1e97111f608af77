/**
 * `deno task demo` (`tools/demo.ts`) stopped from outside. SIGTERM (what `timeout`, a CI job's
 * timeout or a process manager sends) ended the demo without its cleanup: every node it had
 * started, with its swarm host, ran on for good, and its temporary directory with the nodes'
 * identities stayed (review s78, finding 2).
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { eventually } from "../_helpers/wait.ts";

const DEMO = fileURLToPath(new URL("../../tools/demo.ts", import.meta.url));

/** The process ids of `pid`'s descendants now (Linux `/proc`). */
function descendants(pid: number): number[] {
  const out: number[] = [];
  const visit = (parent: number) => {
    let tasks: string[] = [];
    try {
      tasks = [...Deno.readDirSync(`/proc/${parent}/task`)].map((t) => t.name);
    } catch {
      return; // gone
    }
    for (const task of tasks) {
      let children = "";
      try {
        children = Deno.readTextFileSync(`/proc/${parent}/task/${task}/children`);
      } catch {
        continue;
      }
      for (const child of children.trim().split(/\s+/).filter((c) => c !== "")) {
        out.push(Number(child));
        visit(Number(child));
      }
    }
  };
  visit(pid);
  return out;
}

/** Whether process `pid` still runs (a zombie no one has reaped yet counts as gone). */
function running(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat[stat.lastIndexOf(")") + 2] !== "Z";
  } catch {
    return false;
  }
}

Deno.test({
  name:
    "deno task demo stopped with SIGTERM stops its nodes and its testnet, removes its directory and exits 143",
  ignore: Deno.build.os !== "linux", // reads /proc
  fn: async () => {
    // The demo's temporary directory goes here (Deno.makeTempDir follows TMPDIR).
    const tmp = await Deno.makeTempDir({ prefix: "veriflow-demo-stop-" });
    const demo = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", DEMO, "--quiet"],
      env: { TMPDIR: tmp },
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    let left: number[] = [];
    try {
      const reader = demo.stdout.pipeThrough(new TextDecoderStream()).getReader();
      let out = "";
      // Its testnet is up and its first nodes are being started.
      while (!out.includes("Starting the validator")) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`the demo ended before it started its nodes:\n${out}`);
        out += value;
      }
      reader.cancel().catch(() => {});
      // The testnet and the validator, worker and router (their swarm hosts come later).
      const started = await eventually(() => {
        const pids = descendants(demo.pid);
        return pids.length >= 4 ? pids : undefined;
      }, "the demo to start its testnet and three nodes");
      left = started;
      demo.kill("SIGTERM");
      const [status, stderr] = await Promise.all([
        demo.status,
        new Response(demo.stderr).text(),
      ]);
      assert.deepEqual([...Deno.readDirSync(tmp)].map((e) => e.name), [], "its directory is left");
      assert.equal(status.code, 143, stderr);
      assert.match(stderr, /demo stopped \(SIGTERM\)/);
      await eventually(() => started.every((pid) => !running(pid)), "the demo's processes to end");
    } finally {
      for (const pid of left.filter(running)) Deno.kill(pid, "SIGKILL");
      await Deno.remove(tmp, { recursive: true });
    }
  },
});
