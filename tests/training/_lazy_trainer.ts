/**
 * A lazy trainer for the multi-process training test: a real node whose trainer sends, instead
 * of its pseudo-gradient, a random delta scaled like an honest one (each row's int8 values
 * shuffled), under a receipt re-signed for it — the cheap substitute for H steps of work that
 * issue #16 names. Everything else (the trace it opens steps from) is honest, so what gives it
 * away is the last step's opening: the committed end state does not match the delta sent.
 * Usage: `_lazy_trainer.ts [cli.ts start flags]`. Lives in tests/: no production flag can make
 * a node lie.
 */
import { configFromArgs } from "../../cli/start_command.ts";
import { startNode } from "../../node/node.ts";
import { shuffledDeltaTrainer } from "./_shuffled_delta.ts";

const config = await configFromArgs(Deno.args);
const node = await startNode(config, {
  log: (line) => console.log(line),
  train: shuffledDeltaTrainer,
});
Deno.addSignalListener("SIGTERM", () => node.shutdown());
await node.finished;
