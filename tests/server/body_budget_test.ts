/**
 * The bytes of JSON request bodies the node holds while reading them, every request together,
 * have one budget (`http.maxBufferedBodyBytes`, `server/body_limit.ts`'s `BodyBudget`): 150
 * clients that each sent all but the last byte of a 1 MiB body held 200 MiB until their deadline.
 * Past the budget the next body is refused with 429 `too_many_request_bodies` and `Retry-After`;
 * a body's bytes come back once it is read (and parsed) or its request fails.
 */
import { assert, assertEquals } from "./_assert.ts";
import { startTestNode } from "./_fixtures.ts";
import { BodyBudget, readBodyText } from "../../server/body_limit.ts";
import { EdgeError } from "../../server/http_errors.ts";
import { bufferedBodyBytesOf, edgeConfig } from "../../server/edge_config.ts";
import { eventually } from "../_helpers/wait.ts";

/** A request whose body sends `bytes` spaces and then waits until the test ends it. */
function stalledRequest(bytes: number): { request: Request; end: () => void; fail: () => void } {
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  const body = new ReadableStream<Uint8Array>({
    start(c) {
      controller = c;
      c.enqueue(new Uint8Array(bytes).fill(0x20));
    },
  });
  return {
    request: new Request("http://x/", { method: "POST", body }),
    end: () => {
      controller.enqueue(new TextEncoder().encode("{}"));
      controller.close();
    },
    fail: () => controller.error(new Error("connection reset")),
  };
}

/** What a promise settles with: its value, or the error it was rejected with. */
function settled<T>(promise: Promise<T>): Promise<T | unknown> {
  return promise.catch((error) => error);
}

Deno.test("readBodyText counts a body's bytes against the budget while it is read: a body past it is refused with 429 too_many_request_bodies and Retry-After, and the bytes come back when a body is read whole or breaks off", async () => {
  const budget = new BodyBudget(1000);
  const first = stalledRequest(600);
  const firstText = readBodyText(first.request, 1 << 20, undefined, budget);
  await eventually(() => budget.held === 600, "the first body's bytes counted");

  const second = stalledRequest(600);
  const refused = await settled(readBodyText(second.request, 1 << 20, undefined, budget));
  assert(refused instanceof EdgeError, `refused with ${refused}`);
  assertEquals(refused.code, "too_many_request_bodies");
  assertEquals(refused.retryAfterS, 1);
  assertEquals(budget.held, 600, "a refused body holds nothing");

  first.end();
  assertEquals((await firstText).trim(), "{}");
  assertEquals(budget.held, 0, "a body read whole gives its bytes back");

  const third = stalledRequest(900);
  const thirdText = settled(readBodyText(third.request, 1 << 20, undefined, budget));
  await eventually(() => budget.held === 900, "the third body's bytes counted");
  third.fail();
  assertEquals(((await thirdText) as EdgeError).code, "incomplete_body");
  assertEquals(budget.held, 0, "a body that broke off gives its bytes back");
});

Deno.test("the body budget defaults to 32 bodies of http.maxRequestBytes, and is never below one", () => {
  assertEquals(bufferedBodyBytesOf(edgeConfig()), 32 << 20);
  assertEquals(bufferedBodyBytesOf(edgeConfig({ maxRequestBytes: 4096 })), 32 * 4096);
  assertEquals(
    bufferedBodyBytesOf(edgeConfig({ maxRequestBytes: 4096, maxBufferedBodyBytes: 10_000 })),
    10_000,
  );
  assertEquals(
    bufferedBodyBytesOf(edgeConfig({ maxRequestBytes: 4096, maxBufferedBodyBytes: 100 })),
    4096,
  );
});

Deno.test("over HTTP, stalled bodies past http.maxBufferedBodyBytes make the next request 429 too_many_request_bodies with Retry-After, and closing one lets requests in again", async () => {
  const node = await startTestNode({
    edge: { maxRequestBytes: 4096, maxBufferedBodyBytes: 6000 },
  });
  const conns: Deno.Conn[] = [];
  const port = Number(new URL(node.url).port);
  /** A connection that sends all but the last byte of a 3000-byte body, then stalls. */
  const stall = async () => {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    conns.push(conn);
    const head = "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n" +
      "Content-Type: application/json\r\nContent-Length: 3000\r\n\r\n";
    await conn.write(new TextEncoder().encode(head + " ".repeat(2999)));
    return conn;
  };
  const complete = () =>
    fetch(`${node.url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ prompt: "hi", max_tokens: 1, user: "u".repeat(1500) }),
    });
  try {
    // A body's bytes are read and returned one after the other: requests in turn never pile up.
    for (let i = 0; i < 8; i++) {
      const response = await complete();
      assertEquals(response.status, 200);
      await response.body?.cancel();
    }
    await stall();
    await stall();
    // Once the node has read both stalled bodies' bytes (6000 held), the next is refused.
    const refused = await eventually(async () => {
      const response = await complete();
      if (response.status === 200) {
        await response.body?.cancel();
        return undefined;
      }
      return response;
    }, "a refusal");
    const body = await refused.json();
    assertEquals([refused.status, body.error.code], [429, "too_many_request_bodies"]);
    assertEquals(refused.headers.get("retry-after"), "1");
    assert(body.error.message.includes("http.maxBufferedBodyBytes"), body.error.message);

    // The client goes away: its request fails and its bytes come back.
    conns.shift()!.close();
    const admitted = await eventually(async () => {
      const response = await complete();
      if (response.status === 200) return response;
      await response.body?.cancel();
    }, "a request admitted again");
    assertEquals((await admitted.json()).object, "text_completion");
  } finally {
    for (const conn of conns) conn.close();
    await node.close();
  }
});
