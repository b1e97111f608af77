/**
 * Review of the swarm host's supervision (network/swarm_host.ts, network/swarm/host.mjs): a host
 * that hangs after it came up, a hung host whose stdin is full when the node stops, and a host
 * whose stderr floods the node's log. Stand-in hosts (`_fake_swarm_host.mjs` behind a script)
 * where the DHT plays no part; the real host with no bootstrap (nothing leaves 127.0.0.1).
 */
import assert from "node:assert/strict";
import { SwarmHost, type SwarmPeer } from "../../network/swarm_host.ts";
import { startLocalTestnet } from "../../network/swarm_testnet.ts";
import { Identity } from "../../protocols/identity.ts";
import { base, FAKE_HOST, floodPeers, script, settled, stateWatch } from "./_swarm_host_fixture.ts";

/** Kill `pid` if it still runs (a test that failed must not leave a stopped process). */
function killQuietly(pid: number | undefined): void {
  if (pid === undefined) return;
  for (const signal of ["SIGCONT", "SIGKILL"] as const) {
    try {
      Deno.kill(pid, signal);
    } catch {
      // gone
    }
  }
}

Deno.test({
  name:
    "swarm review: a host that stops answering after it came up is taken for hung, reported down, killed and restarted",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const watch = stateWatch();
    const logs: string[] = [];
    // The real host (it must answer the liveness check), with no DHT to reach.
    const host = await SwarmHost.start({
      ...base(),
      bind: "127.0.0.1",
      restart: { initialMs: 10, maxMs: 10 },
      hangTimeoutMs: 2_000,
      onState: watch.onState,
      log: (l) => logs.push(l),
    });
    const first = host.pid;
    try {
      // A host that answers is left alone (several checks go by).
      await new Promise((resolve) => setTimeout(resolve, 5_000));
      assert.deepEqual(watch.states, ["up"], logs.join("\n"));
      // Its event loop stops (SIGSTOP stands for a host stuck in a loop or a dead lock): the
      // node was left with a swarm that delivers nothing, forever, reporting it up.
      const down = watch.next("down");
      const up = watch.next("up");
      Deno.kill(first!, "SIGSTOP");
      await settled(down, "the hung host reported down");
      await settled(up, "a new host up");
      assert.notEqual(host.pid, first, "a new host process");
      assert.ok(logs.some((l) => l.includes("did not answer")), logs.join("\n"));
      assert.equal(host.restarts, 1);
    } finally {
      killQuietly(first);
      await host.close();
    }
  },
});

Deno.test({
  name: "swarm review: close() returns when the host hung with its stdin full of the node's ops",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const { dir, nodePath } = await script(`exec node ${FAKE_HOST}`);
    const host = await SwarmHost.start({ ...base(), nodePath });
    const pid = host.pid;
    try {
      Deno.kill(pid!, "SIGSTOP");
      // More ops than a pipe holds (64 KiB): the writes behind them wait for the host.
      for (let i = 0; i < 3_000; i++) host.dial(crypto.getRandomValues(new Uint8Array(32)));
      // close() waited for stdin's pending writes before its 5 s kill: forever.
      await settled(host.close(), "close()", 15_000);
    } finally {
      killQuietly(pid);
      await host.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "swarm review: the host's stderr reaches the node's log a bounded number of lines at a time, each line cut to a bounded length",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const LINES = 20_000;
    const { dir, nodePath } = await script(
      // One line of 1 MiB, then LINES short ones, then the fake host.
      `head -c 1048576 /dev/zero | tr '\\0' x >&2; echo >&2\n` +
        `i=0; while [ $i -lt ${LINES} ]; do echo "spam $i"; i=$((i+1)); done >&2\n` +
        `echo "the last line" >&2\n` +
        `exec node ${FAKE_HOST}`,
    );
    const logs: string[] = [];
    try {
      const host = await SwarmHost.start({ ...base(), nodePath, log: (l) => logs.push(l) });
      await host.close();
      const longest = Math.max(...logs.map((l) => l.length));
      assert.ok(longest <= 8 * 1024, `a log line of ${longest} characters`);
      assert.ok(logs.length < 500, `${logs.length} log lines from the host's stderr`);
      // What was left out is counted, and the last line is shown: all of it was read.
      const summary = logs.find((l) => l.includes("left out"));
      assert.ok(summary?.includes("the last line"), logs.slice(-3).join("\n"));
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "swarm review: the connections peers open to the host are handed on up to maxConnections at once; past it each is closed",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const K = 10;
    const MOST = 4;
    const testnet = await startLocalTestnet();
    const peers: SwarmPeer[] = [];
    const logs: string[] = [];
    const victim = await SwarmHost.start({
      identity: Identity.generate(),
      bootstrap: testnet.bootstrap,
      bind: "127.0.0.1",
      maxConnections: MOST,
      onPeer: (p) => peers.push(p), // the node holds them (handshakes in progress)
      log: (l) => logs.push(l),
    });
    let attacker: ReturnType<typeof floodPeers> | undefined;
    try {
      await victim.join(crypto.getRandomValues(new Uint8Array(32)));
      // K fresh keys (free to make) connect to the victim by its key: Hyperswarm's maxPeers
      // bounds only the connections the victim makes, so every one was handed on.
      attacker = floodPeers(testnet.bootstrap[0], victim.publicKey, K, 65536);
      assert.ok(await attacker.report(), "the attacker reports once every connection is done");
      assert.equal(peers.length, MOST, `${peers.length} of ${K} connections handed on`);
      // The host's line for each one it closed (they may come after the attacker's report).
      const refused = () => logs.filter((l) => l.includes("connection refused")).length;
      await settled(
        (async () => {
          while (refused() < K - MOST) await new Promise((r) => setTimeout(r, 20));
        })(),
        `the host's lines for the ${K - MOST} connections it refused`,
      );
    } finally {
      for (const p of peers) p.close();
      await attacker?.stop();
      await victim.close();
      await testnet.stop();
    }
  },
});
