/**
 * Preloaded (`deno run --preload`) into every node process {@link NodeProcess} starts: the node
 * stops when its parent goes. The parent holds the write end of the node's stdin pipe and never
 * writes to it; the kernel closes it when the parent exits, however it exits (SIGKILL, a CI job's
 * timeout, a crash), and the node reads end-of-file. It then asks itself to stop as an operator
 * would, with SIGTERM: `cli.ts start` drains and closes its swarm host, a script with no handler
 * ends at once. Before, a demo or test run stopped from outside left every node it started, with
 * its swarm host, running for good (review s78, finding 2: 1.4–1.6 GiB reparented to init).
 *
 * Opt-in: only processes started with this preload and a stdin pipe watch it. The operator's
 * `deno task start` does not: under systemd its stdin is `/dev/null`, which reads end-of-file at
 * once, and the node would stop as soon as it started.
 *
 * The read is unreferenced: it never keeps a process alive that would otherwise end (a script
 * that prints and exits, a node that fails its start-up).
 *
 * @module
 */
import { Socket } from "node:net";

/**
 * How long the node has to stop after its parent went before it is killed: above a node's own
 * graceful stop (its HTTP drain, 30 s by default, then its actors' 5 s each), so only a node
 * whose stop hangs gets here, and none outlives its parent for good.
 */
const STOP_GRACE_MS = 60_000;

/** The parent is gone: SIGTERM now, SIGKILL if that has not ended the process in time. */
function parentGone(): void {
  const force = setTimeout(() => Deno.kill(Deno.pid, "SIGKILL"), STOP_GRACE_MS);
  Deno.unrefTimer(force);
  Deno.kill(Deno.pid, "SIGTERM");
}

// A socket over fd 0, not `Deno.stdin`: only a socket can be unreferenced (see the module doc).
const parent = new Socket({ fd: 0, readable: true, writable: false });
parent.on("data", () => {}); // nothing is sent: read only to see the end
parent.once("end", parentGone);
parent.once("error", parentGone); // the pipe broke: the parent is gone just the same
parent.unref();
