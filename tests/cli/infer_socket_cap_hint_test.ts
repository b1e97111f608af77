/**
 * `cli.ts infer` against a node that refuses the socket's handshake with 429 `too_many_sockets`
 * (`server/stream_sockets.ts`, review s75 verify F3): it printed "Invalid status code: 429" alone.
 * Now it says what the refusal means and what to do.
 */
import { runInfer } from "../../cli/infer_command.ts";
import { assert, assertEquals } from "../server/_assert.ts";

Deno.test("runInfer: a 429 on the handshake says the node has no free /v1/stream socket and to retry later", async () => {
  // A node with every socket place taken answers every handshake so (as `StreamSockets` does).
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, () =>
    Response.json({
      error: { code: "too_many_sockets", type: "rate_limit_error", message: "full", param: null },
    }, { status: 429, headers: { "retry-after": "5" } }));
  try {
    const err: string[] = [];
    const io = { stdout: () => {}, stderr: (text: string) => void err.push(text) };
    const url = `ws://127.0.0.1:${server.addr.port}`;
    assertEquals(await runInfer(["--url", url, "hi"], io), 1);
    const text = err.join("");
    assert(
      /Invalid status code: 429\n\(the node has as many \/v1\/stream sockets/.test(text),
      text,
    );
    assert(/too_many_sockets\): close another .*retry in a few seconds/.test(text), text);
  } finally {
    await server.shutdown();
  }
});
