/**
 * The link between a node and its swarm host (`network/swarm_link.ts`): its transport (a Unix
 * socket or loopback TCP), bytes through two hosts whole and in order, and the header read of the
 * host's connections on it.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { SwarmHost, type SwarmHostOptions, type SwarmPeer } from "../../network/swarm_host.ts";
import { Identity } from "../../protocols/identity.ts";
import { fromHex, toHex } from "../../protocols/hash.ts";
import type { SwarmLinkKind } from "../../network/swarm_link.ts";
import { startLocalTestnet } from "../../network/swarm_testnet.ts";
import { collect } from "../storage/_helpers.ts";
import { eventually, EVENTUALLY_GIVE_UP_MS } from "../_helpers/wait.ts";

// ---- swarm link -----------------------------------------------------------------------------------
// The link between a node and its swarm host (`network/swarm_link.ts`): a Unix socket in a private
// directory by default, the secret token still checked on it, and loopback TCP when asked or when
// no socket file can be made. A stand-in host (`_fake_swarm_host.mjs`, no DHT) delivers one peer
// per join, with the real token, over whichever link the node offers.

const FAKE_HOST = fileURLToPath(new URL("./_fake_swarm_host.mjs", import.meta.url));
/** The stand-in host's "peer" key (`_fake_swarm_host.mjs`). */
const FAKE_PEER_KEY = "07".repeat(32);

/** A SwarmHost running the stand-in host; its peers in a queue. */
async function startFake(dir: string, options: Partial<SwarmHostOptions> = {}) {
  const nodePath = join(dir, "node");
  await Deno.writeTextFile(nodePath, `#!/bin/sh\nexec node ${FAKE_HOST}\n`, { mode: 0o755 });
  const peers: SwarmPeer[] = [];
  const firstPeer = Promise.withResolvers<void>();
  let wake: (() => void) | undefined;
  const host = await SwarmHost.start({
    identity: Identity.generate(),
    bootstrap: [],
    nodePath,
    onPeer: (peer) => {
      peers.push(peer);
      firstPeer.resolve();
      wake?.();
    },
    ...options,
  });
  return {
    host,
    async nextPeer(): Promise<SwarmPeer> {
      while (peers.length === 0) await new Promise<void>((resolve) => wake = resolve);
      return peers.shift()!;
    },
    /** Resolves when the first peer is delivered. */
    firstPeer: firstPeer.promise,
  };
}

/** Join a topic on the stand-in host and read the five bytes its peer sends first. */
async function deliveredPeerWorks(fake: Awaited<ReturnType<typeof startFake>>, mark: number) {
  const topic = new Uint8Array(32);
  topic[0] = 1; // the peer's first bytes come with the header
  topic[31] = mark;
  await fake.host.join(topic);
  const peer = await fake.nextPeer();
  assert.equal(toHex(peer.remoteKey), FAKE_PEER_KEY);
  const reader = peer.duplex.readable.getReader();
  const giveUp = setTimeout(() => peer.close(), 10_000); // bytes that never come fail, not hang
  let got: number[] = [];
  while (got.length < 5) {
    const { value, done } = await reader.read();
    assert.ok(!done, "the peer's bytes arrive");
    got = [...got, ...value];
  }
  clearTimeout(giveUp);
  assert.deepEqual(got, new Array(5).fill(mark));
  peer.close();
}

Deno.test({
  name:
    "swarm link: a Unix socket in a 0700 directory by default; a connection without the token is refused and yields no peer; the socket is removed on close",
  ignore: Deno.build.os === "windows",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "veriflow-link-" });
    const fake = await startFake(dir);
    let path = "";
    try {
      assert.equal(fake.host.link, "unix");
      const address = fake.host.linkAddress;
      assert.ok("dataPath" in address, JSON.stringify(address));
      path = address.dataPath;
      assert.ok((await Deno.lstat(path)).isSocket, "a socket file");
      const socketDir = path.slice(0, path.lastIndexOf("/"));
      assert.equal((await Deno.stat(socketDir)).mode! & 0o777, 0o700, "only this user enters");

      // Another local process: a full header with the wrong token, then bytes.
      const intruder = await Deno.connect({ path, transport: "unix" });
      await intruder.write(new Uint8Array(66 + 5).fill(0x42));
      const closedByNode = intruder.read(new Uint8Array(16)).then(
        (n) => n === null ? "closed" : "bytes", // EOF: the node closed it
        () => "closed", // or reset it
      );
      // Accepted as a peer, it would reach onPeer instead (and never be closed).
      const outcome = await Promise.race([closedByNode, fake.firstPeer.then(() => "peer")]);
      intruder.close();
      assert.equal(outcome, "closed", "the node closes a connection without the token");

      // The host's own connection, token first, still goes through: the next peer is the
      // host's, not the intruder's.
      await deliveredPeerWorks(fake, 0xaa);
    } finally {
      await fake.host.close();
    }
    await assert.rejects(Deno.lstat(path), Deno.errors.NotFound, "socket file removed");
    await assert.rejects(
      Deno.lstat(path.slice(0, path.lastIndexOf("/"))),
      Deno.errors.NotFound,
      "its directory removed",
    );
    await Deno.remove(dir, { recursive: true });
  },
});

Deno.test({
  name:
    "swarm link: loopback TCP when asked, and as the fallback (logged) when no socket file can be made; peers arrive either way",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "veriflow-link-" });
    try {
      const chosen = await startFake(dir, { link: "tcp" });
      try {
        assert.equal(chosen.host.link, "tcp");
        assert.ok("dataPort" in chosen.host.linkAddress);
        await deliveredPeerWorks(chosen, 0x11);
      } finally {
        await chosen.host.close();
      }

      // A socket directory whose socket path would be too long for the platform.
      const logs: string[] = [];
      const fallback = await startFake(dir, {
        socketDir: join(dir, "d".repeat(120)),
        log: (line) => logs.push(line),
      });
      try {
        assert.equal(fallback.host.link, "tcp");
        assert.ok(logs.some((l) => l.includes("using loopback TCP")), logs.join("\n"));
        await deliveredPeerWorks(fallback, 0x22);
      } finally {
        await fallback.host.close();
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

// ---- swarm transfer -------------------------------------------------------------------------------
// Bytes through two swarm hosts (`network/swarm/host.mjs`) on a local DHT testnet: a bulk transfer
// each way arrives whole and in order, and a half-close crosses both hosts. The host gathers the
// node's writes into messages that are views of a shared read arena: bytes overwritten, reordered,
// dropped or duplicated on the way show up here as a mismatch, and a half-close that cut the data
// still in flight (the host once did) as a short transfer.
//
// The second transfer's receiver holds too: once B has sent everything and closed, B's
// Hyperswarm connects to A again at once (the topic is still joined), and A's keeps the new
// connection and destroys the old one while A's node has not read it. The host once handed the
// peer's bytes on through a stream.pipeline, and lost with the old stream everything it held
// (1 in 6 full runs under load; every run with this hold: A got ~210 KiB of 5 MiB).

/** More than a few arenas' worth (1 MiB each), in writes of uneven sizes. */
const TRANSFER_BYTES = 5 * 1024 * 1024 + 12_345;

/** How long the receiver of each transfer waits before reading. */
const HOLD_MS = 500;

/** Bytes no shifted, repeated or zeroed window of which matches the original. */
function pattern(length: number, seed: number): Uint8Array {
  const bytes = new Uint8Array(length);
  let x = seed;
  for (let i = 0; i < length; i++) {
    x = (Math.imul(x, 1_103_515_245) + 12_345) >>> 0;
    bytes[i] = x >>> 24;
  }
  return bytes;
}

/** Write `bytes` in chunks of 1 byte to 256 KiB, then close (a half-close: FIN only). */
async function sendAll(peer: SwarmPeer, bytes: Uint8Array): Promise<void> {
  const writer = peer.duplex.writable.getWriter();
  const sizes = [1, 65_536, 7, 200 * 1024, 4_096, 100_003, 262_144, 3];
  for (let at = 0, i = 0; at < bytes.length; i++) {
    const end = Math.min(bytes.length, at + sizes[i % sizes.length]);
    await writer.write(bytes.slice(at, end));
    at = end;
  }
  await writer.close();
}

/**
 * Everything until the readable ends (the other side's half-close reached us). Reading starts
 * only after `holdMs`: meanwhile the sender's host backs up (seen: its link reads paused dozens
 * of times for 5 MiB), so the transfer crosses the backpressure paths too.
 */
async function receiveAll(peer: SwarmPeer, holdMs: number): Promise<Uint8Array> {
  await new Promise((resolve) => setTimeout(resolve, holdMs));
  return await collect(peer.duplex.readable);
}

function firstDifference(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : n;
}

for (const link of ["unix", "tcp"] as const) {
  Deno.test({
    name:
      `swarm transfer (${link} link): bytes cross two hosts whole and in order both ways; a half-close ends the other side's readable`,
    ignore: link === "unix" && Deno.build.os === "windows",
    sanitizeResources: false,
    sanitizeOps: false,
    fn: () => transferBothWays(link),
  });
}

async function transferBothWays(link: SwarmLinkKind): Promise<void> {
  const testnet = await startLocalTestnet();
  const peers = [Promise.withResolvers<SwarmPeer>(), Promise.withResolvers<SwarmPeer>()];
  const hosts: SwarmHost[] = [];
  try {
    for (const found of peers) {
      hosts.push(
        await SwarmHost.start({
          identity: Identity.generate(),
          bootstrap: testnet.bootstrap,
          bind: "127.0.0.1",
          onPeer: (peer) => found.resolve(peer),
          link,
        }),
      );
    }
    const topic = crypto.getRandomValues(new Uint8Array(32));
    assert.deepEqual(hosts.map((host) => host.link), [link, link]);
    await Promise.all(hosts.map((host) => host.join(topic)));
    const [a, b] = await Promise.all(peers.map((found) => found.promise));
    // A peer whose bytes never come fails the test instead of hanging it.
    const giveUp = setTimeout(() => [a, b].forEach((peer) => peer.close()), 60_000);
    try {
      const there = pattern(TRANSFER_BYTES, 1);
      const back = pattern(TRANSFER_BYTES - 777, 2);
      // A first, then B answers only after A's half-close ended its readable: the close has
      // to cross both hosts while the other direction stays open.
      const [received] = await Promise.all([receiveAll(b, HOLD_MS), sendAll(a, there)]);
      assert.equal(firstDifference(received, there), -1, "A → B arrives whole and in order");
      const [returned] = await Promise.all([receiveAll(a, HOLD_MS), sendAll(b, back)]);
      assert.equal(firstDifference(returned, back), -1, "B → A arrives whole and in order");
    } finally {
      clearTimeout(giveUp);
      a.close();
      b.close();
    }
  } finally {
    await Promise.all(hosts.map((host) => host.close()));
    await testnet.stop();
  }
}

// ---- header ---------------------------------------------------------------------------------------
// The swarm link's header read (`SwarmHost`'s accept, BYOB): the header probes talk to the node's
// link directly: a stand-in host (written below) answers the host protocol and leaves its config
// (the link's address and token) in a file, so a test can be the host's side of a link connection
// and send the header any way it likes.

const QUIET_HOST = `
import { writeFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { createPrivateKey, createPublicKey } from "node:crypto";
const send = (event) => process.stdout.write(JSON.stringify(event) + "\\n");
let config = null;
createInterface({ input: process.stdin }).on("line", (line) => {
  const message = JSON.parse(line);
  if (config === null) {
    config = message;
    writeFileSync(process.argv[2], line);
    const key = createPrivateKey({
      key: Buffer.from("302e020100300506032b657004220420" + config.seed, "hex"),
      format: "der",
      type: "pkcs8",
    });
    const spki = createPublicKey(key).export({ format: "der", type: "spki" });
    send({ ev: "ready", publicKey: spki.subarray(-32).toString("hex") });
  } else if (message.op === "ping") send({ ev: "pong" });
});
process.stdin.on("close", () => process.exit(0));
`;

interface LinkConfig {
  token: string;
  dataPath?: string;
  dataPort?: number;
}

/** A node's swarm host on a stand-in that leaves the link open to the test. */
async function quietHost(link: "tcp" | "unix") {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-review-s41-" });
  const script = join(dir, "host.mjs");
  const configPath = join(dir, "config.json");
  await Deno.writeTextFile(script, QUIET_HOST);
  const nodePath = join(dir, "node");
  await Deno.writeTextFile(nodePath, `#!/bin/sh\nexec node ${script} ${configPath}\n`, {
    mode: 0o755,
  });
  const peers: SwarmPeer[] = [];
  const host = await SwarmHost.start({
    identity: Identity.generate(),
    bootstrap: [],
    nodePath,
    link,
    socketDir: dir,
    onPeer: (peer) => peers.push(peer),
  });
  const config = JSON.parse(await Deno.readTextFile(configPath)) as LinkConfig;
  const dial = (): Promise<Deno.Conn> =>
    config.dataPath !== undefined
      ? Deno.connect({ transport: "unix", path: config.dataPath })
      : Deno.connect({ hostname: "127.0.0.1", port: config.dataPort! });
  /**
   * The host's header (`swarm/host.mjs`): token ‖ key (32 bytes of 9) ‖ initiator (0) ‖ address
   * length ‖ address; `length` overrides the address's length byte.
   */
  const header = (token = fromHex(config.token), address = "", length?: number) => {
    const text = new TextEncoder().encode(address);
    const bytes = new Uint8Array(66 + text.length);
    bytes.set(token);
    bytes.fill(9, 32, 64);
    bytes[64] = 0;
    bytes[65] = length ?? text.length;
    bytes.set(text, 66);
    return bytes;
  };
  return {
    host,
    peers,
    dial,
    header,
    async close() {
      await host.close();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}

/**
 * Resolves when the socket's far side closed it (EOF or reset), or "open" after `ms`. Every use
 * here expects "closed": `ms` is the shared give-up time, a liveness guard, not a bound on how
 * fast the host closes (a loaded machine can take seconds to run its side).
 */
async function endsWithin(conn: Deno.Conn, ms: number): Promise<"closed" | "open"> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const open = new Promise<"open">((resolve) => timer = setTimeout(() => resolve("open"), ms));
  const ended = (async () => {
    const buf = new Uint8Array(64);
    try {
      while ((await conn.read(buf)) !== null) { /* nothing is sent to the host side */ }
    } catch {
      // reset
    }
    return "closed" as const;
  })();
  try {
    return await Promise.race([ended, open]);
  } finally {
    clearTimeout(timer);
  }
}

for (const link of ["tcp", "unix"] as const) {
  Deno.test({
    name:
      `swarm link (${link}): a header written a byte at a time, its address included, with the peer's first bytes in its last write, is one peer on the socket's byte stream`,
    sanitizeResources: false,
    sanitizeOps: false,
    fn: async () => {
      const q = await quietHost(link);
      const conn = await q.dial();
      try {
        const header = q.header(undefined, "2001:db8::7");
        const last = header.length - 1;
        for (let i = 0; i < last; i++) {
          await conn.write(header.subarray(i, i + 1));
          await new Promise((r) => setTimeout(r, 2));
        }
        await conn.write(new Uint8Array([header[last], 1, 2, 3]));
        await eventually(() => q.peers.length === 1, "the peer");
        const peer = q.peers[0];
        assert.deepEqual([...peer.remoteKey], new Array(32).fill(9));
        assert.equal(peer.initiator, false);
        assert.equal(peer.remoteHost, "2001:db8::7", "the address, read across writes");
        const reader = peer.duplex.readable.getReader({ mode: "byob" });
        let got: number[] = [];
        while (got.length < 3) {
          const { value, done } = await reader.read(new Uint8Array(16));
          assert.ok(!done && value !== undefined);
          got = [...got, ...value];
        }
        assert.deepEqual(got, [1, 2, 3]);
        peer.close();
      } finally {
        conn.close();
        await q.close();
      }
    },
  });

  Deno.test({
    name:
      `swarm link (${link}): a connection that ends mid-header, or brings a wrong token, is closed at once and is no peer`,
    sanitizeResources: false,
    sanitizeOps: false,
    fn: async () => {
      const q = await quietHost(link);
      try {
        const half = await q.dial();
        await half.write(q.header().subarray(0, 40));
        await half.closeWrite();
        assert.equal(await endsWithin(half, EVENTUALLY_GIVE_UP_MS), "closed", "ended mid-header");
        half.close();
        const wrong = await q.dial();
        await wrong.write(q.header(new Uint8Array(32)));
        assert.equal(await endsWithin(wrong, EVENTUALLY_GIVE_UP_MS), "closed", "wrong token");
        wrong.close();
        assert.equal(q.peers.length, 0);
      } finally {
        await q.close();
      }
    },
  });
}

Deno.test({
  name:
    "swarm link: a header with an address the host never sends (over 45 bytes, or not an IP address) is refused and is no peer; one with no address is a peer with none",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const q = await quietHost("unix");
    try {
      const bad = [
        q.header(undefined, "1".repeat(46)), // longer than any IP address
        q.header(undefined, "evil.example"), // a name, not an address
        q.header(undefined, "", 200), // a length over 45 (and no address after it)
      ];
      for (const header of bad) {
        const conn = await q.dial();
        await conn.write(header);
        assert.equal(await endsWithin(conn, EVENTUALLY_GIVE_UP_MS), "closed", String(header[65]));
        conn.close();
      }
      assert.equal(q.peers.length, 0, "no peer from a bad header");
      const none = await q.dial();
      await none.write(q.header());
      await eventually(() => q.peers.length === 1, "the peer with no address");
      assert.equal(q.peers[0].remoteHost, undefined);
      assert.ok(!("remoteHost" in q.peers[0]), "no address, not an empty one");
      q.peers[0].close();
      none.close();
    } finally {
      await q.close();
    }
  },
});

Deno.test({
  name:
    "swarm link: a connection whose header stops coming is closed by the header timer, and is no peer",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const q = await quietHost("unix");
    try {
      const stalled = await q.dial();
      await stalled.write(q.header().subarray(0, 65)); // one byte short, then nothing
      // The acceptor's header timer (5 s of real time: `_swarm_peer_acceptor.ts`) closes it.
      assert.equal(await endsWithin(stalled, EVENTUALLY_GIVE_UP_MS), "closed");
      stalled.close();
      assert.equal(q.peers.length, 0);
    } finally {
      await q.close();
    }
  },
});

Deno.test({
  name:
    "swarm link: a connection whose header completes after the host was closed is no peer, and its socket is closed",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const q = await quietHost("unix");
    const late = await q.dial();
    try {
      const header = q.header();
      await late.write(header.subarray(0, header.length - 1));
      await new Promise((r) => setTimeout(r, 50));
      await q.close();
      await late.write(header.subarray(header.length - 1)).catch(() => 0);
      const ended = await endsWithin(late, EVENTUALLY_GIVE_UP_MS);
      assert.equal(q.peers.length, 0, "a peer handed on by a closed host");
      assert.equal(ended, "closed");
    } finally {
      late.close();
    }
  },
});
