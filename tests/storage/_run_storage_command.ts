/** Subprocess helper of the storage tests: `deno run -A _run_storage_command.ts put|get|ls|gc ARGS...`. */
import { runGc } from "../../cli/gc_command.ts";
import { runGet } from "../../cli/get_command.ts";
import { runLs } from "../../cli/ls_command.ts";
import { runPut } from "../../cli/put_command.ts";

const [command, ...args] = Deno.args;
const run = { put: runPut, get: runGet, ls: runLs, gc: runGc }[command];
Deno.exit(run ? await run(args) : 2);
