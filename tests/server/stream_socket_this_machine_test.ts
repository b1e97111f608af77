/**
 * This machine's `/v1/stream` sockets (`server/stream_sockets.ts`, review s75 verify F1): four
 * remote clients could fill the node's `MAX_STREAM_SOCKETS` places, and then the operator's own
 * tools (`cli.ts infer`) were refused too. Sockets from this machine now take places of their own
 * (`MAX_STREAM_SOCKETS_THIS_MACHINE`), still held to their client's cap.
 */
import assert from "node:assert/strict";
import { eventually, startTestNode, type TestNode } from "./_fixtures.ts";
import { dropAll, type RawSocket, rawUpgrade } from "./_raw_ws.ts";
import {
  MAX_STREAM_SOCKETS,
  MAX_STREAM_SOCKETS_PER_CLIENT,
  MAX_STREAM_SOCKETS_THIS_MACHINE,
} from "../../server/stream_sockets.ts";

/** Clients (one API key each) that fill the node's places together. */
const FILLERS = MAX_STREAM_SOCKETS / MAX_STREAM_SOCKETS_PER_CLIENT;
/** One API key per client: enough remote clients to fill the node, and two more. */
const KEYS = Array.from(
  { length: FILLERS + 2 },
  (_, i) => `stream-this-machine-key-${i}-0123456789abcdef`,
);
/**
 * A forwarding header makes a loopback peer a relay of some other machine's client, never this
 * machine's (`fromThisMachine`): how a test on loopback plays a remote client.
 */
const REMOTE = { "x-forwarded-for": "203.0.113.7" };

async function withNode(body: (node: TestNode, open: RawSocket[]) => Promise<void>) {
  const node = await startTestNode({ edge: { apiKeys: KEYS } });
  const open: RawSocket[] = [];
  try {
    await body(node, open);
  } finally {
    dropAll(open);
    await node.close();
  }
}

async function connect(
  node: TestNode,
  open: RawSocket[],
  key: number,
  extra: Record<string, string> = {},
): Promise<RawSocket> {
  const socket = await rawUpgrade(node.url, "/v1/stream", {
    authorization: `Bearer ${KEYS[key]}`,
    ...extra,
  });
  open.push(socket);
  return socket;
}

/** Fill every node-wide place with remote clients' sockets. */
async function fillWithRemote(node: TestNode, open: RawSocket[]): Promise<void> {
  for (let key = 0; key < FILLERS; key++) {
    for (let i = 0; i < MAX_STREAM_SOCKETS_PER_CLIENT; i++) {
      assert.equal((await connect(node, open, key, REMOTE)).status, 101, `remote ${key}, ${i}`);
    }
  }
}

Deno.test("WS /v1/stream caps: with the node's places all held by remote clients, this machine still connects; a remote client is refused", async () => {
  await withNode(async (node, open) => {
    await fillWithRemote(node, open);
    const last = KEYS.length - 1;
    const remote = await connect(node, open, last, REMOTE);
    assert.equal(remote.status, 429, "a remote client past the node's cap");
    assert.match(new TextDecoder().decode(remote.rest), /this node already has/);
    const local = await connect(node, open, last);
    assert.equal(local.status, 101, "this machine is not refused by the node-wide cap");
  });
});

Deno.test("WS /v1/stream caps: past the node's places, this machine has MAX_STREAM_SOCKETS_THIS_MACHINE kept for it, and each of its clients keeps its own cap", async () => {
  await withNode(async (node, open) => {
    await fillWithRemote(node, open);
    const [mine, other] = [FILLERS, FILLERS + 1];
    for (let i = 0; i < MAX_STREAM_SOCKETS_PER_CLIENT; i++) {
      assert.equal((await connect(node, open, mine)).status, 101, `this machine's socket ${i}`);
    }
    const overClient = await connect(node, open, mine);
    assert.equal(overClient.status, 429, "one past the client's own cap, from this machine");
    assert.match(new TextDecoder().decode(overClient.rest), /this client already has/);

    // MAX_STREAM_SOCKETS_THIS_MACHINE is one client's share: the kept places are all taken now.
    assert.equal(MAX_STREAM_SOCKETS_THIS_MACHINE, MAX_STREAM_SOCKETS_PER_CLIENT);
    const overKept = await connect(node, open, other);
    assert.equal(overKept.status, 429, "another client of this machine, past the kept places");
    assert.match(
      new TextDecoder().decode(overKept.rest),
      new RegExp(`this machine's tools ${MAX_STREAM_SOCKETS_THIS_MACHINE} more`),
    );

    open.shift()?.conn.close(); // a remote socket goes: its node place is free again
    await eventually(
      async () => (await connect(node, open, other)).status === 101,
      "this machine takes a node place again once one is free",
    );
  });
});
