/**
 * Review s61 (lib3, S4): a library program that starts nodes can read whom a node is connected to
 * (`VeriflowNode.peers()`, the NetworkActor's table), e.g. to log it or to see that a
 * configured peer has connected, without reading the node's log.
 */
import assert from "node:assert/strict";
import { formatPeerAddress } from "../../network/peer_address.ts";
import { toHex } from "../../protocols/hash.ts";
import { parseNodeConfig } from "../../node/config.ts";
import { startNode } from "../../node/node.ts";
import { eventually } from "../_helpers/wait.ts";

const NO_ROLES = { inference: false, prover: false, validator: false, storage: false };

Deno.test("review s61: VeriflowNode.peers() lists the node's connected peers, and a node with no peer none", async () => {
  const dirs = await Promise.all([0, 1, 2].map(() => Deno.makeTempDir({ prefix: "lib3-s61-" })));
  try {
    await using b = await startNode(parseNodeConfig({
      dataDir: dirs[0],
      http: { port: 0 },
      heartbeatMs: 0,
      roles: NO_ROLES,
      network: { listen: { hostname: "127.0.0.1", port: 0 } },
    }));
    await using a = await startNode(parseNodeConfig({
      dataDir: dirs[1],
      http: { port: 0 },
      heartbeatMs: 0,
      roles: NO_ROLES,
      network: { listening: false, peers: [formatPeerAddress((await b.peerAddress())!)] },
    }));
    const key = toHex(b.identity.publicKey);
    const peers = await eventually(async () => {
      const list = await a.peers();
      return list.some((p) => p.key === key) ? list : undefined;
    }, "A to connect to B");
    const entry = peers.find((p) => p.key === key)!;
    assert.equal(entry.outbound, true);
    assert.equal(entry.address, formatPeerAddress((await b.peerAddress())!));
    await using alone = await startNode(parseNodeConfig({
      dataDir: dirs[2],
      http: { port: 0 },
      heartbeatMs: 0,
      roles: NO_ROLES,
      network: { listening: false },
    }));
    assert.deepEqual(await alone.peers(), []);
  } finally {
    for (const dir of dirs) await Deno.remove(dir, { recursive: true });
  }
});
