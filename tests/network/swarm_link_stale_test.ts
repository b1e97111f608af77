/**
 * The link's private directories that killed nodes left behind (review s71, finding 8): opening a
 * link removes those of processes that are gone and whose socket nobody listens on, and nothing
 * else — not a live node's, not one whose socket still accepts, not a directory it did not make.
 */
import assert from "node:assert/strict";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { openSwarmLink } from "../../network/swarm_link.ts";
import { TextLineStream } from "../../tools/node_process.ts";
import { settled } from "./_swarm_host_fixture.ts";

const OWNER = fileURLToPath(new URL("./_swarm_link_owner.ts", import.meta.url));

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}

/** A process that opened a link in `socketDir` and was SIGKILLed: its pid and socket path. */
async function killedOwner(socketDir: string): Promise<{ pid: number; dataPath: string }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", OWNER, socketDir],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const lines = child.stdout.pipeThrough(new TextDecoderStream())
    .pipeThrough(new TextLineStream()).getReader();
  try {
    const { value } = await settled(lines.read(), "the link owner's address", 30_000);
    const said = JSON.parse(value!) as { pid: number; address: { dataPath: string } };
    return { pid: said.pid, dataPath: said.address.dataPath };
  } finally {
    child.kill("SIGKILL");
    await child.status;
    await lines.cancel().catch(() => {});
  }
}

Deno.test({
  name:
    "swarm link stale: opening a link removes the socket directory a killed node left, and keeps live, listening and foreign ones",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const socketDir = await Deno.makeTempDir({ prefix: "veriflow-link-stale-" });
    const listeners: Deno.Listener[] = [];
    const links: { close(): Promise<void> }[] = [];
    try {
      const killed = await killedOwner(socketDir);
      const stale = dirname(killed.dataPath);
      assert.ok(await exists(killed.dataPath), "the killed node's socket is left behind");
      // A live node's link (this process's): kept.
      const live = await openSwarmLink(() => {}, { socketDir });
      links.push(live);
      const liveDir = dirname((live.address as { dataPath: string }).dataPath);
      // Named for the dead process, but its socket accepts (a node of another pid namespace on
      // the same directory): kept.
      const listening = join(socketDir, `veriflow-swarm-${killed.pid}-listening`);
      await Deno.mkdir(listening, { mode: 0o700 });
      listeners.push(Deno.listen({ transport: "unix", path: join(listening, "host.sock") }));
      // Not one of the link's directories (a test's, an operator's): kept.
      const foreign = join(socketDir, "veriflow-swarm-host-abc");
      await Deno.mkdir(foreign);
      await Deno.writeTextFile(join(foreign, "host.sock"), "");
      // The dead process's name, but holding more than a socket: not the link's to remove.
      const more = join(socketDir, `veriflow-swarm-${killed.pid}-more`);
      await Deno.mkdir(more);
      await Deno.writeTextFile(join(more, "notes.txt"), "keep me");

      const next = await openSwarmLink(() => {}, { socketDir });
      links.push(next);
      assert.ok(!await exists(stale), `the killed node's ${basename(stale)} was left`);
      for (const kept of [liveDir, listening, foreign, more]) {
        assert.ok(await exists(kept), `${basename(kept)} was removed`);
      }
      // The new link's own directory names its process.
      const nextDir = basename(dirname((next.address as { dataPath: string }).dataPath));
      assert.ok(nextDir.startsWith(`veriflow-swarm-${Deno.pid}-`), nextDir);
    } finally {
      for (const link of links) await link.close();
      for (const listener of listeners) listener.close();
      await Deno.remove(socketDir, { recursive: true });
    }
  },
});
