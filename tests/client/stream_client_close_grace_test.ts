/**
 * `close()` (and `using`) against a node that never answers the close handshake (red-team review
 * s71, finding 1): `closed` resolves once `closeTimeoutMs` has passed without the node's answer,
 * not never.
 */
import {
  DEFAULT_STREAM_CLOSE_TIMEOUT_MS,
  StreamClient,
  StreamClosedError,
} from "../../client/stream_client.ts";
import { tracker } from "../_helpers/fake_timers.ts";
import { eventually } from "../_helpers/wait.ts";
import { assertEquals, assertRejects } from "../server/_assert.ts";
import { wedgedServer } from "./_stub_servers.ts";
import { recordTimeouts } from "./_timers.ts";

/** A close timeout no other timer of these tests uses, so its arming can be told apart. */
const CLOSE_MS = 30;

Deno.test("close() on a node that never answers the close: `closed` resolves after closeTimeoutMs, and a later job fails as closed by the client", async () => {
  const server = wedgedServer();
  try {
    const client = await StreamClient.connect(server.url, {
      idleTimeoutMs: 0,
      closeTimeoutMs: CLOSE_MS,
    });
    const job = client.infer({ prompt: "hi" });
    await job.start;
    client.close();
    await server.closeReceived; // the node has the close frame, and will never answer it
    const closed = tracker(client.closed);
    // Not a race: nothing else would ever settle `closed` while the server holds the connection.
    await eventually(closed, "client.closed without the node's answer");
    const later = await assertRejects(() => client.infer({ prompt: "x" }).done, StreamClosedError);
    assertEquals(later.message, "the client closed the socket");
  } finally {
    server.close();
  }
});

Deno.test("a `using` client on a node that never answers the close: `closed` resolves after closeTimeoutMs", async () => {
  const server = wedgedServer();
  try {
    let client: StreamClient;
    {
      using held = await StreamClient.connect(server.url, { closeTimeoutMs: CLOSE_MS });
      client = held;
    }
    await server.closeReceived;
    await eventually(tracker(client.closed), "client.closed without the node's answer");
  } finally {
    server.close();
  }
});

Deno.test("close() arms DEFAULT_STREAM_CLOSE_TIMEOUT_MS by default, and closeTimeoutMs when given; a negative one rejects connect", async () => {
  for (
    const [options, expected] of [[{}, DEFAULT_STREAM_CLOSE_TIMEOUT_MS], [
      { closeTimeoutMs: 1234 },
      1234,
    ]] as const
  ) {
    const server = wedgedServer();
    try {
      const client = await StreamClient.connect(server.url, { idleTimeoutMs: 0, ...options });
      const timers = recordTimeouts();
      try {
        client.close();
      } finally {
        assertEquals(timers.restore(), [expected]);
      }
    } finally {
      server.close(); // ends the connection, so `closed` resolves on its own
    }
  }
  const server = wedgedServer();
  try {
    await assertRejects(
      () => StreamClient.connect(server.url, { closeTimeoutMs: -1 }),
      RangeError,
    );
  } finally {
    server.close();
  }
});
