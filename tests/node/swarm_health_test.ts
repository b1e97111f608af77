/**
 * A node told to join the swarm whose swarm host cannot run (review s71, finding 5: a swarm that
 * is gone for good was never reported): `/healthz` is `degraded` with the `swarm` condition
 * `swarm_host_failed`, saying why, while the node still serves. A whole node (tiny model, no
 * peers) over HTTP; its `node` (first on the PATH the host is looked up on) is a script that says
 * why it cannot start and exits.
 *
 * @module
 */
import assert from "node:assert/strict";
import { delimiter, join } from "node:path";
import { parseNodeConfig } from "../../node/config.ts";
import { startNode } from "../../node/node.ts";
import { eventually } from "../_helpers/wait.ts";

/** A condition as `/healthz` lists it. */
interface Condition {
  component: string;
  status: string;
  code: string;
  message: string;
}

Deno.test({
  name:
    "a node whose swarm host cannot run is degraded on /healthz with the swarm condition swarm_host_failed",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    const bin = join(dir, "bin");
    await Deno.mkdir(bin);
    await Deno.writeTextFile(
      join(bin, "node"),
      `#!/bin/sh\necho "this node cannot start" >&2\nexit 1\n`,
      { mode: 0o755 },
    );
    const path = Deno.env.get("PATH") ?? "";
    Deno.env.set("PATH", `${bin}${delimiter}${path}`);
    try {
      const node = await startNode(parseNodeConfig({
        dataDir: join(dir, "data"),
        http: { port: 0 },
        heartbeatMs: 0,
        model: { workers: 0, size: "tiny" },
        network: { listening: false, swarm: { enabled: true, bootstrap: [], bind: "127.0.0.1" } },
        roles: { validator: false, prover: false },
      }));
      try {
        const health = await eventually(
          async () => {
            const response = await fetch(`${node.url}/healthz`);
            assert.equal(response.status, 200);
            const body = await response.json() as { status: string; conditions?: Condition[] };
            return body.conditions?.some((c) => c.component === "swarm") ? body : undefined;
            // Polled gently: /healthz allows a client 600 checks a minute.
          },
          "the swarm's condition on /healthz",
          { everyMs: 250 },
        );
        assert.equal(health.status, "degraded");
        const swarm = health.conditions!.filter((c) => c.component === "swarm");
        assert.deepEqual(swarm.map((c) => [c.status, c.code]), [["degraded", "swarm_host_failed"]]);
        assert.match(swarm[0].message, /this node cannot start/);
      } finally {
        await node.shutdown();
      }
    } finally {
      Deno.env.set("PATH", path);
      await Deno.remove(dir, { recursive: true });
    }
  },
});
