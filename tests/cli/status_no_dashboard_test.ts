/**
 * `cli.ts status` on a node started with `--no-dashboard` (review s78 dash, F7): the page and its
 * socket are off, but the state `status` reads is still served, to the node's own machine only;
 * from elsewhere, with a key or not, a 404 whose hint says to run `status` on the node's machine.
 */
import assert from "node:assert/strict";
import { runStatus } from "../../cli/status_command.ts";
import { parseNodeConfig } from "../../node/config.ts";
import { startNode } from "../../node/node.ts";
import { createApp } from "../../server/app.ts";
import { JobMonitor } from "../../server/job_monitor.ts";
import { quietSources } from "../server/_dashboard_sources.ts";
import { NO_JOBS_PORT } from "../server/_dashboard_node.ts";
import { io } from "./_command_io.ts";

Deno.test({
  name:
    "status works on this machine against a node started with --no-dashboard, whose page and socket stay off",
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
      dashboard: { enabled: false },
    }));
    try {
      const text = io();
      assert.equal(await runStatus(["--url", node.url!], text.io), 0, text.err.join("\n"));
      assert.match(text.out.join("\n"), /^node [0-9a-f]{64}/);
      for (const path of ["/", "/dashboard/app.js", "/dashboard/live"]) {
        const off = await fetch(`${node.url}${path}`);
        assert.equal(off.status, 404, path);
        await off.body?.cancel();
      }
      // No page, so no operator token was made for it.
      await assert.rejects(() => Deno.stat(`${dir}/operator.token`), Deno.errors.NotFound);
    } finally {
      await node.shutdown();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});

Deno.test("a node without the dashboard page serves its state to no other machine, not even with an API key: status from there says to run it on the node's machine", async () => {
  const key = "a-long-random-api-key-1234";
  const app = createApp({
    inference: NO_JOBS_PORT,
    edge: { apiKeys: [key], allowUnauthenticatedRemote: true },
    dashboard: { sources: quietSources(), jobs: new JobMonitor(), page: false },
  });
  // Every request as if from a host on the network (TEST-NET-1): only the address differs.
  const lan: Deno.NetAddr = { transport: "tcp", hostname: "192.0.2.7", port: 40000 };
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    (request) => app.fetch(request, { remoteAddr: lan }),
  );
  try {
    const url = `http://127.0.0.1:${server.addr.port}`;
    const keyed = await fetch(`${url}/dashboard/state`, {
      headers: { authorization: `Bearer ${key}` },
    });
    assert.equal(keyed.status, 404);
    assert.equal((await keyed.json()).error.code, "not_found");
    const text = io();
    assert.equal(await runStatus(["--url", url, "--api-key", key], text.io), 1);
    const said = text.err.join("\n");
    assert.match(said, /answered 404/);
    assert.match(
      said,
      /--no-dashboard: it then serves its state to its own machine only; run status there/,
    );
  } finally {
    await server.shutdown();
  }
});
