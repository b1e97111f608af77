/**
 * Stop 65: a stream whose lost worker's tokens every takeover refused ends with
 * `delivered_tokens_diverged` (`network/failover.ts`). Its answer is a 502 that keeps the message
 * naming the wrong token and the lost worker — not a 500 with the generic internal message, which
 * is what a code missing from the status table gets.
 */
import assert from "node:assert/strict";
import { DeliveredTokensDivergedError } from "../../network/failover.ts";
import { errorResponse } from "../../server/http_errors.ts";

Deno.test("delivered_tokens_diverged answers 502 with its own message, a server_error", async () => {
  const message = "the tokens sent were not the job's output from token 3 on (worker ab12)";
  const response = errorResponse(new DeliveredTokensDivergedError(message, 3, "ab12", undefined));
  assert.equal(response.status, 502);
  const { error } = await response.json();
  assert.equal(error.code, "delivered_tokens_diverged");
  assert.equal(error.message, message);
  assert.equal(error.type, "server_error");
});
