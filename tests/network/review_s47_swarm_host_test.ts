/**
 * Review at stop 47 of the swarm host and its link to Deno (network/swarm_host.ts,
 * network/swarm/host.mjs). A local testnet on 127.0.0.1 or a stand-in host
 * (`_fake_swarm_host.mjs` behind a script): nothing leaves the machine.
 */
import assert from "node:assert/strict";
import { SwarmHost, type SwarmPeer } from "../../network/swarm_host.ts";
import { startLocalTestnet } from "../../network/swarm_testnet.ts";
import { Identity } from "../../protocols/identity.ts";
import { bytesEqual } from "../../protocols/bytes_equal.ts";
import { toHex } from "../../protocols/hash.ts";
import {
  base,
  duplicateHolder,
  FAKE_HOST,
  script,
  settled,
  speakAndDrain,
  stateWatch,
} from "./_swarm_host_fixture.ts";

Deno.test({
  name:
    "swarm review s47: one peer's connections held back behind its open first one cannot take the slots of other peers",
  ignore: Deno.build.os !== "linux",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const MORE = 12;
    const MOST = 4;
    const testnet = await startLocalTestnet();
    const peers: SwarmPeer[] = [];
    const logs: string[] = [];
    const honestIdentity = Identity.generate();
    const honestArrived = Promise.withResolvers<void>();
    const victim = await SwarmHost.start({
      identity: Identity.generate(),
      bootstrap: testnet.bootstrap,
      bind: "127.0.0.1",
      maxConnections: MOST,
      onPeer: (p) => {
        speakAndDrain(peers, p);
        if (bytesEqual(p.remoteKey, honestIdentity.publicKey)) honestArrived.resolve();
      },
      log: (l) => logs.push(l),
    });
    let attacker: Deno.ChildProcess | undefined;
    let honest: SwarmHost | undefined;
    try {
      await victim.join(crypto.getRandomValues(new Uint8Array(32)));
      // One key, free to make: a first connection kept open by a byte now and then, and MORE
      // after it, which Hyperswarm holds back until the first closes (never). Each held one
      // counted toward maxConnections for as long as it stayed, so this one peer filled the
      // host's every slot and every other peer's connection was refused.
      const closedAtLeast = MORE - (MOST - 1);
      const held = duplicateHolder(testnet.bootstrap[0], victim.publicKey, [
        0,
        MORE,
        closedAtLeast,
      ]);
      attacker = held.child;
      const line = await settled(held.reports.read(), "the attacker's connections", 60_000);
      assert.ok(line.value, "the attacker's report");
      // An honest peer dials the victim by its key: its connection must be handed on.
      honest = await SwarmHost.start({
        identity: honestIdentity,
        bootstrap: testnet.bootstrap,
        bind: "127.0.0.1",
        onPeer: (p) => speakAndDrain(peers, p),
      });
      honest.dial(victim.publicKey);
      await settled(
        honestArrived.promise,
        `an honest peer's connection handed on\n${logs.join("\n")}`,
        30_000,
      );
    } finally {
      for (const p of peers) p.close();
      await attacker?.stdin.close().catch(() => {});
      await attacker?.status;
      await honest?.close();
      await victim.close();
      await testnet.stop();
    }
  },
});

const TESTNET_DHT = new URL("./_testnet_dht.mjs", import.meta.url).href;

/**
 * A remote peer (one key) that opens a first connection to `victim`, keeps it open with a byte
 * every 200 ms, then opens `more` further connections of the same key and keeps them. Prints
 * `{"firstClosed": true}` once the victim's host closed the first.
 */
function trickleAndReconnect(bootstrap: string, victim: Uint8Array, more: number): string {
  return `
import { DHT, testnetDht } from ${JSON.stringify(TESTNET_DHT)};
const dht = await testnetDht(${JSON.stringify(bootstrap)});
const keyPair = DHT.keyPair();
const open = async () => {
  const conn = dht.connect(Buffer.from(${JSON.stringify(toHex(victim))}, "hex"), { keyPair });
  conn.on("error", () => {});
  const gone = new Promise((resolve) => conn.once("close", resolve));
  await Promise.race([new Promise((resolve) => conn.once("open", resolve)), gone]);
  return { conn, gone };
};
const first = await open();
setInterval(() => { if (!first.conn.destroyed) first.conn.write(Buffer.from([0x42])); }, 200);
first.gone.then(() => process.stdout.write(JSON.stringify({ firstClosed: true }) + "\\n"));
await new Promise((r) => setTimeout(r, 1_000)); // both sides wrote on it: established
for (let i = 0; i < ${more}; i++) await open();
process.stdin.resume();
process.stdin.on("close", () => process.exit(0));
`;
}

Deno.test({
  name:
    "swarm review s47: a peer that keeps its old connection trickling while it connects again and again has the old one closed",
  ignore: Deno.build.os !== "linux",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const testnet = await startLocalTestnet();
    const peers: SwarmPeer[] = [];
    const victim = await SwarmHost.start({
      identity: Identity.generate(),
      bootstrap: testnet.bootstrap,
      bind: "127.0.0.1",
      onPeer: (p) => speakAndDrain(peers, p),
    });
    let attacker: Deno.ChildProcess | undefined;
    try {
      await victim.join(crypto.getRandomValues(new Uint8Array(32)));
      // Each further connection of the peer's asked the host to destroy the old one, which it
      // let finish while bytes kept coming: never, with a byte every 200 ms. The host kept every
      // further connection (Hyperswarm waits for the old one to close to take it) and a timer
      // and listener on the old one for each: ~75 MiB a 2,000 connections, one peer, for good.
      attacker = new Deno.Command("node", {
        args: [
          "--input-type=module",
          "-e",
          trickleAndReconnect(testnet.bootstrap[0], victim.publicKey, 3),
        ],
        stdin: "piped",
        stdout: "piped",
        stderr: "inherit",
      }).spawn();
      const reader = attacker.stdout.pipeThrough(new TextDecoderStream()).getReader();
      const line = await settled(reader.read(), "the old connection closed by the host", 30_000);
      assert.deepEqual(JSON.parse(line.value!), { firstClosed: true });
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
    "swarm review s47: a stray 'null' line on the host's stdout is logged like any other, and the host's events still arrive",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    // What a library in the host prints with console.log(null): JSON, but not an object. The
    // node read `.ev` of it, threw, and stopped reading the host's stdout for good: its "ready"
    // never arrived (and, after it, no join's answer nor the liveness check's).
    const { dir, nodePath } = await script(`echo null\nexec node ${FAKE_HOST}`);
    const logs: string[] = [];
    try {
      const host = await settled(
        SwarmHost.start({ ...base(), nodePath, readyTimeoutMs: 15_000, log: (l) => logs.push(l) }),
        "start()",
      );
      const topic = new Uint8Array(32);
      await settled(host.join(topic), "join");
      await host.close();
      assert.ok(logs.some((l) => l.includes("null")), logs.join("\n"));
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

/** What process `pid`'s descriptors point at (`pipe:[123]`, `socket:[456]`, a path), by fd. */
function fdTargets(pid: number | "self"): string[] {
  const targets: string[] = [];
  for (const { name } of Deno.readDirSync(`/proc/${pid}/fd`)) {
    try {
      targets.push(Deno.readLinkSync(`/proc/${pid}/fd/${name}`));
    } catch {
      // closed meanwhile
    }
  }
  return targets;
}

Deno.test({
  name:
    "swarm review s47: each restart of a host that died leaves none of the node's file descriptors behind",
  ignore: Deno.build.os !== "linux",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const RESTARTS = 8;
    const { dir, nodePath } = await script(`exec node ${FAKE_HOST}`);
    const watch = stateWatch();
    const host = await SwarmHost.start({
      ...base(),
      nodePath,
      restart: { initialMs: 1, maxMs: 1 },
      onState: watch.onState,
    });
    try {
      // Each dead host's stdin pipe, by the pipe it reads (`pipe:[inode]`): the node's end is the
      // same pipe. Counted by name, not by the process's number of descriptors, which other test
      // files under `--parallel` change meanwhile (the CI of stop 56 counted 8 more that way).
      const stdins: string[] = [];
      for (let i = 0; i < RESTARTS; i++) {
        const up = watch.next("up");
        stdins.push(Deno.readLinkSync(`/proc/${host.pid}/fd/0`));
        Deno.kill(host.pid!, "SIGKILL");
        await settled(up, `restart ${i + 1}`);
      }
      // The pipe to each dead host's stdin stayed open in the node: one descriptor a restart.
      // Closed by an abort that completes asynchronously: read until it has (a leak never does,
      // until a garbage collection, seconds later), given up on after 1 s.
      const open = () => fdTargets("self").filter((target) => stdins.includes(target)).length;
      let left = open();
      for (const giveUp = Date.now() + 1_000; left > 0 && Date.now() < giveUp;) {
        await new Promise((resolve) => setTimeout(resolve, 10));
        left = open();
      }
      assert.equal(
        left,
        0,
        `${left} dead hosts' stdin pipes still open after ${RESTARTS} restarts`,
      );
    } finally {
      await host.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
