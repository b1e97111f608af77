/**
 * A node told to join the swarm whose swarm host cannot run (review s71, finding 5: a swarm that
 * is gone for good was never reported): `/healthz` is `degraded` with the `swarm` condition
 * `swarm_host_failed`, saying why, while the node still serves. A whole node (tiny model, no
 * peers) over HTTP, in a process of its own (`_swarm_health_node.ts`) whose PATH starts with a
 * folder holding a `node` (where the host is looked up) that says why it cannot start and exits.
 * The PATH is given to that child only: set in this process (`Deno.env.set`), it was every test
 * module's beside this one (they run side by side in one process) while the test ran.
 *
 * @module
 */
import assert from "node:assert/strict";
import { delimiter, join } from "node:path";
import type { Health } from "./_swarm_health_node.ts";

const CHILD = new URL("./_swarm_health_node.ts", import.meta.url).pathname;

Deno.test("a node whose swarm host cannot run is degraded on /healthz with the swarm condition swarm_host_failed", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const bin = join(dir, "bin");
    await Deno.mkdir(bin);
    await Deno.writeTextFile(
      join(bin, "node"),
      `#!/bin/sh\necho "this node cannot start" >&2\nexit 1\n`,
      { mode: 0o755 },
    );
    const path = `${bin}${delimiter}${Deno.env.get("PATH") ?? ""}`;
    const child = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--quiet", CHILD, join(dir, "data")],
      env: { PATH: path },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const err = new TextDecoder().decode(child.stderr);
    assert.equal(child.code, 0, err);
    const health = JSON.parse(new TextDecoder().decode(child.stdout)) as Health;
    assert.equal(health.status, "degraded");
    const swarm = health.conditions!.filter((c) => c.component === "swarm");
    assert.deepEqual(swarm.map((c) => [c.status, c.code]), [["degraded", "swarm_host_failed"]]);
    assert.match(swarm[0].message, /this node cannot start/);
    assert.equal(Deno.env.get("PATH")?.startsWith(bin), false, "this process's PATH is untouched");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
