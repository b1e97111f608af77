/**
 * A `StreamClient` whose socket the node closed as idle (`STREAM_SOCKET_IDLE_MS`,
 * `server/stream_session.ts`) and whose caller then starts a job (review s75 vhandshake F2): the
 * job fails saying it was never sent and naming the node's reason, not that the socket closed
 * "before the job ended". The node's clock is injected: the test fires the idle close by hand.
 */
import { StreamClient, StreamClosedError } from "../../client/stream_client.ts";
import { STREAM_SOCKET_IDLE_MS, WS_CLOSE } from "../../server/stream_session.ts";
import { FakeTimers } from "../_helpers/fake_timers.ts";
import { startTestNode } from "../server/_fixtures.ts";
import { assert, assertEquals, assertRejects } from "../server/_assert.ts";

const KEY = "client-idle-closed-key-0123456789";

Deno.test("StreamClient: a job started after the node closed the idle socket fails as never sent, naming the node's reason, and tells the caller to connect again", async () => {
  const timers = new FakeTimers();
  const node = await startTestNode({ edge: { apiKeys: [KEY] }, timers });
  try {
    const client = await StreamClient.connect(node.wsUrl, { apiKey: KEY });
    timers.fireFor(STREAM_SOCKET_IDLE_MS);
    await client.closed;
    const error = await assertRejects(
      () => client.infer({ prompt: "hello" }).done,
      StreamClosedError,
    );
    assertEquals(error.code, "stream_closed");
    assertEquals(error.details.closeCode, WS_CLOSE.normal);
    assert(!error.message.includes("before the job ended"), error.message);
    assert(error.message.includes("never started"), error.message);
    assert(error.message.includes("StreamClient.connect"), error.message);
    assert(error.message.includes(`no job for ${STREAM_SOCKET_IDLE_MS} ms`), error.message);
  } finally {
    await node.close();
  }
});
