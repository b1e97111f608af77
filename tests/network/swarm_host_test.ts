/**
 * The swarm host (`network/swarm_host.ts`, `network/swarm/host.mjs`): Hyperswarm in a supervised
 * Node.js child, its start, its topics joined again with other options, its leave and stop, Ctrl-C in
 * a terminal, and its refusal to run under Deno's `node` stand-in.
 */
import assert from "node:assert/strict";
import { SwarmHost, SwarmHostError, type SwarmPeer } from "../../network/swarm_host.ts";
import { startLocalTestnet } from "../../network/swarm_testnet.ts";
import { Identity } from "../../protocols/identity.ts";
import { Connection } from "../../protocols/connection.ts";
import { INFERENCE_PROTOCOL } from "../../protocols/inference_messages.ts";
import { toHex } from "../../protocols/hash.ts";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { createSocket } from "node:dgram";
import { eventually } from "../_helpers/wait.ts";
import { denoStandInNode } from "../../network/_swarm_node_path.ts";
import { base, script, settled } from "./_swarm_host_fixture.ts";

// ---- swarm host -----------------------------------------------------------------------------------
// The swarm host: Hyperswarm in a supervised Node.js child, peers delivered to Deno as byte
// duplexes whose Noise-authenticated key is the key the connection layer's handshake proves. Runs a
// local DHT testnet on 127.0.0.1 (no traffic leaves the machine).

/** A queue of the peers a host delivers; waiting for one fails the test instead of hanging it. */
function peerQueue() {
  const peers: SwarmPeer[] = [];
  return {
    onPeer: (peer: SwarmPeer) => peers.push(peer),
    async next(): Promise<SwarmPeer> {
      await eventually(() => peers.length > 0, "a peer connection");
      return peers.shift()!;
    },
  };
}

Deno.test({
  name:
    "swarm host: a node dials a peer by its key when they share no topic; the dial is kept across a restart of its host",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const testnet = await startLocalTestnet();
    const [a, b] = [Identity.generate(), Identity.generate()];
    const [qa, qb] = [peerQueue(), peerQueue()];
    const common = { bootstrap: testnet.bootstrap, bind: "127.0.0.1" };
    const hostA = await SwarmHost.start({
      ...common,
      identity: a,
      onPeer: qa.onPeer,
      restart: { initialMs: 10, maxMs: 10 },
    });
    const hostB = await SwarmHost.start({ ...common, identity: b, onPeer: qb.onPeer });
    try {
      // B announces itself on a topic A never looks up; A looks up one B is not on.
      await hostB.join(crypto.getRandomValues(new Uint8Array(32)), { client: false });
      await hostA.join(crypto.getRandomValues(new Uint8Array(32)), { server: false });
      assert.throws(() => hostA.dial(a.publicKey), /does not dial itself/);
      assert.throws(() => hostA.dial(new Uint8Array(31)), /32 bytes/);
      hostA.dial(b.publicKey);
      assert.deepEqual([...hostA.dialled], [toHex(b.publicKey)]);
      const [pa, pb] = await Promise.all([qa.next(), qb.next()]);
      assert.equal(toHex(pa.remoteKey), toHex(b.publicKey));
      assert.equal(toHex(pb.remoteKey), toHex(a.publicKey));
      assert.ok(pa.initiator && !pb.initiator, "A dialled B");
      // Bytes both ways, as a node's handshake sends: Hyperswarm then takes a newer connection
      // from the same peer for a reconnect (with none, it may keep the dead one for a while).
      for (const [from, to] of [[pa, pb], [pb, pa]]) {
        const writer = from.duplex.writable.getWriter();
        await writer.write(new Uint8Array([1]));
        writer.releaseLock();
        const reader = to.duplex.readable.getReader();
        assert.deepEqual((await reader.read()).value, new Uint8Array([1]));
        reader.releaseLock();
      }
      // A's host dies: the restarted host dials B again.
      Deno.kill(hostA.pid!, "SIGKILL");
      const again = await qb.next();
      assert.equal(toHex(again.remoteKey), toHex(a.publicKey));
      assert.equal(hostA.restarts, 1);
      hostA.undial(b.publicKey);
      assert.equal(hostA.dialled.size, 0);
      again.close();
    } finally {
      await hostA.close();
      await hostB.close();
      await testnet.stop();
    }
  },
});

Deno.test({
  name:
    "swarm host: two nodes meet on a topic; the Noise key is the key the connection proves; each peer handed on carries the address its UDP stream comes from; a killed host is restarted and rejoins",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const testnet = await startLocalTestnet();
    const [a, b] = [Identity.generate(), Identity.generate()];
    const [qa, qb] = [peerQueue(), peerQueue()];
    const states: string[] = [];
    const logs: string[] = [];
    const common = {
      bootstrap: testnet.bootstrap,
      bind: "127.0.0.1",
      log: (l: string) => logs.push(l),
    };
    const hostA = await SwarmHost.start({
      ...common,
      identity: a,
      onPeer: qa.onPeer,
      onState: (s) => states.push(s),
      restart: { initialMs: 10, maxMs: 10 },
    });
    const hostB = await SwarmHost.start({ ...common, identity: b, onPeer: qb.onPeer });
    try {
      assert.deepEqual(hostA.publicKey, a.publicKey, "the swarm key pair is the node's identity");
      const topic = crypto.getRandomValues(new Uint8Array(32));
      await hostA.join(topic);
      await hostB.join(topic);
      const [pa, pb] = await Promise.all([qa.next(), qb.next()]);
      assert.equal(toHex(pa.remoteKey), toHex(b.publicKey));
      assert.equal(toHex(pb.remoteKey), toHex(a.publicKey));
      assert.notEqual(pa.initiator, pb.initiator, "one side dialled");
      // Each side's UDX stream comes from the other's DHT socket, bound to the testnet's address
      // (a direct connection: nothing relays on a testnet whose nodes say they are not firewalled).
      assert.equal(pa.remoteHost, "127.0.0.1", "A's peer's address");
      assert.equal(pb.remoteHost, "127.0.0.1", "B's peer's address");
      // The connection layer's own handshake over the swarm's bytes proves the same keys.
      const protocols = [INFERENCE_PROTOCOL];
      const [ca, cb] = await Promise.all([
        Connection.open(pa.duplex, { identity: a, protocols }),
        Connection.open(pb.duplex, { identity: b, protocols }),
      ]);
      assert.equal(toHex(ca.peerKey!), toHex(pa.remoteKey));
      assert.equal(toHex(cb.peerKey!), toHex(pb.remoteKey));
      await ca.close();
      await cb.close();

      // The host dies: reported down, restarted, up again, the topic joined again, and the
      // peers meet again.
      Deno.kill(hostA.pid!, "SIGKILL");
      const again = await qb.next();
      assert.equal(toHex(again.remoteKey), toHex(a.publicKey));
      assert.equal(hostA.restarts, 1);
      assert.deepEqual(states, ["up", "down", "up"]);
      assert.ok(logs.some((l) => l.includes("restarting")), logs.join("\n"));
      again.close();
    } finally {
      await hostA.close();
      await hostB.close();
      await testnet.stop();
    }
  },
});

Deno.test({
  name:
    "swarm host: a peer's first bytes reach the node in order, on the socket's own byte stream, whether they came with the connection's header or after it, with an address in the header or none",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    // A stand-in host (no DHT): each join delivers one connection, the peer's first bytes in
    // the same write as the header or 100 ms later.
    const dir = await Deno.makeTempDir({ prefix: "veriflow-fake-host-" });
    const nodePath = join(dir, "node");
    const fake = fileURLToPath(new URL("./_fake_swarm_host.mjs", import.meta.url));
    await Deno.writeTextFile(nodePath, `#!/bin/sh\nexec node ${fake}\n`, { mode: 0o755 });
    const peers = peerQueue();
    const host = await SwarmHost.start({
      identity: Identity.generate(),
      bootstrap: [],
      nodePath,
      onPeer: peers.onPeer,
    });
    try {
      for (const withHeader of [true, false]) {
        const topic = new Uint8Array(32);
        topic[0] = withHeader ? 1 : 0;
        topic[31] = withHeader ? 0xaa : 0xbb;
        topic[1] = withHeader ? 9 : 0; // the stand-in's address 192.0.2.9, or none
        await host.join(topic);
        const peer = await peers.next();
        assert.equal(toHex(peer.remoteKey), "07".repeat(32));
        assert.equal(peer.initiator, true);
        assert.equal(peer.remoteHost, withHeader ? "192.0.2.9" : undefined, "its address");
        // The socket's own byte stream either way, as a Connection reads it: BYOB reads into
        // the reader's buffer (a header read that took the peer's first bytes too made this a
        // stream without BYOB reads, and every chunk a copy).
        const reader = peer.duplex.readable.getReader({ mode: "byob" });
        // Bytes that never come fail the test instead of hanging it: the socket is cut.
        const giveUp = setTimeout(() => peer.close(), 10_000);
        let got = new Uint8Array(0);
        while (got.length < 5) {
          const { value, done } = await reader.read(new Uint8Array(64));
          assert.ok(!done && value !== undefined, "the peer's bytes arrive");
          got = new Uint8Array([...got, ...value]);
        }
        clearTimeout(giveUp);
        assert.deepEqual([...got], new Array(5).fill(topic[31]), `with header: ${withHeader}`);
        peer.close();
      }
    } finally {
      await host.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "swarm host: a bootstrap nobody answers at is said once, naming it and --swarm-bootstrap; a live one is not",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    // A UDP port on loopback that nothing listens on: bound, then closed.
    const probe = createSocket("udp4");
    await new Promise<void>((resolve) => probe.bind(0, "127.0.0.1", resolve));
    const dead = `127.0.0.1:${probe.address().port}`;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const testnet = await startLocalTestnet();
    const deadLogs: string[] = [];
    const liveLogs: string[] = [];
    const common = { bind: "127.0.0.1", onPeer: () => {} };
    const lonely = await SwarmHost.start({
      ...common,
      identity: Identity.generate(),
      bootstrap: [dead],
      log: (l: string) => deadLogs.push(l),
    });
    const live = await SwarmHost.start({
      ...common,
      identity: Identity.generate(),
      bootstrap: testnet.bootstrap,
      log: (l: string) => liveLogs.push(l),
    });
    try {
      const warned = () => deadLogs.some((l) => l.includes("no DHT node answered"));
      for (let i = 0; i < 300 && !warned(); i++) await new Promise((r) => setTimeout(r, 100));
      const line = deadLogs.find((l) => l.includes("no DHT node answered"));
      assert.ok(line, deadLogs.join("\n"));
      assert.ok(line.includes(dead), line);
      assert.ok(line.includes("--swarm-bootstrap"), line);
      // The live host bootstrapped meanwhile (a join needs it): it said nothing of the kind.
      await live.join(crypto.getRandomValues(new Uint8Array(32)));
      assert.ok(!liveLogs.some((l) => l.includes("no DHT node answered")), liveLogs.join("\n"));
    } finally {
      await lonely.close();
      await live.close();
      await testnet.stop();
    }
  },
});

// ---- swarm host leave -----------------------------------------------------------------------------
// A swarm host asked to stop leaves the swarm within its leave grace and exits on its own, even
// when no DHT node can be reached any more: it was killed by the node 5 s later instead, while the
// network actor's stop was abandoned at the same moment (a node stopped after its testnet, or with
// its network gone, took 5 s and warned "postStop … did not finish").

/** A host on `bootstrap` with its log collected, joined to one topic. */
async function joinedHost(bootstrap: string[], leaveGraceMs: number) {
  const log: string[] = [];
  const host = await SwarmHost.start({
    identity: Identity.generate(),
    bootstrap,
    bind: "127.0.0.1",
    onPeer: (peer) => peer.close(),
    log: (line) => log.push(line),
    leaveGraceMs,
  });
  await host.join(crypto.getRandomValues(new Uint8Array(32)), { server: true, client: true });
  return { host, log };
}

Deno.test("a host whose DHT is gone gives up leaving after its grace and exits by itself, not killed", async () => {
  const testnet = await startLocalTestnet();
  let stopped = false;
  try {
    const { host, log } = await joinedHost(testnet.bootstrap, 300);
    await testnet.stop();
    stopped = true;
    await host.close();
    assert.ok(
      log.some((line) => line.includes("could not leave the swarm within 300 ms")),
      `the host says why it left uncleanly:\n${log.join("\n")}`,
    );
    assert.deepEqual(log.filter((line) => line.includes("killed")), [], "and was not killed");
  } finally {
    if (!stopped) await testnet.stop();
  }
});

Deno.test("a host whose DHT answers leaves cleanly: no give-up line", async () => {
  const testnet = await startLocalTestnet();
  try {
    const { host, log } = await joinedHost(testnet.bootstrap, 4_000);
    await host.close();
    assert.deepEqual(log.filter((line) => /could not leave|killed/.test(line)), []);
  } finally {
    await testnet.stop();
  }
});

Deno.test("leaveGraceMs outside 1 … 4,999 ms is refused", async () => {
  for (const leaveGraceMs of [0, 5_000, 1.5, NaN]) {
    await assert.rejects(
      SwarmHost.start({ identity: Identity.generate(), bootstrap: [], onPeer() {}, leaveGraceMs }),
      (error: Error) => error instanceof RangeError && error.message.includes("leaveGraceMs"),
    );
  }
});

// ---- swarm host rejoin ----------------------------------------------------------------------------
// join(topic) again with other options: the node records the new ones (and a restarted host joins
// with them), but the running host only added a Hyperswarm session to the topic: the first
// session's `server` stayed, so the node kept announcing a topic it asked only to look up (a review
// at stop 34). The host now leaves the topic and joins it again with the new options, and runs the
// ops on one topic one after another.

/**
 * A host on a fresh local testnet, a random topic it joined, and whether the DHT lists the host
 * among the topic's announcers now.
 */
function withJoinedHost(
  fn: (host: SwarmHost, topic: Uint8Array, announced: () => Promise<boolean>) => Promise<void>,
) {
  return async () => {
    const testnet = await startLocalTestnet();
    const host = await SwarmHost.start({
      identity: Identity.generate(),
      bootstrap: testnet.bootstrap,
      bind: "127.0.0.1",
      onPeer: (p) => p.close(),
    });
    const topic = crypto.getRandomValues(new Uint8Array(32));
    const lookup = fileURLToPath(new URL("./_dht_lookup.mjs", import.meta.url));
    const announced = async () => {
      const out = await new Deno.Command("node", {
        args: [lookup, testnet.bootstrap[0], toHex(topic)],
      }).output();
      const keys: string[] = JSON.parse(new TextDecoder().decode(out.stdout));
      return keys.includes(toHex(host.publicKey));
    };
    try {
      await host.join(topic); // server + client
      assert.ok(await announced(), "announced after the first join");
      await fn(host, topic, announced);
    } finally {
      await host.close();
      await testnet.stop();
    }
  };
}

Deno.test({
  name: "swarm host: joining a topic again as client only stops announcing it",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: withJoinedHost(async (host, topic, announced) => {
    await host.join(topic, { server: false, client: true }); // resolved: "joined"
    assert.ok(!(await announced()), "still announced as client only");
    await host.join(topic); // and announced again when asked
    assert.ok(await announced());
  }),
});

Deno.test({
  name: "swarm host: a join with other options then a leave at once ends with the topic left",
  sanitizeResources: false,
  sanitizeOps: false,
  // The rejoin leaves the topic first; a leave sent meanwhile used to finish during it, and the
  // join then announced the topic again after the node was told "left" (a review at stop 34).
  fn: withJoinedHost(async (host, topic, announced) => {
    const rejoin = host.join(topic, { server: true, client: false }).catch((e) => e);
    await host.leave(topic); // the host answers in order: the join is done by now
    await rejoin;
    assert.ok(!(await announced()), "the node left the topic, yet its host still announces it");
  }),
});

// ---- swarm host sigint ----------------------------------------------------------------------------
// Ctrl-C in a terminal sends SIGINT to the whole foreground process group: the Deno node and its
// swarm host (spawned in the same group). The node stops gracefully; the host should stay up until
// the node closes it (leaving the swarm cleanly). Run the node stand-in in its own group (setsid)
// and send SIGINT to that group, as a terminal does. (The host used to die of it, and the node
// logged a crash and started a new host mid-shutdown: a review at stop 34.)

const CHILD = fileURLToPath(new URL("./_swarm_sigint_child.ts", import.meta.url));

/** Send `signal` to the process group of a node stand-in, as a terminal does; what it saw. */
async function signalGroup(signal: "SIGINT" | "SIGHUP" | "SIGTERM") {
  const child = new Deno.Command("setsid", {
    args: [Deno.execPath(), "run", "-A", CHILD, signal],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let out = "";
  while (!out.includes("READY")) {
    const { value, done } = await reader.read();
    if (done) break;
    out += value;
  }
  // The terminal's Ctrl-C, or its hangup: the signal to every process of the group.
  const kill = await new Deno.Command("kill", {
    args: [`-${signal.slice(3)}`, "--", `-${child.pid}`],
  }).output();
  assert.equal(kill.code, 0);
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    out += value;
  }
  await child.status;
  return JSON.parse(out.trim().split("\n").at(-1)!);
}

Deno.test("swarm host: Ctrl-C (SIGINT to the process group) does not kill the host under a node that stops gracefully", async () => {
  const result = await signalGroup("SIGINT");
  assert.deepEqual(
    {
      restarts: result.restarts,
      states: result.states,
      samePid: result.pidAtClose === result.firstPid,
    },
    { restarts: 0, states: ["up"], samePid: true },
    "the host died of the SIGINT and was restarted during the node's graceful stop",
  );
});

// A closed terminal or SSH session hangs the group up: the node drains on SIGHUP as on SIGTERM
// (node/stop_signals.ts), and the host died of it and was restarted mid-drain (review s72).
Deno.test("swarm host: a hangup (SIGHUP to the process group) does not kill the host under a node that stops gracefully", async () => {
  const result = await signalGroup("SIGHUP");
  assert.deepEqual(
    {
      restarts: result.restarts,
      states: result.states,
      samePid: result.pidAtClose === result.firstPid,
    },
    { restarts: 0, states: ["up"], samePid: true },
    "the host died of the SIGHUP and was restarted during the node's graceful stop",
  );
});

// systemd's default stop (KillMode=control-group) sends SIGTERM to every process of the node's
// group at once, like `kill -TERM -PGID`: the host left the swarm at the start of the node's
// drain, and the node restarted it mid-shutdown (review s78, finding 1).
Deno.test("swarm host: SIGTERM to the process group (systemd's stop) does not kill the host under a node that stops gracefully", async () => {
  const result = await signalGroup("SIGTERM");
  assert.deepEqual(
    {
      restarts: result.restarts,
      states: result.states,
      samePid: result.pidAtClose === result.firstPid,
    },
    { restarts: 0, states: ["up"], samePid: true },
    `the host died of the SIGTERM and was restarted during the node's graceful stop: ${
      JSON.stringify(result.logs)
    }`,
  );
});

// Once the node has begun to stop (the NetworkActor's signal aborted, before its postStop closes
// the host), a host that exits is not restarted: a new one would join every topic again and
// announce the node on the DHT while it shuts down (review s78, finding 1).
Deno.test({
  name: "swarm host: a host that exits after the owner's signal aborted is not restarted",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const stop = new AbortController();
    const logs: string[] = [];
    const states: string[] = [];
    const host = await SwarmHost.start({
      identity: Identity.generate(),
      bootstrap: [],
      bind: "127.0.0.1",
      restart: { initialMs: 10, maxMs: 10 },
      signal: stop.signal,
      onPeer: (peer) => peer.close(),
      onState: (state) => states.push(state),
      log: (line) => logs.push(line),
    });
    try {
      stop.abort();
      const killed = host.pid!;
      Deno.kill(killed, "SIGKILL");
      await eventually(
        () => logs.some((line) => line.startsWith("swarm host exited")),
        "the host's exit to be logged",
      );
      assert.deepEqual(
        { restarts: host.restarts, states, pid: host.pid },
        { restarts: 0, states: ["up"], pid: killed },
        JSON.stringify(logs),
      );
      assert.ok(logs.some((line) => line.includes("while the node stops: not restarted")));
    } finally {
      await host.close();
    }
  },
});

// ---- ops2 stand in node ---------------------------------------------------------------------------
// With no Node.js installed, Deno answers `node` with its own stand-in
// (`~/.cache/deno/node_compat_bin/node`, put first on the PATH it gives child processes), and the
// swarm host died in it with `symbol lookup error: …/udx-native.node: undefined symbol:
// uv_interface_addresses`: nothing said Node.js was missing. The swarm host now refuses to start
// under the stand-in, with a sentence that says so, before it runs anything.

/** A directory named like Deno's, holding an executable `node` that records that it ran. */
async function standIn(): Promise<{ dir: string; bin: string; nodePath: string }> {
  const { dir } = await script("true", "veriflow-stand-in-");
  const bin = join(dir, "node_compat_bin");
  await Deno.mkdir(bin);
  const nodePath = join(bin, "node");
  await Deno.writeTextFile(nodePath, `#!/bin/sh\necho ran > "${dir}/ran"\nexit 127\n`, {
    mode: 0o755,
  });
  return { dir, bin, nodePath };
}

Deno.test({
  name: "the swarm host refuses Deno's stand-in node with a sentence naming it, and runs nothing",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const { dir, nodePath } = await standIn();
    try {
      const error = await settled(
        SwarmHost.start({ ...base(), nodePath }).then(() => undefined, (e) => e),
        "start()",
      );
      assert.ok(error instanceof SwarmHostError, `start() rejects: ${error}`);
      assert.match(error.message, /is Deno's stand-in, not Node\.js/);
      assert.match(error.message, /install Node\.js 20 or later, or set the path to it/);
      assert.ok(error.message.includes(nodePath), error.message);
      await assert.rejects(Deno.stat(join(dir, "ran")), Deno.errors.NotFound, "nothing ran");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("a bare `node` is looked up on the PATH: the stand-in first on it is named; a real node first is not", async () => {
  const { dir, bin } = await standIn();
  const real = join(dir, "real");
  await Deno.mkdir(real);
  await Deno.writeTextFile(join(real, "node"), "#!/bin/sh\n", { mode: 0o755 });
  try {
    assert.equal(denoStandInNode("node", `${bin}:${real}`), join(bin, "node"));
    assert.equal(denoStandInNode("node", `${real}:${bin}`), undefined);
    assert.equal(denoStandInNode("node", `${join(dir, "none")}`), undefined);
    assert.equal(denoStandInNode(join(real, "node"), bin), undefined, "a path is taken as given");
    assert.equal(denoStandInNode(join(bin, "node"), real), join(bin, "node"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
