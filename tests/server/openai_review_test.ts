/**
 * Odd client input at the edge of the OpenAI-compatible routes and the WebSocket API: what a
 * hostile or careless client sends, and the answer it must get.
 */
import { assertEquals } from "./_assert.ts";
import { startTestNode, type TestNode } from "./_fixtures.ts";
import { WsProbe } from "./_ws_probe.ts";
import type { WsErrorMessage } from "../../server/stream_protocol.ts";
import { CompletionRequestSchema, toGenerationParams } from "../../server/request_schemas.ts";

async function withNode(body: (node: TestNode) => Promise<void>): Promise<void> {
  const node = await startTestNode();
  node.gated.release(1_000_000); // these tests are about refusals, not timing
  try {
    await body(node);
  } finally {
    await node.close();
  }
}

/** POST a raw JSON text; the OpenAI error it gets, with its status. */
async function refusal(
  node: TestNode,
  path: string,
  json: string,
): Promise<{ status: number; code: string; param: string | null }> {
  const response = await fetch(`${node.url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: json,
  });
  const { error } = await response.json();
  return { status: response.status, code: error?.code, param: error?.param };
}

Deno.test("A lone UTF-16 surrogate in a prompt, a chat message or a stop sequence is a 400 invalid_request naming that field, on both routes and the WebSocket", async () => {
  await withNode(async (node) => {
    // JSON's "\ud800" parses to a lone surrogate, which has no UTF-8 form a job could carry.
    const bad = String.raw`"\ud800x"`;
    const completions = (fields: string) =>
      refusal(node, "/v1/completions", `{"model":"gated","max_tokens":2,${fields}}`);
    const chat = (fields: string) =>
      refusal(node, "/v1/chat/completions", `{"model":"gated","max_tokens":2,${fields}}`);
    const invalid = (param: string) => ({ status: 400, code: "invalid_request", param });
    assertEquals(await completions(`"prompt":${bad}`), invalid("prompt"));
    assertEquals(await completions(`"prompt":[${bad}]`), invalid("prompt.0"));
    assertEquals(await completions(`"prompt":"x","stop":${bad}`), invalid("stop"));
    assertEquals(await completions(`"prompt":"x","stop":["ok",${bad}]`), invalid("stop.1"));
    const user = `{"role":"user","content":"x"}`;
    assertEquals(
      await chat(`"messages":[${user},{"role":"user","content":${bad}}]`),
      invalid("messages.1.content"),
    );
    assertEquals(
      await chat(`"messages":[{"role":"user","content":[{"type":"text","text":${bad}}]}]`),
      invalid("messages.0.content.0.text"),
    );
    assertEquals(await chat(`"messages":[${user}],"stop":${bad}`), invalid("stop"));
    const probe = await WsProbe.open(node.wsUrl);
    try {
      for (const field of ["prompt", "stop", "nonce"]) {
        const frame = { type: "infer", id: field, model: "gated", prompt: "x", max_tokens: 2 };
        probe.socket.send(
          JSON.stringify(frame).replace(/}$/, `,${JSON.stringify(field)}:${bad}}`),
        );
        const error = await probe.next((m) =>
          m.type === "error" && m.id === field
        ) as WsErrorMessage;
        assertEquals(error.code, "invalid_request", field);
      }
    } finally {
      await probe.close();
    }
  });
});

Deno.test("top_p: 0, which OpenAI accepts (evaluation tools send it with temperature 0), keeps only the most likely token, as top_k: 1; a negative one is still refused", async () => {
  const parsed = CompletionRequestSchema.parse({ prompt: "Hi", top_p: 0, temperature: 0.9 });
  const params = toGenerationParams(parsed);
  assertEquals([params.topK, params.topP, params.temperature], [1, 1, 0.9]);
  assertEquals(toGenerationParams({ top_p: 0.5, top_k: 7 }).topK, 7);
  await withNode(async (node) => {
    const response = await fetch(`${node.url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "gated", prompt: "Hi", max_tokens: 2, top_p: 0 }),
    });
    assertEquals(response.status, 200);
    assertEquals((await response.json()).object, "text_completion");
    const negative = await refusal(
      node,
      "/v1/completions",
      `{"model":"gated","prompt":"Hi","top_p":-0.1}`,
    );
    assertEquals(negative, { status: 400, code: "invalid_request", param: "top_p" });
  });
});
