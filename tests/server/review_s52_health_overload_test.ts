/**
 * Review s52 of two serving-edge answers about the node itself.
 *
 * `/healthz` of a node whose model listing fails (a router with no worker connected: its port's
 * `models()` rejects with `no_worker`) must still answer the documented health body, saying
 * what is wrong under `conditions`, as it does when the stats fail (review s46), not the
 * `no_worker` error body a monitor cannot read as health.
 *
 * The actor runtime's `actor_stopped`, `ask_timeout` and `mailbox_full` from the inference port
 * (the node's InferenceActor restarting, wedged or overloaded) are transient overload of the
 * node: a 503 `server_error` with `Retry-After`, like the node's other 503s, not a 500 that says
 * "a bug"; and, refused before the job started, they must not cost the client's API key one of
 * its starts a minute (like `too_many_jobs`, review s47).
 */
import { Hono } from "hono";
import { assert, assertEquals } from "./_assert.ts";
import { refusingPort } from "./_refusing_port.ts";
import type { ActorRef } from "../../actors/actor_ref.ts";
import { ActorStoppedError, AskTimeoutError, MailboxFullError } from "../../actors/errors.ts";
import type { InferencePort, ServedModelInfo } from "../../inference/inference_port.ts";
import { emptyInferenceStats } from "../../inference/inference_port.ts";
import type { NetworkMessage } from "../../network/network_actor.ts";
import { NetworkInferencePort, NoWorkerError } from "../../network/network_inference_port.ts";
import { createApp } from "../../server/app.ts";
import { healthRoutes } from "../../server/health_routes.ts";
import { errorResponse } from "../../server/http_errors.ts";
import { InferenceGateway } from "../../server/inference_gateway.ts";
import { KeyLimits } from "../../server/key_limits.ts";
import { MetricsRegistry } from "../../server/metrics_registry.ts";

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

Deno.test("review s52: /healthz of a router with no worker connected (its model listing throws no_worker) answers the health body, failed with the reason, not the no_worker error body", async () => {
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

Deno.test("review s52: /healthz whose model listing and stats both fail lists both conditions", async () => {
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
  Deno.test(`review s52: ${code} (the node's inference actor restarting or overloaded) answers 503 server_error with Retry-After, not 500`, async () => {
    const response = errorResponse(overload());
    const body = await response.json();
    assertEquals(
      [response.status, response.headers.get("retry-after"), body.error.type, body.error.code],
      [503, "1", "server_error", code],
    );
  });

  Deno.test(`review s52: a completion the inference port refuses with ${code} is answered 503 with Retry-After through the app`, async () => {
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

  Deno.test(`review s52: a client retrying while the node's inference actor refuses its job (${code}) keeps its API key's starts a minute: it is told ${code} every time, never rate_limited`, async () => {
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
