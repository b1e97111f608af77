/**
 * Review of stop 41's swarm link header read (`SwarmHost`'s accept, BYOB since 02a468f) and of
 * the start's publications sent on connect (95562b4; now part of a connecting peer's catch-up,
 * `actors/_catch_up.ts`).
 *
 * The header probes talk to the node's link directly: a stand-in host (written below) answers
 * the host protocol and leaves its config (the link's address and token) in a file, so a test
 * can be the host's side of a link connection and send the header any way it likes.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { SwarmHost, type SwarmPeer } from "../../network/swarm_host.ts";
import { Identity } from "../../protocols/identity.ts";
import { fromHex } from "../../protocols/hash.ts";
import { eventually, EVENTUALLY_GIVE_UP_MS } from "../_helpers/wait.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { ActorRef } from "../../actors/actor_ref.ts";
import type { ValidatorMessage } from "../../actors/validator_messages.ts";
import type { ValidatorStats } from "../../actors/validator_actor.ts";
import { NetworkActor, type NetworkMessage } from "../../network/network_actor.ts";
import type { Connection } from "../../protocols/connection.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import { signVerdict } from "../../protocols/verdict.ts";
import { signStakePledge, type StakePledge } from "../../protocols/stake_pledge.ts";
import {
  announceAssigned,
  HONEST_MODELS,
  type LedgerClock,
  spawnValidator,
  START,
} from "../actors/_validator_fixture.ts";
import { keptFault, STAKE } from "./_ledger_node.ts";

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
  const header = (token = fromHex(config.token)) => {
    const bytes = new Uint8Array(65);
    bytes.set(token);
    bytes.fill(9, 32, 64);
    bytes[64] = 0;
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
      `swarm link (${link}): a header written a byte at a time, with the peer's first bytes in its last write, is one peer on the socket's byte stream`,
    sanitizeResources: false,
    sanitizeOps: false,
    fn: async () => {
      const q = await quietHost(link);
      const conn = await q.dial();
      try {
        const header = q.header();
        for (let i = 0; i < 64; i++) {
          await conn.write(header.subarray(i, i + 1));
          await new Promise((r) => setTimeout(r, 2));
        }
        await conn.write(new Uint8Array([header[64], 1, 2, 3]));
        await eventually(() => q.peers.length === 1, "the peer");
        const peer = q.peers[0];
        assert.deepEqual([...peer.remoteKey], new Array(32).fill(9));
        assert.equal(peer.initiator, false);
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
    "swarm link: a connection whose header stops coming is closed by the header timer, and is no peer",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const q = await quietHost("unix");
    try {
      const stalled = await q.dial();
      await stalled.write(q.header().subarray(0, 64)); // one byte short, then nothing
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
      await late.write(header.subarray(0, 64));
      await new Promise((r) => setTimeout(r, 50));
      await q.close();
      await late.write(header.subarray(64)).catch(() => 0);
      const ended = await endsWithin(late, EVENTUALLY_GIVE_UP_MS);
      assert.equal(q.peers.length, 0, "a peer handed on by a closed host");
      assert.equal(ended, "closed");
    } finally {
      late.close();
    }
  },
});

// ---- The start's publications (95562b4), now in the catch-up ------------------------------------

/** A node's ledger-keeping actors in its start order (validator, then network), with a pledge. */
async function startLedgerNode(
  system: ActorSystem,
  name: string,
  identity: Identity,
  ledgerDir: string,
  clock: LedgerClock,
  pledge?: StakePledge,
): Promise<LedgerNode> {
  const validator = await spawnValidator(system, {
    name: `${name}/validator`,
    identity,
    ledgerDir,
    clock,
    models: HONEST_MODELS,
    challengeProbability: 0,
    network: `${name}/network`,
  });
  const network = await system.spawn<NetworkMessage>({
    name: `${name}/network`,
    factory: () =>
      new NetworkActor({ identity, pledge, services: { validator: `${name}/validator` } }),
  });
  return { validator, network };
}

interface LedgerNode {
  validator: ActorRef<ValidatorMessage>;
  network: ActorRef<NetworkMessage>;
}

/** Join two nodes in memory (`x` dials); resolves with x's connection. */
async function joinNodes(x: LedgerNode, y: LedgerNode): Promise<Connection> {
  const [dx, dy] = memoryDuplexPair();
  const [cx] = await Promise.all([
    x.network.ask<Connection>({ type: "attach", duplex: dx, address: "mem", outbound: true }),
    y.network.ask<Connection>({ type: "attach", duplex: dy, address: "mem", outbound: false }),
  ]);
  return cx;
}

Deno.test("a start's verdict reaches a peer that knows the validator's stake only from the pledge sent on connect, and reconnects resend it", async () => {
  const dir = await Deno.makeTempDir();
  const clock = { t: START };
  const system = new ActorSystem({ name: "review-s41-pledge-order" });
  try {
    const me = Identity.generate();
    const work = await keptFault(`${dir}/a`, me, clock);
    // The peer holds the worker's receipt and stake, but not ours: that comes with our pledge.
    const peer = await startLedgerNode(system, "b", Identity.generate(), `${dir}/b`, clock);
    await peer.validator.ask({ type: "deposit", key: work.worker.publicKey, amount: STAKE });
    const handled = await announceAssigned(peer.validator, work.receipt, work.job, work.requester);
    assert.equal(handled.recorded, true);
    const pledge = signStakePledge(me, STAKE, START);
    const node = await startLedgerNode(system, "a", me, `${dir}/a`, clock, pledge);
    const stats = () => peer.validator.ask<ValidatorStats>({ type: "stats" });
    let connection = await joinNodes(node, peer);
    await eventually(
      async () => (await stats()).peerVerdicts > 0,
      "the peer to record the start's verdict (after our pledge)",
    );
    assert.equal((await stats()).refusedVerdicts, 0);
    // The same peer key reconnecting: every connection is sent the whole set again.
    const rounds = 5;
    for (let r = 0; r < rounds; r++) {
      await connection.close();
      connection = await joinNodes(node, peer);
      await eventually(async () => (await stats()).peerVerdicts === r + 2, `copy ${r + 2}`);
    }
    const s = await stats();
    console.log(
      `peer verdict copies after ${rounds} reconnects: ${s.peerVerdicts}, refused ${s.refusedVerdicts}`,
    );
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

// Finding, not fixed here (the fix is in `actors/validator_actor.ts`, outside this review's
// files): the start's publications live in the ValidatorActor instance, and a restart by its
// supervisor makes a new one, while the kept ending was applied and dropped at the first start.
// Fails on the current code ("0 kept, the peer recorded 0"); un-ignore with the fix.
Deno.test({
  name:
    "a start's verdict still reaches a peer that connects after the validator was restarted (a crash after its start)",
  fn: async () => {
    const dir = await Deno.makeTempDir();
    const clock = { t: START };
    const system = new ActorSystem({ name: "review-s41-restart" });
    try {
      const me = Identity.generate();
      const work = await keptFault(`${dir}/a`, me, clock);
      const node = await startLedgerNode(system, "a", me, `${dir}/a`, clock);
      let restarts = 0;
      system.events.subscribe((event) => {
        if (event.type === "restarted" && event.name.endsWith("a/validator")) restarts++;
      });
      assert.equal((await node.validator.ask<unknown[]>({ type: "catch_up" })).length, 1);
      // The validator crashes after its start (here: a local verdict whose signature fails, which
      // it does not limp past) and its supervisor restarts it. The kept ending was applied and
      // dropped at the first start: the restart has nothing of its own to tell again.
      const forged = signVerdict({
        v: 1,
        subject: "inference",
        subjectId: work.id,
        target: work.worker.publicKey,
        outcome: "valid",
        reason: "ok",
        issuedAt: clock.t,
      }, me);
      forged.sig = new Uint8Array(forged.sig.length);
      await node.validator.tell({ type: "verdict", verdict: forged }).catch(() => {});
      await eventually(() => restarts > 0, "the validator's restart");
      await node.validator.ask({ type: "stats" }); // back up
      const peer = await startLedgerNode(system, "b", Identity.generate(), `${dir}/b`, clock);
      await peer.validator.ask({ type: "deposit", key: work.worker.publicKey, amount: STAKE });
      await peer.validator.ask({ type: "deposit", key: me.publicKey, amount: STAKE });
      const handled = await announceAssigned(
        peer.validator,
        work.receipt,
        work.job,
        work.requester,
      );
      assert.equal(handled.recorded, true);
      await joinNodes(node, peer);
      const stats = () => peer.validator.ask<ValidatorStats>({ type: "stats" });
      await eventually(
        async () => (await stats()).peerVerdicts >= 1,
        "the peer to hear of the fault after the validator's restart",
      );
      assert.equal((await stats()).peerVerdicts, 1);
    } finally {
      await system.shutdown();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
