/**
 * Review at stop 45 of the swarm host and its link to Deno (network/swarm_host.ts,
 * network/swarm/host.mjs). Stand-in hosts (`_fake_swarm_host.mjs` behind a script): no DHT,
 * nothing leaves the machine.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { SwarmHost, type SwarmPeer } from "../../network/swarm_host.ts";
import { startLocalTestnet } from "../../network/swarm_testnet.ts";
import { Identity } from "../../protocols/identity.ts";
import {
  base,
  duplicateHolder,
  FAKE_HOST,
  script,
  settled,
  speakAndDrain,
} from "./_swarm_host_fixture.ts";

/** The node's own process in the environment test (see `_swarm_env_child.ts`). */
const ENV_CHILD = fileURLToPath(new URL("./_swarm_env_child.ts", import.meta.url));

Deno.test({
  name:
    "swarm review s45: what the host prints on its stdout that is not an event reaches the node's log a bounded number of lines at a time",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const LINES = 20_000;
    // A library in the host that prints in a loop with console.log: its stdout, the pipe the
    // host's events come on. Only stderr was bounded; each of these lines was logged.
    const { dir, nodePath } = await script(
      `i=0; while [ $i -lt ${LINES} ]; do echo "spam $i"; i=$((i+1)); done\n` +
        `echo "the last line"\n` +
        `exec node ${FAKE_HOST}`,
    );
    const logs: string[] = [];
    try {
      const host = await SwarmHost.start({ ...base(), nodePath, log: (l) => logs.push(l) });
      await host.close();
      assert.ok(logs.length < 500, `${logs.length} log lines from the host's stdout`);
      const summary = logs.find((l) => l.includes("left out"));
      assert.ok(summary?.includes("the last line"), logs.slice(-3).join("\n"));
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

const MIB = 1024 * 1024;

function rssBytes(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  return Number(status.match(/VmRSS:\s+(\d+) kB/)![1]) * 1024;
}

Deno.test({
  name:
    "swarm review s45: a peer's second connection, held back while its first stays open, cannot make the host hold more than its unread limits",
  ignore: Deno.build.os !== "linux",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const BYTES = 96 * MIB;
    const testnet = await startLocalTestnet();
    const peers: SwarmPeer[] = [];
    const logs: string[] = [];
    const victim = await SwarmHost.start({
      identity: Identity.generate(),
      bootstrap: testnet.bootstrap,
      bind: "127.0.0.1",
      maxUnreadBytes: 4 * MIB,
      maxUnreadTotalBytes: 8 * MIB,
      onPeer: (p) => speakAndDrain(peers, p),
      log: (l) => logs.push(l),
    });
    let attacker: Deno.ChildProcess | undefined;
    try {
      await victim.join(crypto.getRandomValues(new Uint8Array(32)));
      const before = rssBytes(victim.pid!);
      const held = duplicateHolder(testnet.bootstrap[0], victim.publicKey, [BYTES]);
      attacker = held.child;
      const line = await settled(held.reports.read(), "the attacker's report", 90_000);
      const report = JSON.parse(line.value!) as { sent: number; closed: boolean };
      const grown = rssBytes(victim.pid!) - before;
      // The second connection was never handed to the node (Hyperswarm holds it until the first
      // closes, and the first was kept open by its trickle): every byte it sent sat in the host,
      // counted by no limit.
      assert.ok(
        report.closed || report.sent < 16 * MIB,
        `the host took in ${report.sent / MIB} MiB on a connection the node was never given ` +
          `(closed: ${report.closed}; host RSS grew ${(grown / MIB).toFixed(0)} MiB; ` +
          `${peers.length} connection(s) handed on)\n${logs.join("\n")}`,
      );
    } finally {
      for (const p of peers) p.close();
      await attacker?.stdin.close().catch(() => {});
      await attacker?.status;
      await victim.close();
      await testnet.stop();
    }
  },
});

Deno.test({
  name:
    "swarm review s45: connections a peer makes again while its first stays open count toward maxConnections; past it each is closed",
  ignore: Deno.build.os !== "linux",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const MORE = 20;
    const MOST = 4;
    const testnet = await startLocalTestnet();
    const peers: SwarmPeer[] = [];
    const logs: string[] = [];
    const victim = await SwarmHost.start({
      identity: Identity.generate(),
      bootstrap: testnet.bootstrap,
      bind: "127.0.0.1",
      maxConnections: MOST,
      onPeer: (p) => speakAndDrain(peers, p),
      log: (l) => logs.push(l),
    });
    let attacker: Deno.ChildProcess | undefined;
    try {
      await victim.join(crypto.getRandomValues(new Uint8Array(32)));
      // One key: a first connection kept open by a byte now and then, and MORE after it, which
      // Hyperswarm holds back (each a live stream in the host) until the first closes: never.
      // The host handed on one connection and held MORE, with maxConnections at MOST.
      const closedAtLeast = MORE - (MOST - 1);
      const held = duplicateHolder(testnet.bootstrap[0], victim.publicKey, [
        0,
        MORE,
        closedAtLeast,
      ]);
      attacker = held.child;
      const line = await settled(
        held.reports.read(),
        `${closedAtLeast} of the ${MORE} connections closed by the host`,
        30_000,
      );
      assert.ok(line.value, "the attacker's report");
    } finally {
      for (const p of peers) p.close();
      await attacker?.stdin.close().catch(() => {});
      await attacker?.status;
      await victim.close();
      await testnet.stop();
    }
  },
});

/**
 * How many of this process's descriptors are the node's ends of connections accepted on the link
 * port `port`: sockets (by inode, in /proc/net/tcp) whose local port it is and that do not listen.
 * Counted by name, not as the process's number of descriptors, which other test files under
 * `--parallel` change meanwhile (by more than this test's margin: the s47 descriptor test failed
 * in CI so).
 */
function linkEnds(port: number): number {
  const accepted = new Set<string>();
  for (const table of ["/proc/self/net/tcp", "/proc/self/net/tcp6"]) {
    let rows: string[];
    try {
      rows = Deno.readTextFileSync(table).split("\n").slice(1);
    } catch {
      continue; // no IPv6
    }
    for (const row of rows) {
      // sl local_address rem_address st ... inode: a local address is hex `ADDR:PORT`.
      const fields = row.trim().split(/\s+/);
      if (fields.length < 10) continue;
      const listening = fields[3] === "0A";
      if (!listening && parseInt(fields[1].split(":")[1], 16) === port) accepted.add(fields[9]);
    }
  }
  let ends = 0;
  for (const { name } of Deno.readDirSync("/proc/self/fd")) {
    try {
      const inode = Deno.readLinkSync(`/proc/self/fd/${name}`).match(/^socket:\[(\d+)\]$/)?.[1];
      if (inode !== undefined && accepted.has(inode)) ends++;
    } catch {
      // closed meanwhile
    }
  }
  return ends;
}

Deno.test({
  name:
    "swarm review s45: link connections that never send the host's header are held a bounded number at a time",
  ignore: Deno.build.os !== "linux",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const K = 1_000;
    const { dir, nodePath } = await script(`exec node ${FAKE_HOST}`);
    const peers: SwarmPeer[] = [];
    const delivered = Promise.withResolvers<void>();
    // Loopback TCP (the link where no socket file can be made): any local user may connect.
    const host = await SwarmHost.start({
      ...base(),
      nodePath,
      link: "tcp",
      onPeer: (p) => {
        peers.push(p);
        delivered.resolve();
      },
    });
    const strangers: Deno.TcpConn[] = [];
    try {
      const port = (host.linkAddress as { dataPort: number }).dataPort;
      // Another local user's process connects again and again and never writes: each
      // connection waited 5 s for a header, so a few thousand a second held as many of the
      // node's file descriptors (its peers', its storage's) for nothing.
      for (let i = 0; i < K; i++) {
        strangers.push(await Deno.connect({ hostname: "127.0.0.1", port }));
      }
      // The host's own connection, accepted after all of theirs, still reaches the node.
      const topic = new Uint8Array(32);
      topic[0] = 1;
      await host.join(topic);
      await settled(delivered.promise, "the host's connection handed on");
      // The node's ends it did not close (this process holds the strangers' ends too).
      const held = linkEnds(port);
      assert.ok(held <= 300, `${held} link connections without a header held by the node`);
    } finally {
      for (const s of strangers) s.close();
      for (const p of peers) p.close();
      await host.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "the swarm host's process gets none of the node's environment (its API keys, NODE_OPTIONS)",
  sanitizeResources: false,
  async fn() {
    // A stand-in `node` that writes the environment it was given, then exits before it is ready.
    const { dir, nodePath } = await script(`env > "$(dirname "$0")/env"\nexit 3`);
    try {
      // The node is a process of its own with the key in its environment (`_swarm_env_child.ts`):
      // set in this one, it was every test file's under `--parallel`, and a node another file
      // spawned meanwhile took it and refused that file's keyless requests.
      const node = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", "--quiet", ENV_CHILD, nodePath],
        env: { VERIFLOW_HTTP_API_KEYS: "s45-secret-key" },
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.equal(node.code, 0, new TextDecoder().decode(node.stderr));
      const env = await Deno.readTextFile(`${dir}/env`);
      assert.ok(!env.includes("s45-secret-key"), env);
      assert.match(env, /^NODE_NO_WARNINGS=1$/m);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
