/**
 * The link between a node and its swarm host (`network/swarm_link.ts`): a Unix socket in a
 * private directory by default, the secret token still checked on it, and loopback TCP when
 * asked or when no socket file can be made. A stand-in host (`_fake_swarm_host.mjs`, no DHT)
 * delivers one peer per join, with the real token, over whichever link the node offers.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { SwarmHost, type SwarmHostOptions, type SwarmPeer } from "../../network/swarm_host.ts";
import { Identity } from "../../protocols/identity.ts";
import { toHex } from "../../protocols/hash.ts";

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
      await intruder.write(new Uint8Array(65 + 5).fill(0x42));
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
