/**
 * A JSON text nested deeper than `MAX_JSON_DEPTH` is refused before it is parsed
 * (`server/json_depth.ts`): `JSON.parse` of half a million `[` held the event loop for ~490 ms,
 * stalling every stream on the node. The scanner counts only brackets outside strings.
 */
import { assert, assertEquals } from "./_assert.ts";
import { startTestNode } from "./_fixtures.ts";
import { WsProbe } from "./_ws_probe.ts";
import { MAX_JSON_DEPTH, nestsDeeperThan } from "../../server/json_depth.ts";
import { parseJsonText } from "../../server/request_schemas.ts";
import { RequestValidationError } from "../../server/http_errors.ts";

/** `depth` arrays inside one another. */
function nested(depth: number): string {
  return "[".repeat(depth) + "]".repeat(depth);
}

Deno.test("nestsDeeperThan counts arrays and objects inside one another, up to the limit and one past it", () => {
  assertEquals(nestsDeeperThan(nested(3), 3), false);
  assertEquals(nestsDeeperThan(nested(4), 3), true);
  assertEquals(nestsDeeperThan('{"a":{"b":[{"c":1}]}}', 4), false);
  assertEquals(nestsDeeperThan('{"a":{"b":[{"c":1}]}}', 3), true);
  // Siblings do not add up: depth is how far in, not how many.
  assertEquals(nestsDeeperThan("[[],[],[],[],[]]", 2), false);
  assertEquals(nestsDeeperThan("", 0), false);
  assertEquals(nestsDeeperThan("42", 0), false);
});

Deno.test("nestsDeeperThan skips brackets inside strings, escaped quotes and backslashes included", () => {
  assertEquals(nestsDeeperThan('{"text":"[[[[{{{{"}', 1), false);
  // An escaped quote does not end the string: the brackets after it are still inside it.
  assertEquals(nestsDeeperThan('["say \\"[[[[\\" twice"]', 1), false);
  // An escaped backslash does end before the quote: the brackets after that quote count.
  assertEquals(nestsDeeperThan('["a\\\\",[[1]]]', 2), true);
  assertEquals(nestsDeeperThan('["a\\\\",[[1]]]', 3), false);
  // A key holding brackets, and a unicode escape.
  assertEquals(nestsDeeperThan('{"[[[":"\\u005b\\u005b","b":[]}', 2), false);
});

Deno.test("parseJsonText refuses a text nested past MAX_JSON_DEPTH with invalid_json naming the limit, and parses one at the limit", () => {
  assertEquals(parseJsonText(nested(MAX_JSON_DEPTH)) !== undefined, true);
  let refused: unknown;
  try {
    parseJsonText(nested(MAX_JSON_DEPTH + 1));
  } catch (error) {
    refused = error;
  }
  assert(refused instanceof RequestValidationError, `refused with ${refused}`);
  assertEquals(refused.code, "invalid_json");
  assert(refused.message.includes(`${MAX_JSON_DEPTH}`), refused.message);
});

Deno.test("a body of half a million nested brackets is refused with 400 invalid_json at once, over HTTP and on the WebSocket", async () => {
  const node = await startTestNode();
  try {
    const deep = nested(524_000); // just under http.maxRequestBytes (1 MiB)
    const started = performance.now();
    const response = await fetch(`${node.url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: deep,
    });
    const body = await response.json();
    assertEquals([response.status, body.error.code], [400, "invalid_json"]);
    assert(body.error.message.includes(`${MAX_JSON_DEPTH}`), body.error.message);
    // Logged, not asserted: a loaded machine's timing is no test.
    console.log(`refused in ${Math.round(performance.now() - started)} ms`);

    const probe = await WsProbe.open(node.wsUrl);
    try {
      probe.send(nested(MAX_JSON_DEPTH + 1));
      const error = await probe.next((m) => m.type === "error");
      assertEquals((error as { code: string }).code, "invalid_json");
      assertEquals(probe.socket.readyState, WebSocket.OPEN);
    } finally {
      await probe.close();
    }
  } finally {
    await node.close();
  }
});
