/**
 * Which `node` the swarm host would run, as far as telling Deno's stand-in from Node.js. With no
 * Node.js installed, Deno answers `node` with a stand-in of its own: it puts
 * `~/.cache/deno/node_compat_bin` (holding `node`, a link to Deno) first on the PATH it gives
 * child processes. Hyperswarm's native addon does not load in it (`undefined symbol:
 * uv_interface_addresses`), so the host dies with a line that never says Node.js is missing.
 * Deno linked as `node` elsewhere (a user's `ln -s "$(which deno)" ~/bin/node`) is not seen
 * before it runs: its host dies with the same line, which {@link notNodeHint} explains.
 *
 * @module
 */
import { delimiter, join } from "node:path";

/** The folder Deno puts its stand-in `node` in. */
export const DENO_STAND_IN_DIR = "node_compat_bin";

/**
 * The path of the `node` that `command` runs when it is Deno's stand-in, else undefined. A
 * command with a path separator is taken as given; a bare name is looked up on `path` (the
 * PATH a child process gets) the way a shell would: the first executable file of that name.
 */
export function denoStandInNode(
  command: string,
  path: string = Deno.env.get("PATH") ?? "",
): string | undefined {
  const resolved = command.includes("/") ? command : onPath(command, path);
  if (resolved === undefined) return undefined;
  const parts = resolved.split("/");
  return parts.at(-2) === DENO_STAND_IN_DIR ? resolved : undefined;
}

/**
 * The words for a refused stand-in at `path` (from {@link denoStandInNode}), after "cannot start
 * the swarm host with": one sentence wherever a Node.js program would be run under it (the swarm
 * host, the demo's testnet).
 */
export function standInNodeSentence(path: string): string {
  return `${path}: that "node" is Deno's stand-in, not Node.js (Hyperswarm runs in Node.js: ` +
    `install Node.js 20 or later, or set the path to it)`;
}

/** The first executable file named `name` in the folders of `path`. */
function onPath(name: string, path: string): string | undefined {
  for (const dir of path.split(delimiter)) {
    if (dir === "") continue;
    const candidate = join(dir, name);
    try {
      const info = Deno.statSync(candidate);
      if (info.isFile && ((info.mode ?? 0o111) & 0o111) !== 0) return candidate;
    } catch {
      // not there: the next folder
    }
  }
  return undefined;
}

/**
 * What a host's stderr says when its `node` is not Node.js but ran the host anyway (Deno behind
 * a link named `node` outside `node_compat_bin`, which {@link denoStandInNode} does not see):
 * Hyperswarm's native addon looks up libuv's functions (`uv_…`), which Deno does not export.
 */
const MISSING_LIBUV = /undefined symbol: uv_/;

/**
 * The plain reason to add to a failed host's message when its last stderr `lines` show that
 * `nodePath` is not Node.js (libuv's symbols missing), else undefined.
 */
export function notNodeHint(lines: readonly string[], nodePath: string): string | undefined {
  if (!lines.some((line) => MISSING_LIBUV.test(line))) return undefined;
  return `"${nodePath}" is not Node.js (Hyperswarm's native addon needs libuv, which it lacks: ` +
    `Deno linked as node, say): the swarm host needs Node.js 20 or later; install it and put its ` +
    `directory first on the node's PATH, or pass its path as the nodePath option`;
}
