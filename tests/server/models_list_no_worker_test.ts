/**
 * `GET /v1/models` on a node that forwards jobs and has no worker connected (review s72, docs F3).
 * It answered 503 `no_worker`, which docs/API.md did not document and on which an OpenAI client's
 * `models.list()` raises; now it is the list of what the node can serve now: empty, 200, as
 * OpenAI-compatible servers answer when nothing is served. A job, or one model asked for by id,
 * still gets 503 `no_worker` (with `Retry-After` while the node is still connecting to its peers):
 * that is what cannot be served, and the error says why.
 */
import assert from "node:assert/strict";
import type { ActorRef } from "../../actors/actor_ref.ts";
import { AskTimeoutError } from "../../actors/errors.ts";
import type { InferencePort } from "../../inference/inference_port.ts";
import { emptyInferenceStats } from "../../inference/inference_port.ts";
import type { NetworkMessage } from "../../network/network_actor.ts";
import { NetworkInferencePort } from "../../network/network_inference_port.ts";
import { createApp } from "../../server/app.ts";

const LOOPBACK = { remoteAddr: { transport: "tcp", hostname: "127.0.0.1", port: 40000 } };

/** A router's port with no worker connected: its network actor lists no worker's model. */
function routerWithoutWorkers(): InferencePort {
  const network = {
    ask: () => Promise.resolve([]),
    tell: () => {},
  } as unknown as ActorRef<NetworkMessage>;
  return new NetworkInferencePort(network);
}

Deno.test("GET /v1/models on a router with no worker connected is 200 with an empty list, not 503 no_worker", async () => {
  const app = createApp({ inference: routerWithoutWorkers() });
  const response = await app.request("http://127.0.0.1/v1/models", {}, LOOPBACK);
  const body = await response.json();
  assert.deepEqual([response.status, body], [200, { object: "list", data: [] }]);
});

Deno.test("with no worker connected, one model by id and a job are still 503 no_worker", async () => {
  const app = createApp({ inference: routerWithoutWorkers() });
  const byId = await app.request("http://127.0.0.1/v1/models/brown", {}, LOOPBACK);
  const job = await app.request("http://127.0.0.1/v1/completions", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: "brown", prompt: "hi", max_tokens: 1 }),
  }, LOOPBACK);
  for (const [what, response] of [["by id", byId], ["job", job]] as const) {
    const body = await response.json();
    assert.deepEqual([response.status, body.error?.code], [503, "no_worker"], what);
  }
});

Deno.test("GET /v1/models whose listing fails for another reason (a wedged actor) is still an error, not an empty list", async () => {
  const port: InferencePort = {
    submit: () => Promise.reject(new Error("no jobs")),
    models: () => Promise.reject(new AskTimeoutError("node/models", 5_000)),
    stats: () => Promise.resolve(emptyInferenceStats()),
  };
  const response = await createApp({ inference: port }).request(
    "http://127.0.0.1/v1/models",
    {},
    LOOPBACK,
  );
  const body = await response.json();
  assert.equal(response.status, 503);
  assert.equal(body.data, undefined);
  assert.equal(body.error?.code, "ask_timeout");
});
