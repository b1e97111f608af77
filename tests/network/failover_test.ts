/**
 * Failover mid-stream across processes: a router (no model) and two workers meet on Hyperswarm
 * through a local DHT testnet on 127.0.0.1; a WebSocket client on the router streams a long
 * seeded job; the worker serving it (the one whose `/metrics` shows the running job) is killed
 * with SIGKILL after the client has its first tokens. The client's stream completes, its text is
 * that of an undisturbed run of the same job, every position arrives once, and the receipt it
 * gets is the surviving worker's and checks against that text.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { StreamClient } from "../../client/stream_client.ts";
import { ensureBuiltinModel } from "../../inference/builtin_model.ts";
import { loadOrCreateIdentity } from "../../node/node_identity.ts";
import { fromHex, toHex } from "../../protocols/hash.ts";
import { parseReceipt, verifyReceipt } from "../../protocols/receipt.ts";
import { startLocalTestnet } from "../../network/swarm_testnet.ts";
import { NodeProcess } from "../../tools/node_process.ts";
import { eventually } from "../_helpers/wait.ts";

/** Give-up time of a wait on another process (nodes meeting on the swarm, a model load). */
const ACROSS_PROCESSES_MS = 30_000;

/** A lost peer is noticed within a second, not the default five. */
const CONFIG = { network: { keepaliveMs: 300, idleTimeoutMs: 1_000 } };

/**
 * Long enough that the worker is still generating when it is killed: on the small model a token
 * takes milliseconds, and the kill follows the first tokens by two metric reads.
 */
const REQUEST = {
  prompt: "Failover",
  max_tokens: 440,
  temperature: 0.8,
  top_k: 40,
  seed: 7,
};

/** Tokens the client reads before the worker is killed. */
const READ_BEFORE_KILL = 8;

Deno.test({
  name:
    "failover across processes (Hyperswarm): the worker serving a job is killed mid-stream and the client's stream completes on the other, identical to an undisturbed run",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const root = await Deno.makeTempDir({ prefix: "veriflow-failover-" });
    const testnet = await startLocalTestnet();
    const processes: NodeProcess[] = [];
    try {
      const model = await ensureBuiltinModel(join(root, "models"), "small", 0);
      const configFile = join(root, "config.json");
      await Deno.writeTextFile(configFile, JSON.stringify(CONFIG));
      const common = [
        ...["--config", configFile, "--port", "0", "--heartbeat", "0", "--model", model],
        ...testnet.bootstrap.flatMap((b) => ["--swarm-bootstrap", b]),
        ...["--swarm-bind", "127.0.0.1", "--no-listen"],
      ];
      const spawn = (name: string, args: string[]) => {
        const p = NodeProcess.start(name, [...common, "--data", join(root, name), ...args]);
        processes.push(p);
        return p;
      };
      const workers = [spawn("w1", []), spawn("w2", [])];
      const router = spawn("router", ["--no-inference", "--no-prover"]);
      const routerUrl = await router.httpUrl();
      await eventually(
        async () => ((await router.metrics()).get("veriflow_peer_workers") ?? 0) >= 2 || undefined,
        "the router to find both workers on the swarm",
        { timeoutMs: ACROSS_PROCESSES_MS },
      );
      const keys = await Promise.all(
        workers.map(async (w) => toHex((await loadOrCreateIdentity(join(root, w.name))).publicKey)),
      );
      const client = await StreamClient.connect(routerUrl);
      try {
        // The reference: the same job, undisturbed (another nonce: the job id differs, its
        // tokens do not).
        const reference = client.infer({ ...REQUEST, nonce: "reference" });
        const expected: { id: number; text: string }[] = [];
        for await (const t of reference.tokens) expected.push({ id: t.token_id, text: t.text });
        assert.equal((await reference.done).finish_reason, "length");
        assert.equal(expected.length, REQUEST.max_tokens);

        const job = client.infer({ ...REQUEST, nonce: "failover" });
        const reader = job.tokens.getReader();
        const got: { index: number; id: number; text: string }[] = [];
        while (got.length < READ_BEFORE_KILL) {
          const { value } = await reader.read();
          assert.ok(value, "the job ended before the kill");
          got.push({ index: value.index, id: value.token_id, text: value.text });
        }
        // The worker running it is the one with an active job.
        const active = await Promise.all(
          workers.map(async (w) => (await w.metrics()).get("veriflow_inference_active_jobs")),
        );
        const serving = active.indexOf(1);
        assert.ok(serving >= 0 && active.indexOf(1, serving + 1) < 0, `active jobs ${active}`);
        workers[serving].kill("SIGKILL");
        const survivor = 1 - serving;

        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          got.push({ index: value.index, id: value.token_id, text: value.text });
        }
        const summary = await job.done;
        assert.equal(summary.finish_reason, "length");
        assert.deepEqual(got.map((t) => t.index), expected.map((_, i) => i), "each position once");
        assert.deepEqual(got.map((t) => t.id), expected.map((t) => t.id));
        const text = got.map((t) => t.text).join("");
        assert.equal(text, expected.map((t) => t.text).join(""));
        assert.equal(summary.usage.completion_tokens, REQUEST.max_tokens);

        const receipt = parseReceipt(summary.receipt);
        assert.equal(toHex(receipt.worker), keys[survivor], "the resuming worker signed it");
        assert.equal(receipt.jobId, (await job.start).job_id);
        assert.equal(receipt.tokenCount, REQUEST.max_tokens);
        const check = verifyReceipt(receipt, { worker: fromHex(keys[survivor]), output: text });
        assert.ok(check.ok, JSON.stringify(check));
        // The survivor ran the reference or not; either way it ran this job, resumed.
        const m = await workers[survivor].metrics();
        assert.ok((m.get("veriflow_inference_jobs_finished_total") ?? 0) >= 1);
      } finally {
        client.close();
      }
    } catch (error) {
      for (const p of processes) console.error(`--- ${p.name} ---\n${p.tail(30)}`);
      throw error;
    } finally {
      for (const p of processes) p.kill("SIGKILL");
      await Promise.all(processes.map((p) => p.exited));
      await testnet.stop();
      await Deno.remove(root, { recursive: true }).catch(() => {});
    }
  },
});
