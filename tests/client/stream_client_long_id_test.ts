/**
 * A request id over the node's limit (128 characters) fails its job at once with
 * `invalid_request`, and nothing is sent (review s79 F3): the node refuses such an id without
 * naming it (it is no request's), so the job would otherwise wait for the idle timeout, and before
 * the node's fix a 70,000-character echo failed every job on the socket as a protocol error. The
 * jobs beside it go on.
 */
import { StreamClient, StreamRequestError } from "../../client/stream_client.ts";
import { MAX_REQUEST_ID_CHARS } from "../../server/request_schemas.ts";
import { assert, assertEquals, assertRejects } from "../server/_assert.ts";
import { doneFrame, startFrame, tokenFrame } from "./_stub_servers.ts";

/** A stand-in that answers each `infer` with one token, and records every frame it receives. */
function recordingServer(received: unknown[]): Deno.HttpServer<Deno.NetAddr> {
  return Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (request) => {
    const { socket, response } = Deno.upgradeWebSocket(request);
    socket.onmessage = (event) => {
      const message = JSON.parse(event.data);
      received.push(message);
      if (message.type !== "infer") return;
      for (
        const frame of [startFrame(message.id), tokenFrame(message.id, 0), doneFrame(message.id, 1)]
      ) {
        socket.send(JSON.stringify(frame));
      }
    };
    return response;
  });
}

Deno.test("an id over the node's limit fails its job at once with invalid_request, is never sent, and the job beside it ends as it should", async () => {
  const received: unknown[] = [];
  await using server = recordingServer(received);
  using client = await StreamClient.connect(`ws://127.0.0.1:${server.addr.port}`);
  const long = client.infer({
    id: "x".repeat(MAX_REQUEST_ID_CHARS + 1),
    prompt: "x",
    max_tokens: 1,
  });
  const plain = client.infer({ prompt: "x", max_tokens: 1 });
  const error = await assertRejects(() => long.done);
  assert(error instanceof StreamRequestError, String(error));
  assertEquals(error.code, "invalid_request");
  assert(error.message.includes(`${MAX_REQUEST_ID_CHARS}`), error.message);
  assertEquals((await plain.done).finish_reason, "length");
  assertEquals(received.map((m) => (m as { id: string }).id), [plain.id]);
});

Deno.test("an id at the node's limit is sent and runs", async () => {
  const received: unknown[] = [];
  await using server = recordingServer(received);
  using client = await StreamClient.connect(`ws://127.0.0.1:${server.addr.port}`);
  const id = "y".repeat(MAX_REQUEST_ID_CHARS);
  const job = client.infer({ id, prompt: "x", max_tokens: 1 });
  assertEquals((await job.done).id, id);
});
