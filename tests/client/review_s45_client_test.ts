/**
 * Review s45: the streaming client when a caller reuses a request id — a finished job's
 * `cancel` (or the cancel of its token stream) must not reach the job now running under that id.
 */
import { assertEquals } from "../server/_assert.ts";
import { StreamClient } from "../../client/stream_client.ts";
import { doneFrame, startFrame } from "./_stub_servers.ts";

/**
 * A `/v1/stream` stand-in: the first `infer` of each id ends at once (`start`, one token,
 * `done`); a later one with the same id starts and keeps running. `messages` has what clients
 * sent.
 */
function scriptedServer(): Deno.HttpServer<Deno.NetAddr> & { messages: { type: string }[] } {
  const messages: { type: string }[] = [];
  const seen = new Set<string>();
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (request) => {
    const { socket, response } = Deno.upgradeWebSocket(request);
    socket.onmessage = (event) => {
      const message = JSON.parse(event.data);
      messages.push(message);
      if (message.type !== "infer") return;
      const id = message.id;
      socket.send(JSON.stringify(startFrame(id)));
      socket.send(JSON.stringify({ type: "token", id, index: 0, token_id: 65, text: "A" }));
      socket.send(JSON.stringify({ type: "token", id, index: 1, token_id: 66, text: "B" }));
      if (seen.has(id)) return; // the second job under this id runs on
      seen.add(id);
      socket.send(JSON.stringify(doneFrame(id, 2)));
    };
    return response;
  });
  return Object.assign(server, { messages });
}

Deno.test("review s45: a finished job's cancel() does not cancel the job now running under the same id", async () => {
  const server = scriptedServer();
  const client = await StreamClient.connect(`ws://127.0.0.1:${server.addr.port}`, {
    idleTimeoutMs: 0,
  });
  try {
    const first = client.infer({ id: "a", prompt: "x" });
    await first.done;
    const second = client.infer({ id: "a", prompt: "y" });
    await second.start;
    first.cancel(); // the first job has ended: nothing to cancel
    // A round trip on another id: whatever the client sent before it has reached the server.
    await client.infer({ id: "probe", prompt: "z" }).done;
    assertEquals(server.messages.map((m) => m.type), ["infer", "infer", "infer"]);
  } finally {
    client.close();
    await client.closed;
    await server.shutdown();
  }
});

Deno.test("review s45: leaving a finished job's token loop early does not cancel the job now running under the same id", async () => {
  const server = scriptedServer();
  const client = await StreamClient.connect(`ws://127.0.0.1:${server.addr.port}`, {
    idleTimeoutMs: 0,
  });
  try {
    const first = client.infer({ id: "a", prompt: "x" });
    await first.done; // both tokens wait unread
    const second = client.infer({ id: "a", prompt: "y" });
    await second.start;
    for await (const token of first.tokens) {
      assertEquals(token.text, "A");
      break; // cancels the token stream of a job that has ended
    }
    await client.infer({ id: "probe", prompt: "z" }).done;
    assertEquals(server.messages.map((m) => m.type), ["infer", "infer", "infer"]);
  } finally {
    client.close();
    await client.closed;
    await server.shutdown();
  }
});
