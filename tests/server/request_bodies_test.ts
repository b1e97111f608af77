/**
 * Request bodies as clients send them (`server/body_limit.ts`): UTF-8 only, a body that trickles or
 * stalls held to a deadline, one cut short answered 400 `incomplete_body`, and a content coding the
 * node does not decode refused 415.
 */
import { assert, assertEquals } from "./_assert.ts";
import { startTestNode } from "./_fixtures.ts";
import { readBodyText } from "../../server/body_limit.ts";
import { RequestValidationError } from "../../server/http_errors.ts";
import type { InferencePort, InferenceStats } from "../../inference/inference_port.ts";
import { createApp } from "../../server/app.ts";
import { EDGE_DEFAULTS } from "../../server/edge_config.ts";
import { resolveStartConfig } from "../../cli/start_command.ts";
import { serve } from "../../server/serve.ts";
import { eventually } from "../_helpers/wait.ts";
import { readUntil } from "./_raw_reply.ts";
import { FakeTimers, tracker, turns } from "../_helpers/fake_timers.ts";
import { fileRoutes } from "../../server/file_routes.ts";
import type { GatewayStorage } from "../../storage/gateway_port.ts";

// `readBodyText`: a body is JSON text, which is UTF-8 (RFC 8259, 8.1). Bytes that are not UTF-8
// are the client's mistake, refused naming it, never decoded to U+FFFD and run as a prompt
// the client did not send (the receipt would sign that other text).

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

// Slow and abusive HTTP clients: a request body that trickles, or stalls after the headers, must
// not hold the request (its buffered bytes, its handler, a shutdown's wait) forever.

/** A port that counts submissions and accepts none (the tests never get that far). */
function countingPort(): { port: InferencePort; submitted: () => number } {
  let submitted = 0;
  return {
    port: {
      submit: () => {
        submitted++;
        return Promise.reject(new Error("no jobs"));
      },
      models: () => Promise.resolve([{ cid: "bafkmodel", name: "m", kind: "text" }] as never),
      stats: () => Promise.resolve({} as InferenceStats),
    },
    submitted: () => submitted,
  };
}

const LOOPBACK: Deno.Addr = { transport: "tcp", hostname: "127.0.0.1", port: 40000 };

Deno.test("a request body that stalls after its first bytes is answered 408 request_timeout at http.requestBodyTimeoutMs, its body cancelled and no job submitted", async () => {
  const timers = new FakeTimers();
  const { port, submitted } = countingPort();
  // Built apart from the call: the option is new, and the test must fail (not fail to compile)
  // on code that lacks it.
  const options = { inference: port, edge: { requestBodyTimeoutMs: 5_000 }, timers };
  const app = createApp(options);
  const cancelled = Promise.withResolvers<void>();
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      // The first bytes of a chat request, then nothing: the client stalls (or sends a byte a
      // minute) and never ends the body.
      controller.enqueue(new TextEncoder().encode('{"messages":[{"role":"user","content":"hi'));
    },
    cancel() {
      cancelled.resolve();
    },
  });
  const answer = Promise.resolve(app.fetch(
    new Request("http://127.0.0.1/v1/chat/completions", {
      method: "POST",
      headers: { "content-type": "application/json", host: "127.0.0.1" },
      body,
    }),
    { remoteAddr: LOOPBACK },
  ));
  const answered = tracker(answer);
  const bodyCancelled = tracker(cancelled.promise);
  await turns(10);
  assert(!answered(), "answered before the deadline");
  const deadline = [...timers.armed.values()].find((t) => t.ms === 5_000);
  assert(deadline !== undefined, "no body deadline armed at http.requestBodyTimeoutMs");
  timers.fireAll();
  await turns(10);
  assert(answered(), "still waiting on a body that will never end, past the deadline");
  const response = await answer;
  const { error } = await response.json();
  assertEquals([response.status, error?.code], [408, "request_timeout"]);
  assert(error.message.includes("http.requestBodyTimeoutMs"), error.message);
  // What the request held is let go: the rest of the body is not read, and no job ran.
  assert(bodyCancelled(), "the stalled body was not cancelled");
  assertEquals(submitted(), 0);
});

Deno.test("over TCP, a client that sends its headers and part of its body then stalls gets 408 once the body deadline passes", async () => {
  const timers = new FakeTimers();
  const { port, submitted } = countingPort();
  const options = { inference: port, edge: { requestBodyTimeoutMs: 5_000 }, timers };
  const server = serve({ app: createApp(options) });
  const conn = await Deno.connect({
    hostname: "127.0.0.1",
    port: Number(new URL(server.url).port),
  });
  try {
    await conn.write(
      new TextEncoder().encode(
        "POST /v1/completions HTTP/1.1\r\nhost: 127.0.0.1\r\n" +
          "content-type: application/json\r\ncontent-length: 100\r\n\r\n" + '{"prompt":"h',
      ),
    );
    await eventually(() => [...timers.armed.values()].some((t) => t.ms === 5_000), "the deadline");
    timers.fireAll();
    const received = await readUntil(conn, "request_timeout");
    assert(received.startsWith("HTTP/1.1 408"), received);
    assert(received.includes("request_timeout"), received);
    assertEquals(submitted(), 0);
  } finally {
    conn.close();
    await server.shutdown();
  }
});

Deno.test("a body that ends before http.requestBodyTimeoutMs is served as before and leaves no deadline timer armed", async () => {
  const timers = new FakeTimers();
  const { port, submitted } = countingPort();
  const options = { inference: port, edge: { requestBodyTimeoutMs: 5_000 }, timers };
  const app = createApp(options);
  const response = await app.fetch(
    new Request("http://127.0.0.1/v1/completions", {
      method: "POST",
      headers: { "content-type": "application/json", host: "127.0.0.1" },
      body: JSON.stringify({ prompt: "hi", max_tokens: 1 }),
    }),
    { remoteAddr: LOOPBACK },
  );
  await response.body?.cancel();
  // It reached the port (which refuses every job): the body was read whole.
  assertEquals(submitted(), 1);
  assertEquals([...timers.armed.values()].filter((t) => t.ms === 5_000), []);
});

Deno.test("http.requestBodyTimeoutMs is a node setting with a documented default", async () => {
  const { requestBodyTimeoutMs } = EDGE_DEFAULTS as unknown as Record<string, unknown>;
  assert(typeof requestBodyTimeoutMs === "number" && requestBodyTimeoutMs > 0);
  const { config } = await resolveStartConfig([]);
  assertEquals(
    (config.http as unknown as Record<string, unknown>).requestBodyTimeoutMs,
    requestBodyTimeoutMs,
  );
  const readme = await Deno.readTextFile(new URL("../../README.md", import.meta.url));
  assert(readme.includes("http.requestBodyTimeoutMs"), "README's Limits do not name it");
});

// Request bodies as a demanding client sends them: one that breaks off before its end
// (`Content-Length` promises more than arrives, then the client closes its side) is the client's
// fault, answered 400 `incomplete_body` with no "internal error" line in the operator's log; one in
// a content coding the node does not decode (`Content-Encoding: gzip`) is refused 415
// `unsupported_content_encoding` with `Accept-Encoding: identity` (RFC 9110 15.5.16), rather than
// read as garbage JSON or stored compressed under the name of its plain bytes.

const LOOPBACK_PEER_INFO = { remoteAddr: { transport: "tcp", hostname: "127.0.0.1", port: 1 } };

/** An app with the OpenAI routes (no job ever runs) and the file routes over a recording store. */
function bodyApp() {
  const puts: Uint8Array[] = [];
  const storage = {
    put: async (source: ReadableStream<Uint8Array>) => {
      const bytes = new Uint8Array(await new Response(source).arrayBuffer());
      puts.push(bytes);
      return { cid: "bafkstub", size: bytes.byteLength, chunkCount: 1 };
    },
  } as unknown as GatewayStorage;
  const log: string[] = [];
  const app = createApp({
    inference: {
      submit: () => Promise.reject(new Error("no jobs here")),
    } as unknown as InferencePort,
    log: (line) => log.push(line),
  });
  app.route("/v1", fileRoutes(() => storage));
  return { app, puts, log };
}

/** Send `head` and `body` over a raw connection, close our side, and read the whole answer. */
async function rawExchange(url: string, head: string, body: string): Promise<string> {
  const { hostname, port } = new URL(url);
  const connection = await Deno.connect({ hostname, port: Number(port) });
  await connection.write(new TextEncoder().encode(head + body));
  await connection.closeWrite();
  const answer = await new Response(connection.readable).text();
  return answer;
}

Deno.test("a request body that breaks off before its Content-Length (the client closed its side) is 400 incomplete_body on the JSON routes and on an upload, not a 500 with an internal error logged", async () => {
  const { app, puts, log } = bodyApp();
  const abort = new AbortController();
  const server = serve({ app, port: 0, signal: abort.signal });
  try {
    for (
      const [path, type] of [
        ["/v1/completions", "application/json"],
        ["/v1/chat/completions", "application/json"],
        ["/v1/files", "text/plain"],
      ]
    ) {
      const answer = await rawExchange(
        server.url,
        `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: ${type}\r\n` +
          `Content-Length: 100\r\n\r\n`,
        '{"prompt":',
      );
      const status = answer.split(" ")[1];
      assertEquals(status, "400", `${path}: ${answer}`);
      const json = JSON.parse(answer.slice(answer.indexOf("\r\n\r\n") + 4));
      assertEquals(json.error.code, "incomplete_body", path);
      assert(json.error.message.includes("before its end"), json.error.message);
    }
    assertEquals(puts.length, 0, "a broken upload is not stored");
    assertEquals(log.filter((line) => line.includes("internal error")), []);
  } finally {
    abort.abort();
    await server.finished;
  }
});

Deno.test("a body in a content coding (Content-Encoding: gzip) is refused 415 unsupported_content_encoding with Accept-Encoding: identity, on the JSON routes and uploads; identity is read as before", async () => {
  const { app, puts } = bodyApp();
  const json = JSON.stringify({ prompt: "Hello", max_tokens: 1 });
  const gzipped = await new Response(
    new Blob([json]).stream().pipeThrough(new CompressionStream("gzip")),
  ).arrayBuffer();
  for (const path of ["/v1/completions", "/v1/chat/completions", "/v1/files"]) {
    for (const coding of ["gzip", "GZIP", "identity, gzip", "br"]) {
      const response = await app.request(path, {
        method: "POST",
        headers: { "content-type": "application/json", "content-encoding": coding },
        body: gzipped,
      }, LOOPBACK_PEER_INFO as never);
      assertEquals(response.status, 415, `${path} ${coding}`);
      assertEquals(response.headers.get("accept-encoding"), "identity");
      const { error } = await response.json();
      assertEquals(error.code, "unsupported_content_encoding");
      assert(error.message.includes(coding), error.message);
    }
  }
  assertEquals(puts.length, 0, "a compressed upload is not stored as if it were the file");
  // `identity` (no coding) is the plain body, read as ever.
  const plain = await app.request("/v1/completions", {
    method: "POST",
    headers: { "content-encoding": "identity" },
    body: JSON.stringify({ max_tokens: 1 }),
  }, LOOPBACK_PEER_INFO as never);
  assertEquals(plain.status, 400);
  assertEquals((await plain.json()).error.param, "prompt", "the body was read and validated");
  const upload = await app.request("/v1/files", {
    method: "POST",
    headers: { "content-encoding": "Identity" },
    body: "plain bytes",
  }, LOOPBACK_PEER_INFO as never);
  assertEquals(upload.status, 201);
  assertEquals(new TextDecoder().decode(puts[0]), "plain bytes");
});
