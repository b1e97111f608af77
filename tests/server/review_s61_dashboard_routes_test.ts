/**
 * Review (s61) of the dashboard's live socket (`server/dashboard_routes.ts`) against many open
 * pages: the hub computed one snapshot per tick, but each page encoded it again (and, for a page
 * reading with an API key, copied it to blank its job text). A snapshot carries every live job's
 * output (up to 4 KiB each, 64 queued jobs by default), and any API key may open as many pages
 * as it likes: the node's work each second grew with the number of pages watching it.
 *
 * Likewise `GET /dashboard/state`: each request asked every source anew (the network, validator,
 * storage and inference actors, the training actors: seven asks), so a burst of reads from one
 * API key put seven asks each in the mailboxes of the actors that carry the node's peer traffic;
 * reads that arrive while the sources are being asked now share that one round of asks.
 */
import assert from "node:assert/strict";
import { assertEquals } from "./_assert.ts";
import type { InferencePort, InferenceStats } from "../../inference/inference_port.ts";
import { createApp } from "../../server/app.ts";
import { JobMonitor } from "../../server/job_monitor.ts";
import { serve } from "../../server/serve.ts";
import { delay, eventually } from "../_helpers/wait.ts";
import { quietSources } from "./_dashboard_sources.ts";

const PORT: InferencePort = {
  submit: () => Promise.reject(new Error("no jobs")),
  models: () => Promise.resolve([]),
  stats: () => Promise.resolve({} as InferenceStats),
};
/** Pages open at once. */
const PAGES = 8;
/** Snapshots each page waits for. */
const SNAPSHOTS = 3;

Deno.test("review s61: a snapshot is encoded once for all the dashboard pages open, not once per page", async () => {
  let computed = 0;
  const sources = quietSources({
    // Called once per snapshot the hub computes.
    tree: () => (computed++, {}),
  });
  const jobs = new JobMonitor();
  const app = createApp({
    inference: jobs.wrap(PORT),
    // Ticks as fast as the test can take them: it waits for snapshots, never for time.
    dashboard: { sources, jobs, operatorToken: "op-token-0123456789abcdef", tickMs: 10 },
  });
  const server = serve({ app, hostname: "127.0.0.1", port: 0 });
  const stringify = JSON.stringify;
  let encoded = 0;
  JSON.stringify = function (...args: Parameters<typeof stringify>) {
    const text = stringify.apply(JSON, args);
    if (typeof text === "string" && text.startsWith('{"type":"snapshot"')) encoded++;
    return text;
  } as typeof stringify;
  const sockets: WebSocket[] = [];
  try {
    const received: number[] = [];
    for (let i = 0; i < PAGES; i++) {
      const ws = new WebSocket(server.url.replace("http", "ws") + "/dashboard/live");
      received.push(0);
      ws.onmessage = (e) => {
        if (String(e.data).startsWith('{"type":"snapshot"')) received[i]++;
      };
      sockets.push(ws);
    }
    await eventually(
      () => received.every((n) => n >= SNAPSHOTS) || undefined,
      `${SNAPSHOTS} snapshots on each page`,
    );
    // Read both at once: a tick in progress has counted its snapshot before encoding it.
    const [encodings, snapshots] = [encoded, computed];
    assert.ok(
      encodings <= snapshots,
      `${encodings} snapshots encoded for ${snapshots} computed, with ${PAGES} pages open`,
    );
  } finally {
    JSON.stringify = stringify;
    for (const ws of sockets) ws.close();
    await Promise.all(
      sockets.map((ws) =>
        ws.readyState === WebSocket.CLOSED
          ? undefined
          : new Promise((r) => ws.addEventListener("close", r))
      ),
    );
    await server.shutdown();
  }
});

Deno.test("review s61: dashboard state reads that arrive while the sources are being asked share one round of asks", async () => {
  const KEY = "a-real-api-key-0123456789";
  const READS = 20;
  let asked = 0;
  const held = Promise.withResolvers<unknown[]>();
  const sources = quietSources({
    // The network actor, slow to answer: every read in the burst arrives while it is asked.
    peers: () => (asked++, held.promise),
  });
  const jobs = new JobMonitor();
  const app = createApp({
    inference: jobs.wrap(PORT),
    edge: { apiKeys: [KEY] },
    dashboard: { sources, jobs, operatorToken: "op-token-0123456789abcdef", tickMs: 60_000 },
  });
  const remote = { transport: "tcp", hostname: "198.51.100.9", port: 4242 } as Deno.NetAddr;
  const reads = Array.from({ length: READS }, () =>
    app.fetch(
      new Request("http://node.example:8080/dashboard/state", {
        headers: { authorization: `Bearer ${KEY}` },
      }),
      { remoteAddr: remote },
    ));
  // Orders the test after every read has reached the sources (no I/O on the way there).
  await delay(10);
  held.resolve([{ key: "ab".repeat(32), roles: [], models: [] }]);
  const answers = await Promise.all(reads);
  for (const answer of answers) {
    assertEquals(answer.status, 200);
    assertEquals((await answer.json()).peers.length, 1);
  }
  assertEquals(asked, 1, `the network actor asked ${asked} times for ${READS} reads`);
});
