/**
 * Review at stop 64 of request bodies as a demanding client sends them: one that breaks off
 * before its end (`Content-Length` promises more than arrives, then the client closes its side)
 * is the client's fault, answered 400 `incomplete_body` with no "internal error" line in the
 * operator's log; one in a content coding the node does not decode (`Content-Encoding: gzip`) is
 * refused 415 `unsupported_content_encoding` with `Accept-Encoding: identity` (RFC 9110 15.5.16),
 * rather than read as garbage JSON or stored compressed under the name of its plain bytes.
 */
import { assert, assertEquals } from "./_assert.ts";
import type { InferencePort } from "../../inference/inference_port.ts";
import { createApp } from "../../server/app.ts";
import { fileRoutes } from "../../server/file_routes.ts";
import { serve } from "../../server/serve.ts";
import type { GatewayStorage } from "../../storage/gateway_port.ts";

const LOOPBACK = { remoteAddr: { transport: "tcp", hostname: "127.0.0.1", port: 1 } };

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

Deno.test("review s64: a request body that breaks off before its Content-Length (the client closed its side) is 400 incomplete_body on the JSON routes and on an upload, not a 500 with an internal error logged", async () => {
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

Deno.test("review s64: a body in a content coding (Content-Encoding: gzip) is refused 415 unsupported_content_encoding with Accept-Encoding: identity, on the JSON routes and uploads; identity is read as before", async () => {
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
      }, LOOPBACK as never);
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
  }, LOOPBACK as never);
  assertEquals(plain.status, 400);
  assertEquals((await plain.json()).error.param, "prompt", "the body was read and validated");
  const upload = await app.request("/v1/files", {
    method: "POST",
    headers: { "content-encoding": "Identity" },
    body: "plain bytes",
  }, LOOPBACK as never);
  assertEquals(upload.status, 201);
  assertEquals(new TextDecoder().decode(puts[0]), "plain bytes");
});
