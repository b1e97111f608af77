/**
 * What a client and an operator see while a node's proof data cannot be written: every
 * completion still gets its text and a `veriflow_receipt_error` with `proof_store_failed` (not
 * a crash of the prover; its text, the node's directory, withheld), `veriflow infer` warns that
 * the job has no receipt, and `/healthz` says `degraded` with the reason until a write succeeds
 * again.
 *
 * The refusal is real: the store's directory is a plain file, so every `mkdir` under it fails.
 */
import { Hono } from "hono";
import { assert, assertEquals } from "./_assert.ts";
import { startTestNode } from "./_fixtures.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { ActorEvent } from "../../actors/events.ts";
import {
  proofStoreConditions,
  ProverActor,
  proverHook,
  type ProverMessage,
} from "../../actors/prover_actor.ts";
import { Identity } from "../../protocols/identity.ts";
import { healthRoutes } from "../../server/health_routes.ts";
import { InferenceGateway } from "../../server/inference_gateway.ts";
import { MetricsRegistry } from "../../server/metrics_registry.ts";
import { runInfer } from "../../client/infer_command.ts";

Deno.test("a node whose proof data cannot be written answers every completion with its text and proof_store_failed, /healthz says degraded until a write succeeds, and infer warns of the missing receipt", async () => {
  const root = await Deno.makeTempDir({ prefix: "veriflow-fix64-" });
  const dir = `${root}/proofs`;
  // No restarts: one crash of the prover would be fatal here, as an exhausted budget is on a node.
  const provers = new ActorSystem({ name: "proof-store-health", maxRestarts: 0 });
  const events: ActorEvent[] = [];
  provers.events.subscribe((event) => events.push(event));
  const prover = await provers.spawn<ProverMessage>({
    name: "node/prover",
    factory: () => new ProverActor({ identity: Identity.generate(), dir, sweepEveryMs: 0 }),
  });
  const node = await startTestNode({ prover: proverHook(prover) });
  const health = new Hono().route(
    "/",
    healthRoutes(
      new InferenceGateway({ inference: node.port }),
      new MetricsRegistry(),
      undefined,
      () => proofStoreConditions(prover),
    ),
  );
  try {
    const healthz = async () => {
      const response = await health.request("/healthz");
      assertEquals(response.status, 200);
      return await response.json();
    };
    assertEquals((await healthz()).status, "ok");
    await Deno.writeTextFile(dir, "not a directory");

    for (let i = 0; i < 6; i++) {
      const response = await fetch(`${node.url}/v1/completions`, {
        method: "POST",
        body: JSON.stringify({ prompt: `hi ${i}`, max_tokens: 8 }),
      });
      assertEquals(response.status, 200);
      const body = await response.json();
      assert(body.choices[0].text.length > 0, JSON.stringify(body));
      assertEquals(body.veriflow_receipt, undefined);
      assertEquals(body.veriflow_receipt_error.code, "proof_store_failed");
      // The node's directory and the OS's reason are the operator's (`/healthz`, the log), not
      // the client's (review s54).
      assert(
        !body.veriflow_receipt_error.message.includes(dir),
        body.veriflow_receipt_error.message,
      );
    }
    const degraded = await healthz();
    assertEquals(degraded.status, "degraded");
    assertEquals(degraded.conditions.length, 1);
    assertEquals(degraded.conditions[0].component, "proof_store");
    assertEquals(degraded.conditions[0].code, "proof_store_failed");
    assert(degraded.conditions[0].message.includes(dir), degraded.conditions[0].message);

    const out: string[] = [];
    const err: string[] = [];
    const status = await runInfer(
      ["--url", node.url.replace("http:", "ws:"), "--max-tokens", "8", "hello"],
      { stdout: (t) => void out.push(t), stderr: (t) => void err.push(t) },
    );
    assertEquals(status, 0);
    assert(out.join("").length > 0);
    const warning = err.join("").split("\n").find((l) => l.startsWith("warning:"));
    assert(warning !== undefined, err.join(""));
    assert(warning.includes("without a receipt (proof_store_failed)"), warning);
    assert(!warning.includes(dir), warning);
    assertEquals(events.filter((e) => e.type !== "started").map((e) => e.type), []);

    // Space is freed: the next job is proven and stored, and the node is healthy again.
    await Deno.remove(dir);
    const healed = await (await fetch(`${node.url}/v1/completions`, {
      method: "POST",
      body: JSON.stringify({ prompt: "hi again", max_tokens: 8 }),
    })).json();
    assert(healed.veriflow_receipt !== undefined, JSON.stringify(healed));
    assertEquals(await healthz(), { status: "ok", models: 2, active_jobs: 0, queued_jobs: 0 });
  } finally {
    await node.close();
    await provers.shutdown();
    await Deno.remove(root, { recursive: true });
  }
});
