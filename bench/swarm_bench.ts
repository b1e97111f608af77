/**
 * Swarm bench: what carrying the network over Hyperswarm through the swarm host costs, measured
 * side by side on a local DHT testnet (127.0.0.1 only).
 *
 * 1. **Bulk transfer.** The same transfer (default 256 MiB) between two Deno processes, each
 *    with its own {@link SwarmHost}, through the byte duplex the node gets per peer (Deno →
 *    loopback → host → Hyperswarm → host → loopback → Deno: the headline), and between two
 *    plain Node.js Hyperswarm peers (`bench/swarm_transfer_peer.mjs`, the baseline). Extra,
 *    labelled: the same with the host link over loopback TCP instead of the default (a Unix
 *    socket where the platform has one: `network/swarm_link.ts`), and the same through a
 *    `Connection`, as the 256 KiB `storage.put_chunk` requests a node replicating a file sends. Every pair stays connected; runs rotate between them.
 *    Prints MiB/s medians, their ratio to the baseline, and the CPU both ends (hosts included)
 *    spent per MiB, in all and per process, which a loaded machine disturbs less than the rate
 *    (and the headline's ratio by CPU too).
 *    Goal: host path / plain Hyperswarm ≥ 0.8, printed for the transport (the headline) and for
 *    a node's own file transfer (the `Connection` row), which carries the node's protocol too.
 * 2. **Router vs direct over the swarm.** Two node processes that meet only on the swarm
 *    (`--swarm-bootstrap`, `--swarm-bind 127.0.0.1`, `--no-listen`): a worker in its default
 *    configuration and a router (`--no-inference --no-prover`). A WebSocket client streams the
 *    same job on the router and directly on the worker, interleaved; medians of tokens/s and
 *    time to first token, and the CPU each node (with its host) spent per token. Printed
 *    unpinned (the headline: everything shares the cores), then, as a labelled extra row, with
 *    the worker and its host on one core and the router, its host and the client on the other.
 *    Goals: router/direct tokens/s ≥ 0.9; TTFT added ≤ 10 ms.
 * 3. **A message through the hosts.** Two peers in this process, each with its host, pass a
 *    small message back and forth: the round trip, and the CPU each host spends per message it
 *    carries (its loopback read or write, the sealed UDX packet and its acknowledgement) — what
 *    every relayed token event pays twice. Information, no goal.
 *
 * ```
 * deno run -A bench/swarm_bench.ts [--runs N (7)] [--size-mib N (256)] [--stream-runs N (60)]
 *   [--tokens N (100)] [--only transfer|stream|messages] [--no-connection] [--no-tcp-link]
 * ```
 *
 * @module
 */
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { SwarmHost, type SwarmPeer } from "../network/swarm_host.ts";
import { SWARM_LINK_READ_BYTES, type SwarmLinkKind } from "../network/swarm_link.ts";
import { type LocalTestnet, startLocalTestnet } from "../network/swarm_testnet.ts";
import { Identity } from "../protocols/identity.ts";
import { Connection } from "../protocols/connection.ts";
import { PutChunkMessage, STORAGE_PROTOCOL } from "../protocols/storage_messages.ts";
import { cidOf } from "../protocols/cid.ts";
import { DEFAULT_FILE_CONCURRENCY } from "../storage/file_store.ts";
import { fromHex, toHex } from "../protocols/hash.ts";
import { NodeProcess, TextLineStream } from "../tools/node_process.ts";
import { median } from "./_stats.ts";
import { ownCpuSeconds, treeCpuSeconds } from "./_cpu.ts";
import { canPin, pinSelf, relayedVsDirect } from "./_relayed_vs_direct.ts";

const { values: flags } = parseArgs({
  args: Deno.args,
  options: {
    runs: { type: "string", default: "7" },
    "size-mib": { type: "string", default: "256" },
    "chunk-kib": { type: "string", default: "64" },
    // 60 jobs each way: one 100-token job lasts ~35 ms, and 15 of them gave unpinned medians from
    // 0.75 to 0.96 in one session's invocations (stop 41); 60 gave 0.738 and 0.738 (100: 0.731).
    "stream-runs": { type: "string", default: "60" },
    // The default model (brown) reads 128 positions: 100 tokens after the 19-byte prompt fit.
    tokens: { type: "string", default: "100" },
    only: { type: "string" }, // "transfer", "stream" or "messages"
    "no-connection": { type: "boolean" }, // no Connection row in the transfer table
    "no-tcp-link": { type: "boolean" }, // no row for the host link over loopback TCP
    // Internal: this script as one Deno transfer peer.
    peer: { type: "string" },
  },
});
const RUNS = Number(flags.runs);
const STREAM_RUNS = Number(flags["stream-runs"]);
const TOKENS = Number(flags.tokens);
const SIZE_BYTES = Number(flags["size-mib"]) * 1024 * 1024;
/** Bytes per write on both sides: one socket buffer's worth, as the node's transports write. */
const CHUNK_BYTES = Number(flags["chunk-kib"]) * 1024;
const MIB = 1024 * 1024;
const BASELINE_PEER = fileURLToPath(new URL("./swarm_transfer_peer.mjs", import.meta.url));

/** What each transfer peer is told on its command line (JSON). */
interface PeerConfig {
  bootstrap: string[];
  topic: string;
  role: "send" | "recv";
  chunkBytes: number;
  /** Deno peers only: `connection` moves the bytes as storage chunks over a `Connection`. */
  over?: "duplex" | "connection";
  /** Deno peers only: the link to the swarm host; absent, the host's default. */
  link?: SwarmLinkKind;
}

/**
 * Storage chunks in flight at once in the `Connection` row: as many as a node's file put keeps
 * in flight ({@link DEFAULT_FILE_CONCURRENCY}, 4 MiB of 256 KiB chunks).
 */
const CHUNKS_IN_FLIGHT = DEFAULT_FILE_CONCURRENCY;

// ---------------------------------------------------------------------------------------------
// A Deno transfer peer: the protocol of bench/swarm_transfer_peer.mjs over a SwarmPeer's duplex

const HEADER_BYTES = 8;

/**
 * Bytes the receiver offers per read: the host link's read size. It reads into one buffer of its
 * own (a BYOB reader), as a node's `Connection` reads its peers; a default reader would get each
 * read as a fresh copy, which no node pays for bulk (the plain peer is handed its decrypted
 * messages without a copy either).
 */
const RECEIVE_BUFFER_BYTES = SWARM_LINK_READ_BYTES;

async function receive(peer: SwarmPeer): Promise<void> {
  const reader = peer.duplex.readable.getReader({ mode: "byob" });
  const writer = peer.duplex.writable.getWriter();
  const ack = new Uint8Array([1]);
  let expected = -1;
  let got = 0;
  const header = new Uint8Array(HEADER_BYTES);
  let headerAt = 0;
  let buffer = new Uint8Array(RECEIVE_BUFFER_BYTES);
  for (;;) {
    const { value, done } = await reader.read(buffer);
    if (done) return;
    buffer = new Uint8Array(value.buffer); // the read transferred it: the same memory, again
    let at = 0;
    while (at < value.length) {
      if (expected < 0) {
        const take = Math.min(HEADER_BYTES - headerAt, value.length - at);
        header.set(value.subarray(at, at + take), headerAt);
        headerAt += take;
        at += take;
        if (headerAt === HEADER_BYTES) {
          expected = Number(new DataView(header.buffer).getBigUint64(0));
          headerAt = 0;
          got = 0;
        }
        continue;
      }
      const take = Math.min(expected - got, value.length - at);
      got += take;
      at += take;
      if (got === expected) {
        expected = -1;
        await writer.write(ack);
      }
    }
  }
}

function sender(peer: SwarmPeer): (bytes: number) => Promise<number> {
  const reader = peer.duplex.readable.getReader();
  const writer = peer.duplex.writable.getWriter();
  const chunk = new Uint8Array(CHUNK_BYTES).fill(0x5a);
  return async (bytes) => {
    const header = new Uint8Array(HEADER_BYTES);
    new DataView(header.buffer).setBigUint64(0, BigInt(bytes));
    const t0 = performance.now();
    const acked = reader.read();
    await writer.write(header);
    for (let left = bytes; left > 0;) {
      const n = Math.min(left, CHUNK_BYTES);
      left -= n;
      await writer.write(n === CHUNK_BYTES ? chunk : chunk.subarray(0, n));
    }
    await acked;
    return performance.now() - t0;
  };
}

/**
 * The same transfer as storage chunks (`storage.put_chunk` requests of `chunkBytes`, answered
 * without storing) over a `Connection` on the peer's duplex: framing, CBOR, schema checks and
 * the write budget included, as a node replicating a file moves it.
 */
async function connectionPeer(
  config: PeerConfig,
  peer: SwarmPeer,
  identity: Identity,
): Promise<((bytes: number) => Promise<number>) | undefined> {
  const connection = await Connection.open(peer.duplex, {
    identity,
    protocols: [STORAGE_PROTOCOL],
  });
  if (config.role === "recv") {
    connection.handle(PutChunkMessage, () => ({}));
    return undefined;
  }
  const chunk = new Uint8Array(config.chunkBytes).fill(0x5a);
  const cid = cidOf(chunk);
  return async (bytes) => {
    const t0 = performance.now();
    let left = Math.ceil(bytes / config.chunkBytes);
    await Promise.all(Array.from({ length: CHUNKS_IN_FLIGHT }, async () => {
      while (left-- > 0) await connection.request(PutChunkMessage, { cid, bytes: chunk });
    }));
    return performance.now() - t0;
  };
}

async function runPeer(config: PeerConfig): Promise<void> {
  const first = Promise.withResolvers<SwarmPeer>();
  const identity = Identity.generate();
  const host = await SwarmHost.start({
    identity,
    bootstrap: config.bootstrap,
    bind: "127.0.0.1",
    onPeer: (peer) => first.resolve(peer),
    log: (line) => console.error(line),
    link: config.link,
  });
  await host.join(fromHex(config.topic));
  const peer = await first.promise;
  const overConnection = config.over === "connection"
    ? await connectionPeer(config, peer, identity)
    : undefined;
  console.log(JSON.stringify({ ev: "connected", link: host.link }));
  if (config.role === "recv") {
    if (config.over !== "connection") receive(peer).catch(() => {});
  } else {
    const transfer = overConnection ?? sender(peer);
    for await (
      const line of Deno.stdin.readable.pipeThrough(new TextDecoderStream()).pipeThrough(
        new TextLineStream(),
      )
    ) {
      const { bytes } = JSON.parse(line) as { bytes: number };
      console.log(JSON.stringify({ ms: await transfer(bytes) }));
    }
  }
  if (config.role === "recv") {
    // Runs until stdin closes.
    for await (const _ of Deno.stdin.readable) { /* wait */ }
  }
  peer.close();
  await host.close();
  Deno.exit(0);
}

// ---------------------------------------------------------------------------------------------
// 1. Bulk transfer: the Deno pair through its hosts beside the plain Node.js pair

/** A transfer peer process, its stdout as lines. */
class PeerProcess {
  readonly #child: Deno.ChildProcess;
  readonly #lines: ReadableStreamDefaultReader<string>;
  readonly #stdin: WritableStreamDefaultWriter<Uint8Array>;

  constructor(command: string, args: string[]) {
    this.#child = new Deno.Command(command, {
      args,
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
      env: { NODE_NO_WARNINGS: "1" },
    }).spawn();
    this.#lines = this.#child.stdout.pipeThrough(new TextDecoderStream()).pipeThrough(
      new TextLineStream(),
    ).getReader();
    this.#stdin = this.#child.stdin.getWriter();
  }

  async next(): Promise<Record<string, unknown>> {
    const { value, done } = await this.#lines.read();
    if (done) throw new Error("a transfer peer exited");
    return JSON.parse(value);
  }

  async tell(message: unknown): Promise<void> {
    await this.#stdin.write(new TextEncoder().encode(JSON.stringify(message) + "\n"));
  }

  async stop(): Promise<void> {
    await this.#stdin.close().catch(() => {});
    await this.#child.status;
  }

  /**
   * CPU seconds used so far by this process and its live descendants (its swarm host): the
   * whole tree, and the peer process alone.
   */
  async cpuSeconds(): Promise<{ tree: number; own: number }> {
    const [tree, own] = await Promise.all([
      treeCpuSeconds(this.#child.pid),
      ownCpuSeconds(this.#child.pid),
    ]);
    return { tree, own };
  }
}

/**
 * The three paths: plain Node.js Hyperswarm peers (the baseline), Deno peers through their
 * hosts on the raw duplex, and the same as storage chunks over a `Connection`.
 */
type PairKind = "node" | "deno" | "deno-tcp" | "connection";
/** A storage chunk: the unit a node replicates (storage's default chunk size). */
const STORAGE_CHUNK_BYTES = 256 * 1024;

/** The link the Deno peers' hosts chose by default (printed with the table). */
let defaultLink = "?";

/** A connected sender–receiver pair of one kind. */
async function pair(kind: PairKind, testnet: LocalTestnet): Promise<PeerProcess[]> {
  const topic = toHex(crypto.getRandomValues(new Uint8Array(32)));
  const processes = (["recv", "send"] as const).map((role) => {
    const config: PeerConfig = {
      bootstrap: testnet.bootstrap,
      topic,
      role,
      chunkBytes: kind === "connection" ? STORAGE_CHUNK_BYTES : CHUNK_BYTES,
      over: kind === "connection" ? "connection" : "duplex",
      ...(kind === "deno-tcp" ? { link: "tcp" as const } : {}),
    };
    return kind === "node"
      ? new PeerProcess("node", [BASELINE_PEER, JSON.stringify(config)])
      : new PeerProcess(Deno.execPath(), [
        "run",
        "-A",
        fileURLToPath(import.meta.url),
        "--chunk-kib",
        String(CHUNK_BYTES / 1024),
        "--peer",
        JSON.stringify(config),
      ]);
  });
  await Promise.all(processes.map(async (p) => {
    const event = await p.next();
    if (event.ev !== "connected") throw new Error(`unexpected ${JSON.stringify(event)}`);
    if (kind === "deno") defaultLink = event.link as string;
    if (kind === "deno-tcp" && event.link !== "tcp") throw new Error("the TCP link was not used");
  }));
  return processes;
}

interface TransferRun {
  /** MiB per second, from the sender's first write to the receiver's acknowledgement. */
  mibPerS: number;
  /** CPU milliseconds per MiB, both ends (with their hosts) together. */
  cpuMsPerMib: number;
  /**
   * CPU ms per MiB of each process: sender, its host, the receiver's host, receiver (the hosts
   * are 0 for the Node.js pair, which has none).
   */
  split: number[];
}

async function timeTransfer(peers: PeerProcess[], bytes: number): Promise<TransferRun> {
  const cpu = () => Promise.all(peers.map((p) => p.cpuSeconds()));
  const before = await cpu();
  await peers[1].tell({ bytes });
  const ms = (await peers[1].next()).ms as number;
  const after = await cpu();
  const perMib = (s: number) => s * 1000 / (bytes / MIB);
  const [recv, send] = after.map((a, i) => ({
    own: perMib(a.own - before[i].own),
    host: perMib(a.tree - before[i].tree - (a.own - before[i].own)),
  }));
  return {
    mibPerS: bytes / MIB / (ms / 1000),
    cpuMsPerMib: recv.own + recv.host + send.own + send.host,
    split: [send.own, send.host, recv.host, recv.own],
  };
}

const PATHS: Record<PairKind, string> = {
  node: "Node.js ↔ Node.js, plain Hyperswarm (baseline)",
  deno: "Deno ↔ host ↔ host ↔ Deno: the node's per-peer duplex, default link (headline)",
  "deno-tcp": "same, the host link over loopback TCP instead (extra)",
  connection: `same, as 256 KiB storage.put_chunk requests over a Connection, ` +
    `${CHUNKS_IN_FLIGHT} in flight (extra)`,
};

async function bulkTransfer(testnet: LocalTestnet): Promise<void> {
  const kinds: PairKind[] = [
    "node",
    "deno",
    ...(flags["no-tcp-link"] ? [] : ["deno-tcp" as const]),
    ...(flags["no-connection"] ? [] : ["connection" as const]),
  ];
  const pairs = new Map<PairKind, PeerProcess[]>();
  try {
    for (const kind of kinds) pairs.set(kind, await pair(kind, testnet));
    // Warm up each (JIT, congestion windows).
    for (const kind of kinds) await timeTransfer(pairs.get(kind)!, SIZE_BYTES / 4);
    const runs = new Map(kinds.map((k) => [k, [] as TransferRun[]]));
    for (let run = 0; run < RUNS; run++) {
      // Interleaved, rotating which goes first, so drift and load hit all alike.
      for (let i = 0; i < kinds.length; i++) {
        const kind = kinds[(run + i) % kinds.length];
        runs.get(kind)!.push(await timeTransfer(pairs.get(kind)!, SIZE_BYTES));
      }
    }
    console.log(
      `\nbulk transfer over Hyperswarm (local testnet, 127.0.0.1): ${SIZE_BYTES / MIB} MiB, ` +
        `${CHUNK_BYTES / 1024} KiB writes, ${RUNS} interleaved runs each, medians; CPU is both ` +
        `ends' processes with their hosts, all sharing this machine's ` +
        `${navigator.hardwareConcurrency} cores; the hosts' default link here: ${defaultLink}`,
    );
    console.log(
      "| path | MiB/s | CPU ms/MiB, all processes | CPU ms/MiB per process: sender / its host / " +
        "receiver's host / receiver | " +
        "ratio to baseline | runs (MiB/s) |",
    );
    console.log("| --- | ---: | ---: | --- | ---: | --- |");
    const rate = (kind: PairKind) => median(runs.get(kind)!.map((r) => r.mibPerS));
    const cpu = (kind: PairKind) => median(runs.get(kind)!.map((r) => r.cpuMsPerMib));
    for (const kind of kinds) {
      const split = [0, 1, 2, 3].map((i) =>
        median(runs.get(kind)!.map((r) => r.split[i])).toFixed(1)
      ).join(" / ");
      const each = runs.get(kind)!.map((r) => r.mibPerS.toFixed(0)).join(", ");
      console.log(
        `| ${PATHS[kind]} | ${rate(kind).toFixed(0)} | ${cpu(kind).toFixed(1)} | ${split} | ${
          (rate(kind) / rate("node")).toFixed(3)
        } | ${each} |`,
      );
    }
    const ratio = rate("deno") / rate("node");
    console.log(
      `host path (the transport) / plain Hyperswarm ${ratio.toFixed(3)} (goal ≥ 0.8: ${
        ratio >= 0.8 ? "met" : "NOT met"
      })`,
    );
    if (runs.has("connection")) {
      // What a node's own file transfer gets: the same hosts, with its protocol on top.
      const node = rate("connection") / rate("node");
      console.log(
        `a node's file transfer (storage.put_chunk over a Connection) / plain Hyperswarm ` +
          `${node.toFixed(3)} (the same goal: ${node >= 0.8 ? "met" : "NOT met"})`,
      );
    }
    // Where the cores are the limit the rate follows the CPU per MiB, and the CPU per MiB moves
    // less than the rate when other work shares the machine: the same comparison, by CPU.
    console.log(
      `CPU per MiB, plain Hyperswarm / host path: ${(cpu("node") / cpu("deno")).toFixed(3)} ` +
        `(${cpu("node").toFixed(1)} / ${cpu("deno").toFixed(1)} ms, all processes)`,
    );
  } finally {
    await Promise.all([...pairs.values()].flat().map((p) => p.stop()));
  }
}

// ---------------------------------------------------------------------------------------------
// 2. Router vs direct, two node processes that meet only on the swarm

/**
 * `pinned`: the worker B (and its swarm host) on core 0, the router A (and its host) and the
 * client on core 1 — two cores standing in for two machines. Unpinned, all share both cores.
 */
async function routerVsDirect(testnet: LocalTestnet, pinned: boolean): Promise<void> {
  const root = await Deno.makeTempDir({ prefix: "veriflow-swarmbench-" });
  const common = [
    "--port",
    "0",
    "--heartbeat",
    "0",
    ...testnet.bootstrap.flatMap((b) => ["--swarm-bootstrap", b]),
    "--swarm-bind",
    "127.0.0.1",
    "--no-listen", // no TCP peers: the swarm is the only way to meet
  ];
  const cpus = (core: string) => pinned ? { cpus: core } : {};
  const b = NodeProcess.start("B", [...common, "--data", join(root, "b")], undefined, cpus("0"));
  let a: NodeProcess | undefined;
  try {
    if (pinned) await pinSelf("1");
    a = NodeProcess.start(
      "A",
      [...common, "--data", join(root, "a"), "--no-inference", "--no-prover"],
      undefined,
      cpus("1"),
    );
    const placement = pinned
      ? "B and its swarm host on core 0, A, its host and the client on core 1"
      : "all processes on both cores (the router's CPU comes out of the worker's)";
    await relayedVsDirect(a, b, {
      runs: STREAM_RUNS,
      tokens: TOKENS,
      title: `router vs direct over Hyperswarm (local testnet): worker B in its default config ` +
        `(the default model, brown; prover and validator on), router A --no-inference --no-prover, ` +
        `${placement}; ${TOKENS} tokens, ${STREAM_RUNS} interleaved runs each, medians`,
      relayLabel: "via the router",
      cpuNote: " with its swarm host (the host alone)",
      goals: { ratio: 0.9, addedMs: 10 },
    }, 60_000);
  } finally {
    if (pinned) await pinSelf(`0-${navigator.hardwareConcurrency - 1}`);
    await Promise.all([a?.stop(), b.stop()]);
    await Deno.remove(root, { recursive: true }).catch(() => {});
  }
}

// ---------------------------------------------------------------------------------------------
// 3. A message through the hosts

/** Round trips of the message-cost section. */
const MESSAGE_ROUND_TRIPS = 5_000;
/** Its message: about a relayed token event's size. */
const MESSAGE_BYTES = 200;

/** Two peers in this process ping-pong small messages through their hosts; see the module doc. */
async function messageCost(testnet: LocalTestnet): Promise<void> {
  const met = [Promise.withResolvers<SwarmPeer>(), Promise.withResolvers<SwarmPeer>()];
  const hosts = await Promise.all(met.map((m) =>
    SwarmHost.start({
      identity: Identity.generate(),
      bootstrap: testnet.bootstrap,
      bind: "127.0.0.1",
      onPeer: (peer) => m.resolve(peer),
    })
  ));
  try {
    const topic = crypto.getRandomValues(new Uint8Array(32));
    await Promise.all(hosts.map((h) => h.join(topic)));
    const [a, b] = await Promise.all(met.map((m) => m.promise));
    // b echoes whatever comes.
    b.duplex.readable.pipeTo(b.duplex.writable).catch(() => {});
    const writer = a.duplex.writable.getWriter();
    const reader = a.duplex.readable.getReader();
    const message = new Uint8Array(MESSAGE_BYTES);
    const roundTrip = async () => {
      await writer.write(message);
      for (let got = 0; got < MESSAGE_BYTES;) got += (await reader.read()).value!.byteLength;
    };
    for (let i = 0; i < 200; i++) await roundTrip(); // warm up
    const cpu = () => Promise.all(hosts.map((h) => ownCpuSeconds(h.pid!)));
    const before = await cpu();
    const started = performance.now();
    for (let i = 0; i < MESSAGE_ROUND_TRIPS; i++) await roundTrip();
    const ms = performance.now() - started;
    const after = await cpu();
    // Each host carries every message once: half of them out to the swarm, half in.
    const perMessage = (i: number) =>
      ((after[i] - before[i]) / (2 * MESSAGE_ROUND_TRIPS) * 1e6).toFixed(0);
    console.log(
      `\na ${MESSAGE_BYTES}-byte message through two swarm hosts (local testnet), ` +
        `${MESSAGE_ROUND_TRIPS} round trips: ${(ms * 1000 / MESSAGE_ROUND_TRIPS).toFixed(0)} µs ` +
        `each; CPU per message a host carries: ${perMessage(0)} and ${perMessage(1)} µs ` +
        `(information)`,
    );
    a.close();
    b.close();
  } finally {
    await Promise.all(hosts.map((h) => h.close()));
  }
}

if (flags.peer !== undefined) {
  await runPeer(JSON.parse(flags.peer));
} else {
  const testnet = await startLocalTestnet();
  try {
    if (flags.only === undefined || flags.only === "transfer") await bulkTransfer(testnet);
    if (flags.only === undefined || flags.only === "messages") await messageCost(testnet);
    if (flags.only === undefined || flags.only === "stream") {
      // Headline: the nodes as they run here, sharing the cores. Extra, labelled: each on its own.
      await routerVsDirect(testnet, false);
      if (await canPin()) await routerVsDirect(testnet, true);
      else console.log("\n(taskset or a second core is missing: no pinned router-vs-direct row)");
    }
  } finally {
    await testnet.stop();
  }
}
