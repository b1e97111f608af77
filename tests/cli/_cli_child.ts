/**
 * Test fixture: `cli.ts` run as a child process with every permission, `stdin` piped in when
 * given (closed otherwise): what the CLI tests that read a command's exit code and output share.
 *
 * @module
 */

const CLI = new URL("../../cli.ts", import.meta.url).pathname;

/** How a run of the CLI ended. */
export interface CliRun {
  code: number;
  /** Standard output as bytes (a CAR, a file) ... */
  stdout: Uint8Array;
  /** ... and as text. */
  out: string;
  err: string;
}

/** Run `veriflow ARGS` with `stdin` (when given) written to its standard input and closed. */
export async function cli(args: string[], stdin?: Uint8Array): Promise<CliRun> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, ...args],
    stdin: stdin ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin) {
    const writer = child.stdin.getWriter();
    await writer.write(stdin);
    await writer.close();
  }
  const out = await child.output();
  return {
    code: out.code,
    stdout: out.stdout,
    out: new TextDecoder().decode(out.stdout),
    err: new TextDecoder().decode(out.stderr),
  };
}
