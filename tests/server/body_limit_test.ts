/**
 * `readBodyText`: a body is JSON text, which is UTF-8 (RFC 8259, 8.1). Bytes that are not UTF-8
 * are the client's mistake, refused naming it, never decoded to U+FFFD and run as a prompt
 * the client did not send (the receipt would sign that other text).
 */
import { assert, assertEquals } from "./_assert.ts";
import { startTestNode } from "./_fixtures.ts";
import { readBodyText } from "../../server/body_limit.ts";
import { RequestValidationError } from "../../server/http_errors.ts";

/** `{"prompt":"ab<0xff 0xfe>","max_tokens":2}`: JSON whose string holds two bytes that are not UTF-8. */
function bodyWithInvalidUtf8(extra = ""): Uint8Array<ArrayBuffer> {
  const encoder = new TextEncoder();
  return new Uint8Array([
    ...encoder.encode('{"prompt":"ab'),
    0xff,
    0xfe,
    ...encoder.encode(`","max_tokens":2${extra}}`),
  ]);
}

/** The loopback peer `serve` would pass; `app.fetch` without it counts as remote. */
const LOOPBACK_INFO = {
  remoteAddr: { transport: "tcp" as const, hostname: "127.0.0.1", port: 40000 },
};

Deno.test("readBodyText refuses a body that is not UTF-8 with invalid_json, and reads well-formed UTF-8 (a BOM-less multi-byte text) as sent", async () => {
  const refused = await readBodyText(
    new Request("http://x/", { method: "POST", body: bodyWithInvalidUtf8() }),
    1 << 20,
  ).then(() => undefined, (error) => error);
  assert(refused instanceof RequestValidationError, String(refused));
  assertEquals(refused.code, "invalid_json");
  assert(/UTF-8/.test(refused.message), refused.message);
  const text = '{"prompt":"héllo ✓ 𝄞"}';
  assertEquals(
    await readBodyText(new Request("http://x/", { method: "POST", body: text }), 1 << 20),
    text,
  );
});

Deno.test("POST /v1/completions and /v1/chat/completions with bytes that are not UTF-8 answer 400 invalid_json and run nothing", async () => {
  const node = await startTestNode();
  // Without the refusal the jobs run to their end (and the test fails on their 200) rather than
  // wait at the gated model's gate.
  node.gated.release(100);
  try {
    const completions = await node.app.fetch(
      new Request(`${node.url}/v1/completions`, {
        method: "POST",
        body: bodyWithInvalidUtf8(',"model":"gated"'),
      }),
      LOOPBACK_INFO,
    );
    const chatBody: Uint8Array<ArrayBuffer> = new Uint8Array([
      ...new TextEncoder().encode('{"model":"gated","messages":[{"role":"user","content":"'),
      0xc3, // a lead byte with no continuation
      ...new TextEncoder().encode('"}]}'),
    ]);
    const chat = await node.app.fetch(
      new Request(`${node.url}/v1/chat/completions`, { method: "POST", body: chatBody }),
      LOOPBACK_INFO,
    );
    for (const response of [completions, chat]) {
      const body = await response.json();
      assertEquals([response.status, body.error?.code], [400, "invalid_json"]);
    }
    assertEquals(node.gated.encoded, 0, "no prompt was tokenised");
    assertEquals((await node.stats()).jobsStarted, 0);
  } finally {
    await node.close();
  }
});
