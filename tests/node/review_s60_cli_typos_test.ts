/**
 * A mistyped command or flag is answered with the name it is near, on every command a new user
 * meets first — as `start` already does (`unknown flag --prot (did you mean --port?)`), not with
 * parseArgs' advice about positionals (`To specify a positional argument starting with a '-' …`)
 * or a bare "unknown command" above 50 lines of usage (review stop 60, the first-hour walk:
 * `cli.ts strat`, `cli.ts infer --modl X`, `cli.ts status --jsn`).
 */
import { assert, assertEquals } from "../server/_assert.ts";
import { main } from "../../cli.ts";
import { runInfer } from "../../client/infer_command.ts";
import { runStatus } from "../../client/status_command.ts";

/** What `fn` wrote with console.error, and its result. */
async function stderrOf(fn: () => Promise<number>): Promise<{ code: number; text: string }> {
  const lines: string[] = [];
  const original = console.error;
  console.error = (...args: unknown[]) => void lines.push(args.map(String).join(" "));
  try {
    return { code: await fn(), text: lines.join("\n") };
  } finally {
    console.error = original;
  }
}

Deno.test("cli.ts: a command one typo from a real one is named, in one line and a pointer", async () => {
  const { code, text } = await stderrOf(() => main(["strat"]));
  assertEquals(code, 2);
  assertEquals(
    text,
    "error: unknown command: strat (did you mean start?)\nsee cli.ts help for every command",
  );
});

Deno.test("cli.ts: a command near none still gets the whole usage", async () => {
  const { code, text } = await stderrOf(() => main(["nosuch"]));
  assertEquals(code, 2);
  assert(text.startsWith("error: unknown command: nosuch\n"), text);
  assert(text.includes("Commands:"), text);
});

Deno.test("infer: an unknown flag is named with the flag it is near", async () => {
  const err: string[] = [];
  const io = { stdout: () => {}, stderr: (t: string) => void err.push(t) };
  assertEquals(await runInfer(["--modl", "x", "hi"], io), 2);
  const said = err.join("");
  // Stop 65: after `error: `, as every command's usage errors are.
  assert(said.startsWith("error: unknown flag --modl (did you mean --model?)\n"), said);
  assert(!said.includes("positional argument"), said);
});

Deno.test("status: an unknown flag is named with the flag it is near", async () => {
  const err: string[] = [];
  const io = { out: () => {}, err: (t: string) => void err.push(t), env: () => undefined };
  assertEquals(await runStatus(["--jsn"], io), 2);
  const said = err.join("");
  assert(said.startsWith("error: unknown flag --jsn (did you mean --json?)\n"), said);
});
