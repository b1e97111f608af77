/**
 * What the swarm host's failure tests share: stand-in `node` scripts, a give-up time for what
 * would otherwise hang, a watch on the states a host reports, a host's minimal options, the
 * victim's and the attacker's sides of the duplicate-connection tests, and a victim flooded by
 * strangers beside an honest peer (`floodedVictim`).
 */
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  SwarmHost,
  type SwarmHostOptions,
  type SwarmHostState,
  type SwarmPeer,
} from "../../network/swarm_host.ts";
import { startLocalTestnet } from "../../network/swarm_testnet.ts";
import { bytesEqual } from "../../protocols/bytes_equal.ts";
import { Identity } from "../../protocols/identity.ts";
import { toHex } from "../../protocols/hash.ts";

/** The remote attacker of the flood tests. */
const FLOOD = fileURLToPath(new URL("./_flood_peers.mjs", import.meta.url));

/**
 * `count` fresh keys connect to `victim` by its key through the DHT at `bootstrap`, each sending
 * `bytes`, and hold their connections open (`_flood_peers.mjs`, a `node` process). `report()` is
 * its one line `{"sent": n, "closed": m}`, once every connection is done (given up on after
 * `ms`: not a deadline the behaviour races); `stop()` ends the process.
 */
export function floodPeers(
  bootstrap: string,
  victim: Uint8Array,
  count: number,
  bytes: number,
): { report(ms?: number): Promise<string | undefined>; stop(): Promise<void> } {
  const child = new Deno.Command("node", {
    args: [FLOOD, bootstrap, toHex(victim), String(count), String(bytes)],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  return {
    report: async (ms = 60_000) =>
      (await settled(reader.read(), "the attacker's report", ms)).value,
    stop: async () => {
      await child.stdin.close().catch(() => {});
      await child.status;
    },
  };
}

/** A stand-in host that speaks the host protocol without a DHT. */
export const FAKE_HOST = fileURLToPath(new URL("./_fake_swarm_host.mjs", import.meta.url));

/**
 * `promise`, or a failure if it has not settled after `ms`: what would otherwise hang the run
 * fails the test instead. Not a deadline the behaviour races: it is ms.
 */
export async function settled<T>(promise: Promise<T>, what: string, ms = 20_000): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const hung = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: still pending after ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, hung]);
  } finally {
    clearTimeout(timer);
  }
}

/** A temporary directory (named with `prefix`) with an executable `node` script in it. */
export async function script(
  body: string,
  prefix = "veriflow-swarm-host-",
): Promise<{ dir: string; nodePath: string }> {
  const dir = await Deno.makeTempDir({ prefix });
  const nodePath = join(dir, "node");
  await Deno.writeTextFile(nodePath, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
  return { dir, nodePath };
}

/** A stand-in that answers joins and leaves in order, 50 ms apart (see `_join_order_host.mjs`). */
const JOIN_ORDER_HOST = fileURLToPath(new URL("./_join_order_host.mjs", import.meta.url));

/**
 * The stand-in hosts that log each op they are sent, and the shell assignment (run from the
 * `node` script, `$d` its dir) that has each log them to `$d/ops.jsonl`.
 */
const LOGGING_HOSTS = {
  fake: { program: FAKE_HOST, env: `FAKE_SWARM_HOST_LOG="$d/ops.jsonl"` },
  joinOrder: { program: JOIN_ORDER_HOST, env: `JOIN_ORDER_DIR="$d"` },
} as const;

/** An op a stand-in host was sent, as it logged it (`pid`: which run of the host). */
export interface LoggedOp {
  pid: number;
  op: string;
  id?: number;
  topic: string;
  server?: boolean;
  client?: boolean;
}

/**
 * A `node` script (in a fresh dir) that runs stand-in host `kind` ({@link FAKE_HOST}, or the
 * join-order host), logging each op it is sent to `log` (read it with {@link opsIn}).
 */
export async function loggingHost(
  kind: keyof typeof LOGGING_HOSTS,
): Promise<{ dir: string; nodePath: string; log: string }> {
  const { program, env } = LOGGING_HOSTS[kind];
  const { dir, nodePath } = await script(`d="$(dirname "$0")"\n${env} exec node ${program}`);
  return { dir, nodePath, log: join(dir, "ops.jsonl") };
}

/** The ops a stand-in host logged to `log` so far (none when it logged nothing yet). */
export async function opsIn(log: string): Promise<LoggedOp[]> {
  const text = await Deno.readTextFile(log).catch(() => "");
  return text.split("\n").filter((l) => l !== "").map((l) => JSON.parse(l));
}

/** A topic of zeros but its first byte (which the stand-ins read) and its last. */
export function topicOf(first: number, last: number): Uint8Array {
  const topic = new Uint8Array(32);
  topic[0] = first;
  topic[31] = last;
  return topic;
}

/**
 * `test` on a {@link watchedHost} (with `options`) running stand-in host `kind`, which logs to
 * `log` ({@link loggingHost}); the host closed and its dir removed after.
 */
export async function withLoggingHost(
  kind: keyof typeof LOGGING_HOSTS,
  options: Pick<SwarmHostOptions, "restart" | "log">,
  test: (
    running: { host: SwarmHost; watch: ReturnType<typeof stateWatch>; log: string },
  ) => Promise<void>,
): Promise<void> {
  const { dir, nodePath, log } = await loggingHost(kind);
  const { host, watch } = await watchedHost(nodePath, options);
  try {
    await test({ host, watch, log });
  } finally {
    await host.close();
    await Deno.remove(dir, { recursive: true });
  }
}

/**
 * A host of `base()` running `nodePath`, with `options` (its restarts' delays, its log), and a
 * {@link stateWatch} on the states it reports.
 */
async function watchedHost(
  nodePath: string,
  options: Pick<SwarmHostOptions, "restart" | "log">,
): Promise<{ host: SwarmHost; watch: ReturnType<typeof stateWatch> }> {
  const watch = stateWatch();
  const host = await SwarmHost.start({ ...base(), nodePath, ...options, onState: watch.onState });
  return { host, watch };
}

/** The states a host reports, and a promise for the next one of a kind. */
export function stateWatch() {
  const states: string[] = [];
  const waiters: { state: string; resolve: () => void }[] = [];
  return {
    states,
    onState: (state: SwarmHostState) => {
      states.push(state);
      for (const w of waiters.splice(0)) {
        if (w.state === state) w.resolve();
        else waiters.push(w);
      }
    },
    next(state: SwarmHostState): Promise<void> {
      return new Promise((resolve) => waiters.push({ state, resolve }));
    },
  };
}

/** A host's options but its program: a fresh key, no bootstrap, every peer closed. */
export const base = (): Pick<SwarmHostOptions, "identity" | "bootstrap" | "onPeer"> => ({
  identity: Identity.generate(),
  bootstrap: [],
  onPeer: (peer) => peer.close(),
});

/**
 * The victim node's side of a peer connection in the duplicate-connection tests: kept, written
 * on first (a connection both sides wrote on: the peer's next one replaces it), and read to its
 * end (the node reads all it is given: nothing waits unread on a connection it has).
 */
export function speakAndDrain(peers: SwarmPeer[], p: SwarmPeer): void {
  peers.push(p);
  const writer = p.duplex.writable.getWriter();
  writer.write(new Uint8Array(16)).catch(() => {});
  writer.releaseLock();
  (async () => {
    for await (const _ of p.duplex.readable) { /* drained */ }
  })().catch(() => {});
}

const DUPLICATE_HOLD = fileURLToPath(new URL("./_duplicate_hold.mjs", import.meta.url));

/**
 * A remote attacker (`_duplicate_hold.mjs`, in its own `node` process) that holds a first
 * connection to `victim` open and makes more of the same key: `args` are the script's after the
 * victim's key. Its stdout's lines are its reports.
 */
export function duplicateHolder(
  bootstrap: string,
  victim: Uint8Array,
  args: (string | number)[],
): { child: Deno.ChildProcess; reports: ReadableStreamDefaultReader<string> } {
  const child = new Deno.Command("node", {
    args: [DUPLICATE_HOLD, bootstrap, toHex(victim), ...args.map(String)],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  return { child, reports: child.stdout.pipeThrough(new TextDecoderStream()).getReader() };
}

/**
 * On a local testnet, an honest host (listening; announcing on `honestTopic` when given) and a
 * victim host (listening, with `maxConnections` and `log` as given) that `count` strangers'
 * connections are held open on (`floodPeers`), every one handed on to the victim's node, which
 * holds them (`peers`). `found` resolves with the victim's connection to the honest peer, once
 * there is one; `close()` ends everything, as does a failure while setting it up.
 */
export async function floodedVictim(options: {
  count: number;
  honestTopic?: Uint8Array;
  maxConnections?: number;
  log?: (line: string, honest: Uint8Array) => void;
}) {
  const testnet = await startLocalTestnet();
  const honest = await SwarmHost.start({
    ...base(),
    bootstrap: testnet.bootstrap,
    bind: "127.0.0.1",
  });
  const peers: SwarmPeer[] = [];
  const found = Promise.withResolvers<SwarmPeer>();
  const victim = await SwarmHost.start({
    identity: Identity.generate(),
    bootstrap: testnet.bootstrap,
    bind: "127.0.0.1",
    ...(options.maxConnections === undefined ? {} : { maxConnections: options.maxConnections }),
    onPeer: (p) => {
      peers.push(p); // the node holds them (strangers mid-handshake, say)
      if (bytesEqual(p.remoteKey, honest.publicKey)) found.resolve(p);
    },
    ...(options.log === undefined ? {} : { log: (line) => options.log!(line, honest.publicKey) }),
  });
  let attacker: ReturnType<typeof floodPeers> | undefined;
  const close = async () => {
    for (const p of peers) p.close();
    await attacker?.stop();
    await victim.close();
    await honest.close();
    await testnet.stop();
  };
  try {
    // Both listen, so that peers can connect to them by their keys; the honest one announces
    // only, when on a topic: it never connects itself.
    await honest.join(options.honestTopic ?? crypto.getRandomValues(new Uint8Array(32)), {
      client: false,
    });
    await victim.join(crypto.getRandomValues(new Uint8Array(32)), { client: false });
    attacker = floodPeers(testnet.bootstrap[0], victim.publicKey, options.count, 0);
    if (!await attacker.report()) throw new Error("the attacker did not report its connections");
    // Each handed on to the node (which the attacker's report may come ahead of).
    await settled(
      (async () => {
        while (peers.length < options.count) await new Promise((r) => setTimeout(r, 20));
      })(),
      `the ${options.count} strangers' connections handed on`,
    );
  } catch (error) {
    await close();
    throw error;
  }
  return { honest, victim, found, close };
}
