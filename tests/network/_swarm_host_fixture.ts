/**
 * What the swarm host's failure tests share: stand-in `node` scripts, a give-up time for what
 * would otherwise hang, a watch on the states a host reports, a host's minimal options, and the
 * victim's and the attacker's sides of the duplicate-connection tests.
 */
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { SwarmHostOptions, SwarmPeer } from "../../network/swarm_host.ts";
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

/** The states a host reports, and a promise for the next one of a kind. */
export function stateWatch() {
  const states: string[] = [];
  const waiters: { state: string; resolve: () => void }[] = [];
  return {
    states,
    onState: (state: "up" | "down") => {
      states.push(state);
      for (const w of waiters.splice(0)) {
        if (w.state === state) w.resolve();
        else waiters.push(w);
      }
    },
    next(state: "up" | "down"): Promise<void> {
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
