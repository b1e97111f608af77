/**
 * Which `node` the swarm host would run, as far as telling Deno's stand-in from Node.js. With no
 * Node.js installed, Deno answers `node` with a stand-in of its own: it puts
 * `~/.cache/deno/node_compat_bin` (holding `node`, a link to Deno) first on the PATH it gives
 * child processes. Hyperswarm's native addon does not load in it (`undefined symbol:
 * uv_interface_addresses`), so the host dies with a line that never says Node.js is missing.
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
