/**
 * A stand-in for a command that stops on the process's stop signals as `cli.ts start` does
 * (`listenForStopSignals` in node/stop_signals.ts): it says `ready`, and on a stop signal says
 * `draining`, then waits for a line on stdin (its drain, which outlasts the signal: a process the
 * signal killed never gets there), says `stopped.` and exits 0.
 *
 * @module
 */
import { listenForStopSignals } from "../../node/stop_signals.ts";

const stopListening = listenForStopSignals(() => {
  stopListening();
  console.log("draining");
  void (async () => {
    const reader = Deno.stdin.readable.getReader();
    await reader.read();
    console.log("stopped.");
    Deno.exit(0);
  })();
});
console.log("ready");
// Keeps the process alive until a signal (a listener alone does not).
setInterval(() => {}, 60_000);
