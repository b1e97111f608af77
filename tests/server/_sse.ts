/**
 * A test node's OpenAI-style HTTP answers, read as the server tests read them: a JSON body posted
 * as is, and a streamed answer's server-sent events.
 *
 * @module
 */
import { assert } from "./_assert.ts";
import type { TestNode } from "./_fixtures.ts";

/** The `data:` events of an SSE body, parsed (without `[DONE]`, which must end it). */
export async function sseEvents(response: Response): Promise<Record<string, unknown>[]> {
  const text = await response.text();
  assert(text.endsWith("data: [DONE]\n\n"), text);
  return text.split("\n\n").filter((e) => e.startsWith("data: {")).map((e) =>
    JSON.parse(e.slice("data: ".length))
  );
}

/** POST `body`, JSON-encoded, to `path` on `node`. */
export function post(node: TestNode, path: string, body: unknown): Promise<Response> {
  return fetch(`${node.url}${path}`, { method: "POST", body: JSON.stringify(body) });
}
