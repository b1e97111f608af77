import assert from "node:assert/strict";
import { runStatus } from "../../client/status_command.ts";
import { parseNodeConfig } from "../../node/config.ts";
import { startNode } from "../../node/node.ts";

function io() {
  const out: string[] = [];
  const err: string[] = [];
  return {
    out,
    err,
    io: { out: (l: string) => void out.push(l), err: (l: string) => void err.push(l) },
  };
}

Deno.test({
  name: "status asks a running node for its actors, peers, jobs, ledger and storage",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    const node = await startNode(parseNodeConfig({
      dataDir: dir,
      http: { port: 0 },
      heartbeatMs: 0,
      model: { workers: 0 },
      network: { listening: false },
    }));
    try {
      const text = io();
      assert.equal(await runStatus(["--url", node.url!], text.io), 0);
      const lines = text.out.join("\n");
      assert.match(lines, /^node [0-9a-f]{64}/);
      assert.match(lines, /actors\s+7 \(0 not running, 0 restarts\)/);
      assert.match(lines, /peers\s+0/);
      assert.match(lines, /jobs\s+0 running/);
      assert.match(lines, /ledger\s+credit 0, stake 1000000/);
      assert.match(lines, /storage\s+0 bytes/);
      const json = io();
      assert.equal(await runStatus(["--url", node.url!, "--json"], json.io), 0);
      assert.equal(JSON.parse(json.out.join("\n")).type, "snapshot");
    } finally {
      await node.shutdown();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});

Deno.test("status with no node there exits 1 and says to start one or give --url", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close(); // a port nobody listens on
  const text = io();
  assert.equal(await runStatus(["--url", `http://127.0.0.1:${port}`], text.io), 1);
  assert.match(text.err.join("\n"), /no node answered.*deno task start.*--url/);
  assert.equal(await runStatus(["--bogus"], io().io), 2);
});
