/**
 * What the swarm host's failure tests share: stand-in `node` scripts, a give-up time for what
 * would otherwise hang, a watch on the states a host reports, and a host's minimal options.
 */
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { SwarmHostOptions } from "../../network/swarm_host.ts";
import { Identity } from "../../protocols/identity.ts";

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
