/**
 * A node's own process for `swarm_health_test.ts`: it runs with the PATH the test gives it (a
 * folder whose `node` cannot start, first), starts a whole node (tiny model, no peers) told to join
 * the swarm in the data directory named by its argument, waits until `/healthz` lists the swarm's
 * condition, prints that answer as JSON on stdout and stops. Its own process, because the PATH is
 * the process's: set in the test's with `Deno.env.set`, every test module running beside it in
 * that process looked `node` up in the stand-in folder meanwhile.
 *
 * @module
 */
import { parseNodeConfig } from "../../node/config.ts";
import { startNode } from "../../node/node.ts";
import { eventually } from "../_helpers/wait.ts";

/** A condition as `/healthz` lists it. */
export interface Condition {
  component: string;
  status: string;
  code: string;
  message: string;
}

/** `/healthz`'s answer, as the child prints it. */
export interface Health {
  status: string;
  conditions?: Condition[];
}

if (import.meta.main) {
  const [dataDir] = Deno.args;
  const node = await startNode(parseNodeConfig({
    dataDir,
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
        if (response.status !== 200) throw new Error(`/healthz answered ${response.status}`);
        const body = await response.json() as Health;
        return body.conditions?.some((c) => c.component === "swarm") ? body : undefined;
        // Polled gently: /healthz allows a client 600 checks a minute.
      },
      "the swarm's condition on /healthz",
      { everyMs: 250 },
    );
    console.log(JSON.stringify(health));
  } finally {
    await node.shutdown();
  }
}
