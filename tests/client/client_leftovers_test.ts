/**
 * `StreamClient` with a caller-chosen request id that is already running on the socket: the new
 * job fails in the client's own error vocabulary, naming the id, and the running job goes on.
 */
import assert from "node:assert/strict";
import { StreamClient, StreamRequestError } from "../../client/stream_client.ts";
import { doneFrame, startFrame } from "./_stub_servers.ts";

/**
 * A `/v1/stream` stand-in that starts each job and ends it only when cancelled (`done`,
 * `finish_reason: "cancelled"`). `messages` has what clients sent, in order.
 */
function cancellableServer(): Deno.HttpServer<Deno.NetAddr> & { messages: unknown[] } {
  const messages: unknown[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (request) => {
    const { socket, response } = Deno.upgradeWebSocket(request);
    socket.onmessage = (event) => {
      const message = JSON.parse(event.data);
      messages.push(message);
      if (message.type === "infer") {
        socket.send(JSON.stringify(startFrame(message.id)));
      } else if (message.type === "cancel") {
        socket.send(JSON.stringify(doneFrame(message.id, 0, "cancelled")));
      }
    };
    return response;
  });
  return Object.assign(server, { messages });
}

Deno.test("StreamClient.infer with the id of a running job fails that call with StreamRequestError duplicate_id naming the id, sends nothing, and leaves the running job alone", async () => {
  const server = cancellableServer();
  const client = await StreamClient.connect(`ws://127.0.0.1:${server.addr.port}`);
  try {
    const running = client.infer({ id: "job-7", prompt: "x", max_tokens: 4 });
    await running.start;
    const again = client.infer({ id: "job-7", prompt: "y", max_tokens: 4 });
    assert.equal(again.id, "job-7");
    const isDuplicate = (error: unknown) => {
      assert.ok(error instanceof StreamRequestError, String(error));
      assert.equal(error.code, "duplicate_id");
      assert.match(error.message, /job-7/);
      return true;
    };
    await assert.rejects(again.start, isDuplicate);
    await assert.rejects(again.done, isDuplicate);
    await assert.rejects(again.tokens.getReader().read(), isDuplicate);
    again.cancel(); // the failed call's cancel must not reach the running job
    // The server answers in order: once a later job has started, it has read every frame
    // sent before it, and neither the refused infer nor its cancel was among them.
    const probe = client.infer({ id: "probe", prompt: "z", max_tokens: 1 });
    await probe.start;
    assert.deepEqual(
      server.messages.map((m) => [(m as { type: string }).type, (m as { id: string }).id]),
      [["infer", "job-7"], ["infer", "probe"]],
    );
    // The running job still ends by its own cancel.
    running.cancel();
    assert.equal((await running.done).finish_reason, "cancelled");
  } finally {
    client.close();
    await server.shutdown();
  }
});
