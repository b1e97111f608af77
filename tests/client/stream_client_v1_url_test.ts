/**
 * The base URL an OpenAI user writes (`…/v1`, red-team review s77, F6): `streamUrl` maps `/v1`,
 * `/v1/` and `/v1/stream/` to the API's path, and a 404 on the upgrade says what to give, in the
 * library's own message (the CLI prints it as it is).
 */
import { StreamClient, StreamClosedError, streamUrl } from "../../client/stream_client.ts";
import { assert, assertEquals, assertRejects } from "../server/_assert.ts";

Deno.test("streamUrl maps /v1, /v1/ and /v1/stream/ (OpenAI's baseURL habit) to /v1/stream, and leaves other paths as given", () => {
  for (const path of ["", "/", "/v1", "/v1/", "/v1/stream", "/v1/stream/"]) {
    assertEquals(streamUrl(`http://127.0.0.1:8080${path}`).href, "ws://127.0.0.1:8080/v1/stream");
  }
  assertEquals(streamUrl("https://node.example/v1?x=1").href, "wss://node.example/v1/stream?x=1");
  // A proxy's own prefix is the caller's to give: not guessed at.
  assertEquals(streamUrl("ws://proxy.example/veriflow/v1/stream").pathname, "/veriflow/v1/stream");
  assertEquals(streamUrl("ws://127.0.0.1:8080/v2").pathname, "/v2");
});

Deno.test("connect to …/v1 reaches the API; a 404 on the upgrade says to give the node's base address", async () => {
  await using server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    (request) => {
      if (new URL(request.url).pathname !== "/v1/stream") {
        return new Response("no", {
          status: 404,
        });
      }
      const { socket, response } = Deno.upgradeWebSocket(request);
      socket.onmessage = () => {};
      return response;
    },
  );
  const base = `http://127.0.0.1:${server.addr.port}`;
  const client = await StreamClient.connect(`${base}/v1`);
  client.close();
  await client.closed;
  const refused = await assertRejects(
    () => StreamClient.connect(`${base}/v2`),
    StreamClosedError,
  );
  assertEquals(refused.details.httpStatus, 404);
  assert(refused.message.includes("Invalid status code: 404"), refused.message);
  assert(
    refused.message.includes(
      "give the node's base address, like ws://HOST:PORT: /v1/stream is added",
    ),
    refused.message,
  );
});
