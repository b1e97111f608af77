/**
 * `createApp`: the node's ModelRegistry as model source, receipts that verify against the streamed
 * text, the edge depending on the inference port only, and 405 with `Allow` for a known path asked
 * with a method it does not take.
 */
import { assert, assertEquals } from "./_assert.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import { InferenceActor, type InferenceMessage } from "../../actors/inference_actor.ts";
import { buildGptModel } from "../../inference/model_builder.ts";
import { ModelRegistry } from "../../inference/model_registry.ts";
import { LocalInferencePort } from "../../inference/local_port.ts";
import { createApp } from "../../server/app.ts";
import { MetricsRegistry } from "../../server/metrics_registry.ts";
import { serve } from "../../server/serve.ts";
import { Hono } from "hono";
import { loadTinyModel, StaticModels } from "./_fixtures.ts";
import { Identity } from "../../protocols/identity.ts";
import { fromHex, toHex } from "../../protocols/hash.ts";
import { verifyReceipt } from "../../protocols/receipt.ts";
import { ProverActor, proverHook, type ProverMessage } from "../../actors/prover_actor.ts";
import { refusingPort } from "./_refusing_port.ts";

Deno.test("createApp works with the node's ModelRegistry as model source and catalog, and mounts extra routes and metrics", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-app-test-" });
  const system = new ActorSystem({ name: "app-test" });
  const abort = new AbortController();
  try {
    await buildGptModel({ size: "tiny", seed: 0, outDir: dir });
    const registry = new ModelRegistry({ intraOpThreads: 1 });
    const { cid, name } = await registry.register(dir);
    const inference = await system.spawn<InferenceMessage>({
      name: "node/inference",
      factory: () => new InferenceActor({ models: registry }),
    });
    const metrics = new MetricsRegistry();
    metrics.register(
      () => [{ name: "veriflow_extra", help: "An extra series.", type: "gauge", value: 7 }],
    );
    const app = createApp({
      inference: new LocalInferencePort({ inference, models: registry }),
      metrics,
    });
    // Later areas mount their own modules on the same app.
    app.route("/dashboard", new Hono().get("/", (c) => c.text("dashboard")));
    const server = serve({ app, signal: abort.signal });
    assert(server.url.startsWith("http://127.0.0.1:"));

    const models = await (await fetch(`${server.url}/v1/models`)).json();
    assertEquals(models.data.map((m: { id: string }) => m.id), [cid]);
    assertEquals(models.data[0].veriflow.name, name);
    const completion = await (await fetch(`${server.url}/v1/completions`, {
      method: "POST",
      body: JSON.stringify({ model: name, prompt: "Hello", max_tokens: 6 }),
    })).json();
    assertEquals(completion.model, cid);
    assert(completion.usage.completion_tokens >= 1);
    assertEquals(await (await fetch(`${server.url}/dashboard`)).text(), "dashboard");
    const text = await (await fetch(`${server.url}/metrics`)).text();
    assert(text.includes("# TYPE veriflow_extra gauge\nveriflow_extra 7\n"), text);
    assert(text.includes("veriflow_inference_jobs_finished_total 1\n"), text);
    abort.abort();
    await server.finished;
  } finally {
    abort.abort();
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("With the real ProverActor, the streamed text's signed receipt comes back in the final SSE chunk and verifies against that text", async () => {
  const system = new ActorSystem({ name: "app-prover-test" });
  const abort = new AbortController();
  try {
    const model = await loadTinyModel();
    const models = new StaticModels([model]);
    const identity = Identity.generate();
    const prover = await system.spawn<ProverMessage>({
      name: "node/prover",
      factory: () => new ProverActor({ identity }),
    });
    const inference = await system.spawn<InferenceMessage>({
      name: "node/inference",
      factory: () => new InferenceActor({ models, prover: proverHook(prover) }),
    });
    const port = new LocalInferencePort({ inference, models });
    const server = serve({ app: createApp({ inference: port }), signal: abort.signal });
    const sse = await (await fetch(`${server.url}/v1/completions`, {
      method: "POST",
      body: JSON.stringify({ prompt: "Prove it", max_tokens: 20, stream: true }),
    })).text();
    const chunks = sse.split("\n\n").filter((e) => e.startsWith("data: {")).map((e) =>
      JSON.parse(e.slice("data: ".length))
    );
    const text = chunks.map((c) => c.choices[0]?.text ?? "").join("");
    const receipt = chunks.at(-1).veriflow_receipt;
    assertEquals(receipt.jobId, chunks.at(-1).veriflow_job_id);
    assertEquals(receipt.worker, toHex(identity.publicKey));
    // Hex back to bytes: the JSON receipt is the signed receipt.
    const signed = { ...receipt, worker: fromHex(receipt.worker), sig: fromHex(receipt.sig) };
    const check = verifyReceipt(signed, { output: text, worker: identity.publicKey });
    assert(check.ok, JSON.stringify(check));
    assert(!verifyReceipt(signed, { output: text + "x" }).ok, "a different output must not verify");
    abort.abort();
    await server.finished;
  } finally {
    abort.abort();
    await system.shutdown();
  }
});

Deno.test("With a stop sequence, the returned text leaves it out and the receipt verifies against text + veriflow_stop", async () => {
  const system = new ActorSystem({ name: "app-stop-test" });
  const abort = new AbortController();
  try {
    const model = await loadTinyModel();
    const identity = Identity.generate();
    const prover = await system.spawn<ProverMessage>({
      name: "node/prover",
      factory: () => new ProverActor({ identity }),
    });
    const models = new StaticModels([model]);
    const inference = await system.spawn<InferenceMessage>({
      name: "node/inference",
      factory: () => new InferenceActor({ models, prover: proverHook(prover) }),
    });
    const port = new LocalInferencePort({ inference, models });
    const server = serve({ app: createApp({ inference: port }), signal: abort.signal });
    // A stop the greedy output is known to reach: three characters from its middle.
    const ids = model.tokenizer.encode("Prove it");
    const greedy = { maxTokens: 30, temperature: 0, topK: 0, topP: 1, seed: 0, stop: [] };
    let full = "";
    for await (const chunk of model.generate(ids, greedy)) full += chunk.text;
    const stop = full.slice(10, 13);
    const body = await (await fetch(`${server.url}/v1/completions`, {
      method: "POST",
      body: JSON.stringify({ prompt: "Prove it", max_tokens: 30, stop }),
    })).json();
    const text = body.choices[0].text;
    assertEquals([text, body.veriflow_stop, body.choices[0].finish_reason], [
      full.slice(0, full.indexOf(stop)),
      stop,
      "stop",
    ]);
    const receipt = body.veriflow_receipt;
    const signed = { ...receipt, worker: fromHex(receipt.worker), sig: fromHex(receipt.sig) };
    assert(verifyReceipt(signed, { output: text + body.veriflow_stop }).ok);
    assert(!verifyReceipt(signed, { output: text }).ok, "the receipt covers the stop too");
    abort.abort();
    await server.finished;
  } finally {
    abort.abort();
    await system.shutdown();
  }
});

Deno.test("The HTTP and WebSocket edge depends on the inference port only: no server/ module imports from actors/", async () => {
  const serverDir = new URL("../../server/", import.meta.url);
  const offenders: string[] = [];
  for await (const entry of Deno.readDir(serverDir)) {
    if (!entry.isFile || !entry.name.endsWith(".ts")) continue;
    const source = await Deno.readTextFile(new URL(entry.name, serverDir));
    if (/from\s+["']\.\.\/actors\//.test(source)) offenders.push(entry.name);
  }
  assertEquals(offenders, []);
});

// A known path asked with a method it does not take is 405 with `Allow`, in OpenAI's error shape
// (`GET /v1/chat/completions` was a 404 `not_found`, as if the route did not exist: a client
// library's wrong method read as a wrong base URL); an unknown path is still 404.

async function withApp(run: (url: string) => Promise<void>): Promise<void> {
  const app = createApp({ inference: refusingPort(() => undefined) });
  const abort = new AbortController();
  const server = serve({ app, signal: abort.signal });
  try {
    await run(server.url);
  } finally {
    abort.abort();
    await server.finished;
  }
}

Deno.test("a known path with a method it does not take is 405 with Allow; an unknown path is 404", async () => {
  await withApp(async (url) => {
    const answers: unknown[] = [];
    for (
      const [method, path] of [
        ["GET", "/v1/chat/completions"],
        ["PUT", "/v1/completions"],
        ["DELETE", "/v1/models"],
        ["POST", "/v1/models"],
      ] as const
    ) {
      const response = await fetch(`${url}${path}`, { method });
      const body = await response.json();
      answers.push([
        method,
        path,
        response.status,
        response.headers.get("allow"),
        body.error.code,
        body.error.type,
        body.error.message,
      ]);
    }
    assertEquals(answers, [
      [
        "GET",
        "/v1/chat/completions",
        405,
        "POST",
        "method_not_allowed",
        "invalid_request_error",
        "Invalid method for URL (GET /v1/chat/completions): it takes POST",
      ],
      [
        "PUT",
        "/v1/completions",
        405,
        "POST",
        "method_not_allowed",
        "invalid_request_error",
        "Invalid method for URL (PUT /v1/completions): it takes POST",
      ],
      [
        "DELETE",
        "/v1/models",
        405,
        "GET, HEAD",
        "method_not_allowed",
        "invalid_request_error",
        "Invalid method for URL (DELETE /v1/models): it takes GET, HEAD",
      ],
      [
        "POST",
        "/v1/models",
        405,
        "GET, HEAD",
        "method_not_allowed",
        "invalid_request_error",
        "Invalid method for URL (POST /v1/models): it takes GET, HEAD",
      ],
    ]);
    const missing = await fetch(`${url}/v1/nothing`, { method: "POST" });
    assertEquals([missing.status, (await missing.json()).error.code], [404, "not_found"]);
  });
});
