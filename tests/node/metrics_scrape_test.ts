/**
 * `/metrics` after one known job: every counter and histogram it should move moved by exactly
 * the job's amounts, and the whole exposition parses line by line (a promtool-style check).
 */
import assert from "node:assert/strict";
import { parseNodeConfig } from "../../node/config.ts";
import { startNode } from "../../node/node.ts";
import { NodeActivity } from "../../node/node_activity.ts";
import { MetricsRegistry } from "../../server/metrics_registry.ts";
import { Identity } from "../../protocols/identity.ts";
import { signVerdict } from "../../protocols/verdict.ts";
import { parsePrometheusText, valueOf } from "../server/_prometheus_text.ts";
import { eventually } from "../_helpers/wait.ts";

Deno.test({
  name:
    "a known job moves each job counter and latency histogram by its own amounts; every line parses",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    const node = await startNode(parseNodeConfig({
      dataDir: dir,
      http: { port: 0 },
      heartbeatMs: 0,
      model: { workers: 0 },
      network: { listening: false },
    }));
    try {
      const scrape = async () =>
        parsePrometheusText(await (await fetch(`${node.url}/metrics`)).text());
      const before = await scrape();
      const response = await fetch(`${node.url}/v1/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ prompt: "Once upon a time", max_tokens: 12, seed: 1 }),
      });
      assert.equal(response.status, 200);
      const answer = await response.json();
      const n: number = answer.usage.completion_tokens;
      assert.ok(n >= 2, `the job streamed ${n} tokens`);
      // The validator records the node's own receipt by message, just after the answer.
      const after = await eventually(async () => {
        const s = await scrape();
        return valueOf(s, "veriflow_validator_own_receipts_total") >
            valueOf(before, "veriflow_validator_own_receipts_total")
          ? s
          : undefined;
      }, "the own receipt in the ledger");
      const delta = (name: string, labels?: Record<string, string>) =>
        valueOf(after, name, labels) - valueOf(before, name, labels);

      assert.equal(delta("veriflow_inference_jobs_started_total"), 1);
      assert.equal(delta("veriflow_jobs_total", { state: "finished" }), 1);
      assert.equal(delta("veriflow_jobs_total", { state: "failed" }), 0);
      assert.equal(valueOf(after, "veriflow_jobs", { state: "running" }), 0);
      assert.equal(valueOf(after, "veriflow_jobs", { state: "queued" }), 0);
      assert.equal(delta("veriflow_inference_tokens_generated_total"), n);
      assert.equal(delta("veriflow_ttft_seconds_count"), 1);
      assert.equal(delta("veriflow_ttft_seconds_bucket", { le: "+Inf" }), 1);
      assert.ok(delta("veriflow_ttft_seconds_sum") > 0);
      assert.equal(
        delta("veriflow_inter_token_seconds_count"),
        n - 1,
        "one gap per token after the first",
      );
      assert.equal(delta("veriflow_job_tokens_per_second_count"), 1);
      assert.equal(delta("veriflow_prover_receipts_signed_total"), 1);
      assert.equal(delta("veriflow_validator_own_receipts_total"), 1);
      assert.equal(
        delta("veriflow_validation_seconds_count"),
        0,
        "own receipts are never challenged here",
      );
      assert.equal(delta("veriflow_receipts_by_verdict_total", { verdict: "valid" }), 0);
      for (const name of ["veriflow_ledger_stake", "veriflow_ledger_balance", "veriflow_peers"]) {
        assert.ok(after.some((s) => s.name === name), name);
      }
      assert.ok(valueOf(after, "veriflow_storage_used_bytes") >= 0);
      assert.equal(valueOf(after, "veriflow_storage_peers"), 0);
      assert.equal(
        valueOf(after, "veriflow_actor_restarts_total", { actor: "node/inference" }),
        0,
      );
    } finally {
      await node.shutdown();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});

Deno.test("the validation-time histogram and receipts by verdict move by each verdict recorded", async () => {
  let now = 1_000;
  const activity = new NodeActivity({ now: () => now });
  const metrics = new MetricsRegistry();
  metrics.register(activity.collector(), "activity");
  const validator = Identity.generate();
  const verdict = (outcome: "valid" | "fraud") =>
    signVerdict({
      v: 1,
      subject: "inference",
      subjectId: "ab".repeat(32),
      target: Identity.generate().publicKey,
      outcome,
      reason: outcome === "valid" ? "ok" : "fingerprint_mismatch",
      issuedAt: now,
    }, validator);
  activity.record({ kind: "verdict", verdict: verdict("valid"), own: true, validationMs: 12 });
  now += 1;
  activity.record({ kind: "verdict", verdict: verdict("fraud"), own: false });
  const s = parsePrometheusText(await metrics.render());
  assert.equal(valueOf(s, "veriflow_validation_seconds_count"), 1, "only own verdicts are timed");
  assert.equal(valueOf(s, "veriflow_validation_seconds_sum"), 0.012);
  assert.equal(valueOf(s, "veriflow_validation_seconds_bucket", { le: "0.01" }), 0);
  assert.equal(valueOf(s, "veriflow_validation_seconds_bucket", { le: "0.025" }), 1);
  assert.equal(valueOf(s, "veriflow_receipts_by_verdict_total", { verdict: "valid" }), 1);
  assert.equal(valueOf(s, "veriflow_receipts_by_verdict_total", { verdict: "fraud" }), 1);
  assert.deepEqual(activity.recent().map((i) => [i.kind, i.outcome]), [
    ["verdict", "fraud"],
    ["verdict", "valid"],
  ]);
});

Deno.test("the format check fails on what promtool refuses", () => {
  assert.throws(() => parsePrometheusText("x 1\n"), /before its TYPE/);
  assert.throws(
    () =>
      parsePrometheusText(
        '# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n',
      ),
    /cumulative/,
  );
  assert.throws(() => parsePrometheusText("# TYPE c counter\nc 1\nc 2\n"), /twice/);
});

Deno.test({
  name:
    "what peers may place here is capped at half the storage quota by default, and shown in /metrics",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const cases = [
      [{ quotaBytes: 1_000_001 }, 500_000],
      [{ quotaBytes: 1_000_000, replicaQuotaBytes: 900_000 }, 900_000],
      [{}, -1],
    ] as const;
    for (const [storage, expected] of cases) {
      const dir = await Deno.makeTempDir();
      const node = await startNode(parseNodeConfig({
        dataDir: dir,
        http: { port: 0 },
        heartbeatMs: 0,
        roles: { inference: false, prover: false, validator: false },
        network: { listening: false },
        storage,
      }));
      try {
        const scrape = parsePrometheusText(await (await fetch(`${node.url}/metrics`)).text());
        assert.equal(
          valueOf(scrape, "veriflow_storage_replica_quota_bytes"),
          expected,
          JSON.stringify(storage),
        );
        assert.equal(valueOf(scrape, "veriflow_storage_replica_bytes"), 0);
      } finally {
        await node.shutdown();
        await Deno.remove(dir, { recursive: true }).catch(() => {});
      }
    }
  },
});
