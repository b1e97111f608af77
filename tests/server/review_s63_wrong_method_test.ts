/**
 * A known path asked with a method it does not take is 405 with `Allow`, in OpenAI's error shape
 * (`GET /v1/chat/completions` was a 404 `not_found`, as if the route did not exist: a client
 * library's wrong method read as a wrong base URL); an unknown path is still 404.
 */
import { assertEquals } from "./_assert.ts";
import { createApp } from "../../server/app.ts";
import { serve } from "../../server/serve.ts";
import { refusingPort } from "./_refusing_port.ts";

async function withApp(run: (url: string) => Promise<void>): Promise<void> {
  const app = createApp({ inference: refusingPort(() => undefined) });
  const abort = new AbortController();
  const server = serve({ app, signal: abort.signal });
  try {
    await run(server.url);
  } finally {
    abort.abort();
    await server.finished;
  }
}

Deno.test("a known path with a method it does not take is 405 with Allow; an unknown path is 404", async () => {
  await withApp(async (url) => {
    const answers: unknown[] = [];
    for (
      const [method, path] of [
        ["GET", "/v1/chat/completions"],
        ["PUT", "/v1/completions"],
        ["DELETE", "/v1/models"],
        ["POST", "/v1/models"],
      ] as const
    ) {
      const response = await fetch(`${url}${path}`, { method });
      const body = await response.json();
      answers.push([
        method,
        path,
        response.status,
        response.headers.get("allow"),
        body.error.code,
        body.error.type,
        body.error.message,
      ]);
    }
    assertEquals(answers, [
      [
        "GET",
        "/v1/chat/completions",
        405,
        "POST",
        "method_not_allowed",
        "invalid_request_error",
        "Invalid method for URL (GET /v1/chat/completions): it takes POST",
      ],
      [
        "PUT",
        "/v1/completions",
        405,
        "POST",
        "method_not_allowed",
        "invalid_request_error",
        "Invalid method for URL (PUT /v1/completions): it takes POST",
      ],
      [
        "DELETE",
        "/v1/models",
        405,
        "GET, HEAD",
        "method_not_allowed",
        "invalid_request_error",
        "Invalid method for URL (DELETE /v1/models): it takes GET, HEAD",
      ],
      [
        "POST",
        "/v1/models",
        405,
        "GET, HEAD",
        "method_not_allowed",
        "invalid_request_error",
        "Invalid method for URL (POST /v1/models): it takes GET, HEAD",
      ],
    ]);
    const missing = await fetch(`${url}/v1/nothing`, { method: "POST" });
    assertEquals([missing.status, (await missing.json()).error.code], [404, "not_found"]);
  });
});
