/**
 * `/healthz` and the node's own answers about itself: the node's key, `degraded` while proof data
 * cannot be written, the documented body when the stats or the model listing fail, and the actor
 * runtime's transient overload as 503 with `Retry-After`; with two small operator edges (a `Host`
 * that writes the default port out, `share --expires 0s`).
 */
import { Hono } from "hono";
import { assertEquals } from "./_assert.ts";
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
import { runInfer } from "../../cli/infer_command.ts";
import assert from "node:assert/strict";
import { join } from "node:path";
import { parseNodeConfig, startNode, toHex } from "../../mod.ts";
import { refusingPort } from "./_refusing_port.ts";
import type { ActorRef } from "../../actors/actor_ref.ts";
import { ActorStoppedError, AskTimeoutError, MailboxFullError } from "../../actors/errors.ts";
import {
  emptyInferenceStats,
  type InferencePort,
  type InferenceStats,
  type ServedModelInfo,
} from "../../inference/inference_port.ts";
import type { NetworkMessage } from "../../network/network_actor.ts";
import { NetworkInferencePort, NoWorkerError } from "../../network/network_inference_port.ts";
import { createApp } from "../../server/app.ts";
import { errorResponse } from "../../server/http_errors.ts";
import { KeyLimits } from "../../server/key_limits.ts";
import { edgeConfig } from "../../server/edge_config.ts";
import { runShare } from "../../cli/exchange_commands.ts";
import { runPut } from "../../cli/put_command.ts";
import { captureConsole as capture, exists } from "../_helpers/console_capture.ts";

// What a client and an operator see while a node's proof data cannot be written: every
// completion still gets its text and a `veriflow_receipt_error` with `proof_store_failed` (not
// a crash of the prover; its text, the node's directory, withheld), `veriflow infer` warns that
// the job has no receipt, and `/healthz` says `degraded` with the reason until a write succeeds
// again.
//
// The refusal is real: the store's directory is a plain file, so every `mkdir` under it fails.

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

// A client learns a node's key from its API. Pinning `worker` when checking a receipt, or adding
// `requester` to a job rebuilt for a routed receipt, needs the node's public key; before, only the
// node's log printed it. `/healthz` reports it, hex, as `node_key`, beside the fields it always
// had.

Deno.test("/healthz reports the node's public key (hex) as node_key, keeping its other fields", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await using node = await startNode(parseNodeConfig({
      dataDir: join(dir, "data"),
      http: { port: 0 },
      network: { listening: false },
      roles: { validator: false, storage: false },
      heartbeatMs: 0,
    }));
    const response = await fetch(`${node.url}/healthz`);
    assert.equal(response.status, 200);
    const body = await response.json();
    assert.equal(body.node_key, toHex(node.identity.publicKey));
    assert.match(body.node_key, /^[0-9a-f]{64}$/);
    assert.equal(body.status, "ok");
    assert.equal(body.models, 1);
    assert.equal(body.active_jobs, 0);
    assert.equal(body.queued_jobs, 0);
    assert.ok(Array.isArray(body.model_runtime), JSON.stringify(body));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// Two serving-edge answers about the node itself.
//
// `/healthz` of a node whose model listing fails (a router with no worker connected: its port's
// `models()` rejects with `no_worker`) must still answer the documented health body, saying what is
// wrong under `conditions`, as it does when the stats fail (below), not the `no_worker` error body
// a monitor cannot read as health.
//
// The actor runtime's `actor_stopped`, `ask_timeout` and `mailbox_full` from the inference port
// (the node's InferenceActor restarting, wedged or overloaded) are transient overload of the node:
// a 503 `server_error` with `Retry-After`, like the node's other 503s, not a 500 that says "a bug";
// and, refused before the job started, they must not cost the client's API key one of its starts a
// minute (like `too_many_jobs`).

const MODEL: ServedModelInfo = { cid: "bafkmodel", name: "m", kind: "text" };
const LOOPBACK = { remoteAddr: { transport: "tcp", hostname: "127.0.0.1", port: 40000 } };

/** A router's port with no worker connected: its network actor lists no worker's model. */
function routerWithoutWorkers(): InferencePort {
  const network = {
    ask: () => Promise.resolve([]),
    tell: () => {},
  } as unknown as ActorRef<NetworkMessage>;
  return new NetworkInferencePort(network);
}

/** A port whose stats answer and whose model listing rejects with `failure()`. */
function unlistedPort(failure: () => Error): InferencePort {
  return {
    submit: () => Promise.reject(new Error("no jobs")),
    models: () => Promise.reject(failure()),
    stats: () => Promise.resolve(emptyInferenceStats()),
  };
}

Deno.test("/healthz of a router with no worker connected (its model listing throws no_worker) answers the health body, failed with the reason, not the no_worker error body", async () => {
  const ports: [string, () => InferencePort][] = [
    ["router", routerWithoutWorkers],
    ["no_worker", () => unlistedPort(() => new NoWorkerError("any"))],
    // The listing of a catalog behind a wedged actor.
    ["ask_timeout", () => unlistedPort(() => new AskTimeoutError("node/models", 5_000))],
  ];
  for (const [how, port] of ports) {
    // Alone (as mounted) and in the whole app (its error handler answered 503 no_worker).
    const apps: [string, (url: string) => Response | Promise<Response>][] = [
      ["app", (url) => createApp({ inference: port() }).request(url, {}, LOOPBACK)],
      [
        "routes",
        (url) =>
          new Hono().route(
            "/",
            healthRoutes(new InferenceGateway({ inference: port() }), new MetricsRegistry()),
          ).request(url),
      ],
    ];
    for (const [where, request] of apps) {
      const response = await request("http://127.0.0.1/healthz");
      const body = await response.json();
      const label = `${how}, ${where}: ${JSON.stringify(body)}`;
      assertEquals(body.error, undefined, label);
      assertEquals(
        [response.status, body.status, body.models, body.active_jobs, body.queued_jobs],
        [503, "failed", null, 0, 0],
        label,
      );
      assertEquals(body.conditions?.length, 1, label);
      const [condition] = body.conditions;
      assertEquals(
        [condition.component, condition.status, condition.code],
        ["models", "failed", "models_unavailable"],
        label,
      );
      assert(typeof condition.message === "string" && condition.message.length > 0, label);
      assert(!Number.isNaN(Date.parse(condition.since)), label);
    }
  }
});

Deno.test("/healthz whose model listing and stats both fail lists both conditions", async () => {
  const port: InferencePort = {
    submit: () => Promise.reject(new Error("no jobs")),
    models: () => Promise.reject(new NoWorkerError("any")),
    stats: () => Promise.reject(new AskTimeoutError("node/inference", 5_000)),
  };
  const response = await createApp({ inference: port }).request(
    "http://127.0.0.1/healthz",
    {},
    LOOPBACK,
  );
  const body = await response.json();
  assertEquals(
    [
      response.status,
      body.status,
      body.models,
      body.active_jobs,
      body.conditions?.map((c: { code: string }) => c.code),
    ],
    [503, "failed", null, null, ["inference_unresponsive", "models_unavailable"]],
    JSON.stringify(body),
  );
});

/** The actor runtime's errors of an inference actor restarting, wedged or overloaded. */
const OVERLOAD: [string, () => Error][] = [
  ["actor_stopped", () => new ActorStoppedError("node/inference", "restart")],
  ["ask_timeout", () => new AskTimeoutError("node/inference", 120_000)],
  ["mailbox_full", () => new MailboxFullError("node/inference", 1024)],
];

for (const [code, overload] of OVERLOAD) {
  Deno.test(`${code} (the node's inference actor restarting or overloaded) answers 503 server_error with Retry-After, not 500`, async () => {
    const response = errorResponse(overload());
    const body = await response.json();
    assertEquals(
      [response.status, response.headers.get("retry-after"), body.error.type, body.error.code],
      [503, "1", "server_error", code],
    );
  });

  Deno.test(`a completion the inference port refuses with ${code} is answered 503 with Retry-After through the app`, async () => {
    const port: InferencePort = {
      submit: () => Promise.reject(overload()),
      models: () => Promise.resolve([MODEL]),
      stats: () => Promise.resolve(emptyInferenceStats()),
    };
    const response = await createApp({ inference: port }).fetch(
      new Request("http://127.0.0.1/v1/completions", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: "m", prompt: "hi", max_tokens: 1 }),
      }),
      LOOPBACK,
    );
    const body = await response.json();
    assertEquals(
      [response.status, response.headers.get("retry-after"), body.error?.type, body.error?.code],
      [503, "1", "server_error", code],
    );
  });

  Deno.test(`a client retrying while the node's inference actor refuses its job (${code}) keeps its API key's starts a minute: it is told ${code} every time, never rate_limited`, async () => {
    let refusing = true;
    const port = refusingPort(() => refusing ? overload() : undefined);
    const gateway = new InferenceGateway({
      inference: port,
      keyLimits: new KeyLimits({ concurrency: 100, requestsPerMinute: 2, now: () => 0 }),
    });
    const client = { label: "key k", keyId: "k" };
    const start = () =>
      gateway.startText({ prompt: "hi", params: {} as never }, { client }).then(
        () => "started",
        (error) => (error as { code: string }).code,
      );
    const refused = [];
    for (let i = 0; i < 5; i++) refused.push(await start());
    assertEquals(refused, Array(5).fill(code));
    // The key's limit still holds for the jobs the node starts.
    refusing = false;
    assertEquals([await start(), await start(), await start()], [
      "started",
      "started",
      "rate_limited",
    ]);
  });
}

// Three small operator-facing edges: `/healthz` when the inference stats cannot be had, a `Host`
// that writes the default port out, and `share --expires` that is not positive.

/** A port whose models answer and whose stats do as `stats` says. */
function portWith(stats: () => Promise<InferenceStats>): InferencePort {
  return {
    submit: () => Promise.reject(new Error("no jobs")),
    models: () => Promise.resolve([{ cid: "bafkmodel", name: "m", kind: "text" }] as never),
    stats,
  };
}

Deno.test("/healthz whose inference stats time out or fail answers 503 with a body saying the node failed and why, not a 500", async () => {
  const failures: [string, () => Promise<InferenceStats>][] = [
    // What the local port's stats ask rejects with when the inference actor is wedged.
    ["timed out", () => Promise.reject(new AskTimeoutError("node/inference", 5_000))],
    ["failed", () => Promise.reject(new Error("actor stopped"))],
  ];
  for (const [how, stats] of failures) {
    const gateway = new InferenceGateway({ inference: portWith(stats) });
    // Alone (as mounted) and in the whole app (its error handler answered 500 internal_error).
    const apps: [string, (url: string) => Response | Promise<Response>][] = [
      [
        "routes",
        (url) => new Hono().route("/", healthRoutes(gateway, new MetricsRegistry())).request(url),
      ],
      [
        "app",
        (url) => createApp({ inference: portWith(stats), edge: edgeConfig({}) }).request(url),
      ],
    ];
    for (const [where, request] of apps) {
      const response = await request("http://127.0.0.1/healthz");
      assert.equal(response.status, 503, `${how}, ${where}`);
      const body = await response.json();
      assert.equal(body.status, "failed", `${how}, ${where}: ${JSON.stringify(body)}`);
      assert.equal(body.conditions?.[0]?.component, "inference", JSON.stringify(body));
      assert.equal(body.conditions[0].status, "failed");
    }
  }
});

/** The status of GET `url` from a loopback peer with `headers`. */
async function statusOf(
  app: ReturnType<typeof createApp>,
  url: string,
  headers: Record<string, string>,
): Promise<number> {
  const remoteAddr: Deno.Addr = { transport: "tcp", hostname: "127.0.0.1", port: 40000 };
  const response = await app.request(url, { headers }, { remoteAddr });
  await response.body?.cancel();
  return response.status;
}

Deno.test("a Host that writes the default port out (127.0.0.1:80, a listed NAME:80 or NAME:443) is the same host, not a misdirected request", async () => {
  const app = createApp({
    inference: portWith(() => Promise.resolve({} as InferenceStats)),
    edge: edgeConfig({ allowedHosts: ["proxy.example", "p80.example:80", "tls.example:443"] }),
  });
  const served: [string, string][] = [
    ["http://127.0.0.1/metrics", "127.0.0.1:80"],
    ["http://localhost/metrics", "localhost:80"],
    ["http://[::1]/metrics", "[::1]:80"],
    ["https://127.0.0.1/metrics", "127.0.0.1:443"],
    ["http://proxy.example/metrics", "proxy.example:80"],
    ["http://p80.example/metrics", "p80.example:80"],
    ["http://p80.example/metrics", "p80.example"],
    ["https://tls.example/metrics", "tls.example"],
    ["https://tls.example/metrics", "tls.example:443"],
  ];
  for (const [url, host] of served) {
    assert.equal(await statusOf(app, url, { host }), 200, `${host} on ${url}`);
  }
  // The port a name is listed with still counts, and other names stay out.
  const refused: [string, string][] = [
    ["http://p80.example:8080/metrics", "p80.example:8080"],
    ["http://tls.example/metrics", "tls.example"],
    ["https://p80.example/metrics", "p80.example"],
    ["http://evil.example/metrics", "evil.example:80"],
    ["http://127.0.0.1/metrics", "127.0.0.1:80@evil.example"],
    ["http://127.0.0.1/metrics", "127.0.0.1:80/x"],
  ];
  for (const [url, host] of refused) {
    assert.equal(await statusOf(app, url, { host }), 421, `${host} on ${url}`);
  }
});

Deno.test("cli share --expires 0s (a link expired when printed) is a usage error naming the flag, and no share is stored", async () => {
  const dir = await Deno.makeTempDir();
  const data = join(dir, "d");
  await Deno.writeTextFile(join(dir, "s.txt"), "private");
  const put = await capture(() =>
    runPut(["--init", "--private", "--data", data, join(dir, "s.txt")])
  );
  assert.equal(put.code, 0, put.err);
  const cid = put.out.trim();
  for (const expires of ["0s", "0d", "000m"]) {
    const shared = await capture(() =>
      runShare([cid, "--expires", expires, "--data", data, "--url", "http://127.0.0.1:9"])
    );
    assert.equal(shared.code, 2, `${expires}: ${shared.err}`);
    assert.equal(shared.out, "");
    assert.match(shared.err, /--expires/);
  }
  const shares = join(data, "store", "shares");
  const records = await exists(shares) ? await Array.fromAsync(Deno.readDir(shares)) : [];
  assert.deepEqual(records, []);
  await Deno.remove(dir, { recursive: true });
});
