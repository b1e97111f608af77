/**
 * A test child (a script beside the test that starts a real server and prints its findings as
 * JSON on stdout) run to read the node's log it writes on stderr, for the idle cut tests
 * (`read_idle_cut_log_test.ts`, `sse_idle_cut_log_test.ts`, `sse_idle_cut_json_log_test.ts`).
 *
 * @module
 */

/** What the child left: its exit code, its stdout and its stderr, as text. */
export interface ChildOutput {
  code: number;
  out: string;
  err: string;
}

/** Run `script` in a child Deno with `args` (`["json"]`: the node's log in JSON); what it left. */
export async function runLogChild(script: URL, args: string[] = []): Promise<ChildOutput> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--unstable-no-legacy-abort", script.pathname, ...args],
    stdout: "piped",
    stderr: "piped",
  });
  const { code, stdout, stderr } = await child.output();
  const decoder = new TextDecoder();
  return { code, out: decoder.decode(stdout), err: decoder.decode(stderr) };
}
