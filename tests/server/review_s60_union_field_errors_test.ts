/**
 * A field whose schema is a union (a completion's `prompt`, `stop`, a chat message's `content`)
 * and whose value is of none of its types — missing, a number, an object — is named with what it
 * must be and what came, as every other field's refusal is: "Invalid input" alone tells a new
 * client nothing (review stop 60, the first-hour walk: `curl -d '{"max_tokens":4}'`).
 */
import { assertEquals } from "./_assert.ts";
import {
  ChatCompletionRequestSchema,
  CompletionRequestSchema,
  parseRequest,
} from "../../server/request_schemas.ts";
import { RequestValidationError } from "../../server/http_errors.ts";

/** The error `parseRequest` refuses `body` with (the test fails if it accepts it). */
function refusal(
  schema: Parameters<typeof parseRequest>[0],
  body: unknown,
): RequestValidationError {
  try {
    parseRequest(schema, body);
  } catch (error) {
    if (error instanceof RequestValidationError) return error;
    throw error;
  }
  throw new Error(`accepted ${JSON.stringify(body)}`);
}

Deno.test("a completion without a prompt is told the prompt is missing and what it must be", () => {
  const error = refusal(CompletionRequestSchema, { max_tokens: 4 });
  assertEquals(error.code, "invalid_request");
  assertEquals(error.param, "prompt");
  assertEquals(
    error.message,
    "'prompt': Invalid input: expected string or array, received undefined",
  );
});

Deno.test("a prompt of the wrong type names the type that came", () => {
  const error = refusal(CompletionRequestSchema, { prompt: 5 });
  assertEquals(error.message, "'prompt': Invalid input: expected string or array, received number");
});

Deno.test("a stop of the wrong type, and chat content that is null, say the same", () => {
  assertEquals(
    refusal(CompletionRequestSchema, { prompt: "hi", stop: { a: 1 } }).message,
    "'stop': Invalid input: expected string or array, received object",
  );
  const chat = refusal(ChatCompletionRequestSchema, {
    messages: [{ role: "user", content: null }],
  });
  assertEquals(chat.param, "messages.0.content");
  assertEquals(
    chat.message,
    "'messages.0.content': Invalid input: expected string or array, received null",
  );
});

Deno.test("a value of one branch's type still gets that branch's own reason", () => {
  // Unchanged behaviour, pinned beside the fix: five stop sequences are over the array's four.
  const error = refusal(CompletionRequestSchema, {
    prompt: "hi",
    stop: ["a", "b", "c", "d", "e"],
  });
  assertEquals(error.param, "stop");
  assertEquals(error.message.startsWith("'stop': Too big"), true);
});
