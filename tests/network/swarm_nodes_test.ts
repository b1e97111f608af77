/**
 * Two Veriflow nodes in two processes that know nothing of each other's address: both join
 * Hyperswarm through a local DHT testnet on 127.0.0.1, find each other on the network topic,
 * and a client's job on A (which runs no model) streams from B's model.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { StreamClient } from "../../client/stream_client.ts";
import { loadOrCreateIdentity } from "../../node/node_identity.ts";
import { toHex } from "../../protocols/hash.ts";
import { NodeProcess } from "../../tools/node_process.ts";
import { eventually } from "../_helpers/wait.ts";
import { startLocalTestnet } from "../../network/swarm_testnet.ts";

Deno.test({
  name: "two nodes find each other on Hyperswarm (local testnet) and a job on A runs on B",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const root = await Deno.makeTempDir({ prefix: "veriflow-swarm-" });
    const testnet = await startLocalTestnet();
    const swarm = [
      ...testnet.bootstrap.flatMap((b) => ["--swarm-bootstrap", b]),
      "--swarm-bind",
      "127.0.0.1",
      "--no-listen", // no TCP peers at all: the swarm is the only way to meet
    ];
    const common = ["--port", "0", "--heartbeat", "0", ...swarm];
    const processes: NodeProcess[] = [];
    try {
      const b = NodeProcess.start("B", [...common, "--data", join(root, "b")]);
      processes.push(b);
      const a = NodeProcess.start("A", [
        ...common,
        "--data",
        join(root, "a"),
        "--no-inference",
        "--no-prover",
      ]);
      processes.push(a);
      const aUrl = await a.httpUrl();
      await eventually(
        async () => {
          const m = await a.metrics();
          return (m.get("veriflow_peer_workers") ?? 0) >= 1 ? true : undefined;
        },
        "A to find B on the swarm",
        { timeoutMs: 30_000 },
      );
      const client = await StreamClient.connect(aUrl);
      try {
        const job = client.infer({ prompt: "Over the swarm", max_tokens: 12, seed: 1 });
        let tokens = 0;
        for await (const _ of job.tokens) tokens++;
        const done = await job.done;
        assert.equal(tokens, 12);
        const bKey = toHex((await loadOrCreateIdentity(join(root, "b"))).publicKey);
        assert.equal((done.receipt as { worker: string }).worker, bKey, "B ran it");
      } finally {
        client.close();
      }
      assert.ok(a.lines.some((l) => l.includes("swarm joined")), a.lines.join("\n"));
      await Promise.all(processes.map((p) => p.stop()));
    } catch (error) {
      for (const p of processes) {
        console.error(`--- ${p.name} ---\n${p.lines.slice(-30).join("\n")}`);
      }
      throw error;
    } finally {
      for (const p of processes) p.kill("SIGKILL");
      await testnet.stop();
      await Deno.remove(root, { recursive: true }).catch(() => {});
    }
  },
});
