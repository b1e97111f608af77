/** Subprocess helper of the storage tests: `deno run -A _run_storage_command.ts put|get|ls|gc ARGS...`. */
import { runGc, runGet, runLs, runPut } from "../../cli/storage_commands.ts";

const [command, ...args] = Deno.args;
const run = { put: runPut, get: runGet, ls: runLs, gc: runGc }[command];
Deno.exit(run ? await run(args) : 2);
