/**
 * The swarm host: Hyperswarm in a supervised Node.js child, peers delivered to Deno as byte
 * duplexes whose Noise-authenticated key is the key the connection layer's handshake proves.
 * Runs a local DHT testnet on 127.0.0.1 (no traffic leaves the machine).
 */
import assert from "node:assert/strict";
import { SwarmHost, type SwarmPeer } from "../../network/swarm_host.ts";
import { startLocalTestnet } from "../../network/swarm_testnet.ts";
import { Identity } from "../../protocols/identity.ts";
import { Connection } from "../../protocols/connection.ts";
import { INFERENCE_PROTOCOL } from "../../protocols/inference_messages.ts";
import { toHex } from "../../protocols/hash.ts";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { createSocket } from "node:dgram";
import { eventually } from "../_helpers/wait.ts";

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
    "swarm host: two nodes meet on a topic; the Noise key is the key the connection proves; a killed host is restarted and rejoins",
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
    "swarm host: a peer's first bytes reach the node in order, on the socket's own byte stream, whether they came with the connection's header or after it",
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
        await host.join(topic);
        const peer = await peers.next();
        assert.equal(toHex(peer.remoteKey), "07".repeat(32));
        assert.equal(peer.initiator, true);
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
