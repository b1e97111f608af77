/**
 * Review s49 of `cli.ts infer` (`client/infer_command.ts`): what its error line tells a person
 * the node asked to wait before retrying (a refusal's `retry_after_s`).
 *
 * @module
 */
import { assert, assertEquals } from "../server/_assert.ts";
import { runInfer } from "../../client/infer_command.ts";

/**
 * A `/v1/stream` stand-in that refuses every job as the node refuses a key over its start rate
 * (`rate_limited`, with `retry_after_s`; the message is the node's).
 */
function refusingServer(retryAfterS: number): Deno.HttpServer<Deno.NetAddr> {
  return Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (request) => {
    const { socket, response } = Deno.upgradeWebSocket(request);
    socket.onmessage = (event) => {
      const message = JSON.parse(event.data);
      if (message.type !== "infer") return;
      socket.send(JSON.stringify({
        type: "error",
        id: message.id,
        code: "rate_limited",
        message: "this API key has started 60 jobs in the last minute, its limit " +
          "(http.perKeyRequestsPerMinute); retry after the Retry-After seconds",
        retry_after_s: retryAfterS,
      }));
    };
    return response;
  });
}

Deno.test("review s49: runInfer on a refusal with retry_after_s says how many seconds to wait (a terminal shows no Retry-After header)", async () => {
  const server = refusingServer(17);
  try {
    const err: string[] = [];
    const status = await runInfer(["--url", `ws://127.0.0.1:${server.addr.port}`, "hi"], {
      stdout: () => {},
      stderr: (text) => void err.push(text),
    });
    assertEquals(status, 1);
    const said = err.join("");
    assert(said.includes("(rate_limited)"), said);
    assert(/retry in 17 s/.test(said), said);
  } finally {
    await server.shutdown();
  }
});
