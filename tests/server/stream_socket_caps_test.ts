/**
 * The caps on `/v1/stream` sockets (`server/stream_sockets.ts`, review s75 F2/F3): Deno reads up to
 * 64 MiB of a message before the node can refuse it, and nothing capped the sockets one client, or
 * all, held open. Now a client may hold `MAX_STREAM_SOCKETS_PER_CLIENT` and the node
 * `MAX_STREAM_SOCKETS`; past either the upgrade is refused 429 `too_many_sockets` with
 * `Retry-After`. A socket the node closed (here with 1009) whose client never answers the close
 * keeps its place until its connection has really closed.
 */
import assert from "node:assert/strict";
import { eventually, startTestNode, type TestNode } from "./_fixtures.ts";
import {
  closeCodeOf,
  dropAll,
  type RawSocket,
  rawUpgrade,
  textFrame,
  writeAll,
} from "./_raw_ws.ts";
import { MAX_STREAM_SOCKETS, MAX_STREAM_SOCKETS_PER_CLIENT } from "../../server/stream_sockets.ts";

/** One API key per client: a node-wide cap needs more clients than one's share. */
const KEYS = Array.from(
  { length: MAX_STREAM_SOCKETS / MAX_STREAM_SOCKETS_PER_CLIENT + 1 },
  (_, i) => `stream-socket-key-${i}-0123456789abcdef`,
);
/** Small, so a message over it is a few bytes of test. */
const MAX_REQUEST_BYTES = 1024;

async function withCappedNode(body: (node: TestNode, open: RawSocket[]) => Promise<void>) {
  const node = await startTestNode({
    edge: { apiKeys: KEYS, maxRequestBytes: MAX_REQUEST_BYTES },
  });
  const open: RawSocket[] = [];
  try {
    await body(node, open);
  } finally {
    dropAll(open);
    await node.close();
  }
}

/**
 * A forwarding header makes a loopback peer a relay of another machine's client
 * (`fromThisMachine`): this machine's sockets have places kept for them past the node's cap
 * (`stream_socket_this_machine_test.ts`), and these tests are about remote clients.
 */
const REMOTE = { "x-forwarded-for": "203.0.113.7" };

/** A raw socket to `/v1/stream` with key `i`, kept in `open` for the clean-up. */
async function connect(node: TestNode, open: RawSocket[], i: number): Promise<RawSocket> {
  const socket = await rawUpgrade(node.url, "/v1/stream", {
    authorization: `Bearer ${KEYS[i]}`,
    ...REMOTE,
  });
  open.push(socket);
  return socket;
}

Deno.test("WS /v1/stream caps: a client's socket past MAX_STREAM_SOCKETS_PER_CLIENT is refused 429 too_many_sockets with Retry-After; another client still connects; a place comes back at a close", async () => {
  await withCappedNode(async (node, open) => {
    const mine: RawSocket[] = [];
    for (let i = 0; i < MAX_STREAM_SOCKETS_PER_CLIENT; i++) {
      const socket = await connect(node, open, 0);
      assert.equal(socket.status, 101, `socket ${i} of the client`);
      mine.push(socket);
    }
    const over = await connect(node, open, 0);
    assert.equal(over.status, 429, "one past the client's cap");
    assert.equal(over.headers.get("retry-after"), "5");
    const body = new TextDecoder().decode(over.rest);
    assert.match(body, /"code":"too_many_sockets"/);
    assert.match(body, new RegExp(`this client already has ${MAX_STREAM_SOCKETS_PER_CLIENT} `));

    assert.equal((await connect(node, open, 1)).status, 101, "another key is not refused");

    mine[0].conn.close(); // the connection is gone: its onclose fires, its place comes back
    await eventually(
      async () => (await connect(node, open, 0)).status === 101,
      "the client's place given back after its socket closed",
    );
  });
});

Deno.test("WS /v1/stream caps: a socket closed by the node (1009) whose client never answers the close keeps its place until the connection really closes", async () => {
  await withCappedNode(async (node, open) => {
    const cutOff: RawSocket[] = [];
    for (let i = 0; i < MAX_STREAM_SOCKETS_PER_CLIENT; i++) {
      const socket = await connect(node, open, 0);
      assert.equal(socket.status, 101);
      await writeAll(socket.conn, textFrame("x".repeat(MAX_REQUEST_BYTES + 1)));
      assert.equal(await closeCodeOf(socket), 1009, "the node closed it for its size");
      cutOff.push(socket); // never answers the close frame
    }
    const over = await connect(node, open, 0);
    assert.equal(over.status, 429, "the unanswered closes still count against the client");
    assert.match(new TextDecoder().decode(over.rest), /"code":"too_many_sockets"/);

    for (const socket of cutOff) socket.conn.close();
    await eventually(
      async () => (await connect(node, open, 0)).status === 101,
      "the places given back once the connections closed",
    );
  });
});

Deno.test("WS /v1/stream caps: the node's sockets stop at MAX_STREAM_SOCKETS, whichever clients hold them", async () => {
  await withCappedNode(async (node, open) => {
    const clients = MAX_STREAM_SOCKETS / MAX_STREAM_SOCKETS_PER_CLIENT;
    for (let client = 0; client < clients; client++) {
      for (let i = 0; i < MAX_STREAM_SOCKETS_PER_CLIENT; i++) {
        assert.equal((await connect(node, open, client)).status, 101, `client ${client}, ${i}`);
      }
    }
    const over = await connect(node, open, clients);
    assert.equal(over.status, 429, "a client with no socket yet, past the node's cap");
    const body = new TextDecoder().decode(over.rest);
    assert.match(
      body,
      new RegExp(`this node already has ${MAX_STREAM_SOCKETS} /v1/stream sockets`),
    );
    assert.ok(over.headers.has("retry-after"));
  });
});
