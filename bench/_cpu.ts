/**
 * CPU time of a process and what it started, for the benchmarks that compare processes.
 *
 * @module
 */

/** `/proc` reports CPU time in USER_HZ ticks, 100 per second on every Linux ABI Deno runs on. */
const CLOCK_TICKS_PER_S = 100;

/**
 * CPU seconds (user + system, all threads) used so far by `pid` and its live descendants (a
 * node's swarm host, say), from `/proc` (Linux; NaN elsewhere). A live child's time is not in
 * its parent's, so the tree is walked.
 */
export async function treeCpuSeconds(pid: number): Promise<number> {
  try {
    const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
    // Fields after the ")" that closes the command name: utime is 14th, stime 15th overall.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    let total = (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_S;
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
