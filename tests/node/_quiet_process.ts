/**
 * A stand-in process for `runStart` in the node tests: it records the node's output and
 * presses Ctrl-C as soon as a node starts coming up.
 */
import type { StartCommandIo } from "../../cli/start_command.ts";

/**
 * A process for `runStart` that records its output and presses Ctrl-C as soon as a node starts
 * coming up (its first line), so that a start that should have been refused ends, as 130.
 */
export function quietProcess() {
  const out: string[] = [];
  const err: string[] = [];
  let ctrlC: (() => void) | undefined;
  const io: StartCommandIo = {
    onStopSignal: (listener) => {
      ctrlC = listener;
      return () => (ctrlC = undefined);
    },
    out: (line) => {
      out.push(line);
      if (line.startsWith("veriflow node ")) ctrlC?.();
    },
    err: (line) => void err.push(line),
    now: () => 0,
  };
  return { out, err, io };
}
