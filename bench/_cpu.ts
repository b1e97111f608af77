/**
 * A process's counters from `/proc/<pid>/stat` (CPU time, page faults), for the benchmarks that
 * compare processes. Linux only: NaN elsewhere.
 *
 * @module
 */

/** `/proc` reports CPU time in USER_HZ ticks, 100 per second on every Linux ABI Deno runs on. */
const CLOCK_TICKS_PER_S = 100;

/**
 * The fields of `/proc/<pid>/stat` (or of another stat file of the same format: `path`) after the
 * ")" that closes the command name (the 3rd field overall is index 0), or undefined when they
 * cannot be read.
 */
async function statFields(pid: number, path = `/proc/${pid}/stat`): Promise<string[] | undefined> {
  try {
    const stat = await Deno.readTextFile(path);
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  } catch {
    return undefined;
  }
}

/** CPU seconds (user + system) in stat `fields` (utime is the 14th field, stime 15th), else NaN. */
function cpuSecondsOf(fields: string[] | undefined): number {
  return fields ? (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_S : NaN;
}

/** CPU seconds (user + system, all threads) of `pid` alone. */
export async function ownCpuSeconds(pid: number): Promise<number> {
  return cpuSecondsOf(await statFields(pid));
}

/**
 * CPU seconds (user + system) of `pid`'s main thread alone (`/proc/<pid>/task/<pid>/stat`): in a
 * Deno process, the JavaScript event loop, apart from its workers and the runtime's own threads.
 */
export async function mainThreadCpuSeconds(pid: number): Promise<number> {
  return cpuSecondsOf(await statFields(pid, `/proc/${pid}/task/${pid}/stat`));
}

/**
 * Minor page faults of `pid` so far, all its threads together (the 10th field). Each is a page
 * the allocator handed back and took again: on this project's VM about 15 µs each, which made
 * decoding page-fault-bound under a low mmap threshold (`docs/MODELS.md`, "Page faults").
 */
export async function minorFaults(pid: number): Promise<number> {
  const fields = await statFields(pid);
  return fields ? Number(fields[7]) : NaN;
}

/**
 * CPU seconds (user + system, all threads) used so far by `pid` and its live descendants (a
 * node's swarm host, say). A live child's time is not in its parent's, so the tree is walked.
 */
export async function treeCpuSeconds(pid: number): Promise<number> {
  let total = await ownCpuSeconds(pid);
  if (Number.isNaN(total)) return NaN;
  try {
    for await (const task of Deno.readDir(`/proc/${pid}/task`)) {
      const children = await Deno.readTextFile(`/proc/${pid}/task/${task.name}/children`)
        .catch(() => "");
      for (const child of children.split(" ").filter((c) => c !== "")) {
        const seconds = await treeCpuSeconds(Number(child));
        if (!Number.isNaN(seconds)) total += seconds; // a child that just exited
      }
    }
    return total;
  } catch {
    return NaN;
  }
}
