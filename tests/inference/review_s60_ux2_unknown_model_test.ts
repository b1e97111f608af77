/**
 * `unknown_model` says where the list is (review stop 60, `ux2`): over HTTP and the WebSocket the
 * error's own text is all a client sees, and "no model registered under nope" left it guessing
 * which names the node serves.
 */
import assert from "node:assert/strict";
import { UnknownModelError } from "../../inference/errors.ts";

Deno.test("UnknownModelError names the model and points at GET /v1/models", () => {
  const error = new UnknownModelError("nope");
  assert.equal(error.code, "unknown_model");
  assert.equal(error.message, "no model named nope on this node (GET /v1/models lists its models)");
});
