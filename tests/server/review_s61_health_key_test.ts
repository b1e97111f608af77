/**
 * Review (stop 61): a client learns a node's key from its API. Pinning `worker` when checking a
 * receipt, or adding `requester` to a job rebuilt for a routed receipt, needs the node's public
 * key; before, only the node's log printed it. `/healthz` reports it, hex, as `node_key`, beside
 * the fields it always had.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { parseNodeConfig, startNode, toHex } from "../../mod.ts";

Deno.test("review s61: /healthz reports the node's public key (hex) as node_key, keeping its other fields", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await using node = await startNode(parseNodeConfig({
      dataDir: join(dir, "data"),
      http: { port: 0 },
      network: { listening: false },
      roles: { validator: false, storage: false },
      heartbeatMs: 0,
    }));
    const response = await fetch(`${node.url}/healthz`);
    assert.equal(response.status, 200);
    const body = await response.json();
    assert.equal(body.node_key, toHex(node.identity.publicKey));
    assert.match(body.node_key, /^[0-9a-f]{64}$/);
    assert.equal(body.status, "ok");
    assert.equal(body.models, 1);
    assert.equal(body.active_jobs, 0);
    assert.equal(body.queued_jobs, 0);
    assert.ok(Array.isArray(body.model_runtime), JSON.stringify(body));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
