/**
 * The node's HTTP port before the node is up: every request is answered 503 `starting` in the
 * edge's error shape, with `Retry-After`, and the app answers once mounted.
 */
import assert from "node:assert/strict";
import { HttpListener } from "../../node/http_listener.ts";
import { openAiErrorBody } from "../../server/http_errors.ts";
import { EdgeError } from "../../server/http_errors.ts";

Deno.test("before the app is mounted the port answers 503 starting in the edge's error shape, with Retry-After; then the app answers", async () => {
  const listener = HttpListener.open({ hostname: "127.0.0.1", port: 0 });
  try {
    const early = await fetch(`${listener.url}/healthz`);
    assert.equal(early.status, 503);
    assert.equal(early.headers.get("retry-after"), "1");
    const body = await early.json();
    assert.deepEqual(
      body,
      openAiErrorBody(new EdgeError("starting", "the node is starting; retry in a moment")),
    );
    listener.mount({ fetch: () => new Response("up") });
    const later = await fetch(`${listener.url}/healthz`);
    assert.equal(later.status, 200);
    assert.equal(await later.text(), "up");
  } finally {
    await listener.close();
  }
});
