/** Subprocess helper of storage_commands_test.ts: `deno run -A _run_storage_command.ts put|get|ls ARGS...`. */
import { runGet, runLs, runPut } from "../../storage/storage_commands.ts";

const [command, ...args] = Deno.args;
const run = { put: runPut, get: runGet, ls: runLs }[command];
Deno.exit(run ? await run(args) : 2);
