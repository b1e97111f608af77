/**
 * Test fixture: `cli.ts` run as a child process with every permission (or those a test names),
 * `stdin` piped in when given (closed otherwise): what the CLI tests that read a command's exit
 * code and output share.
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

/** The child's environment: what a test sets for that child only, never for its own process. */
export interface CliEnv {
  /** Variables set in the child (over this process's). */
  env?: Record<string, string>;
  /** Variables the child may not read (`--deny-env`): unset, as far as it can tell. */
  denyEnv?: string[];
  /**
   * The child's permission flags (`--allow-net=127.0.0.1`, …) instead of `-A`, for what a user
   * who grants only some sees; never a prompt (`--no-prompt`).
   */
  permissions?: string[];
}

/**
 * Run `veriflow ARGS` with `stdin` (when given) written to its standard input and closed. A test
 * that needs a variable set gives it here: test modules run side by side in one process, so a
 * variable set with `Deno.env.set` reaches every other module's commands while it is set.
 */
export async function cli(args: string[], stdin?: Uint8Array, vars: CliEnv = {}): Promise<CliRun> {
  const deny = vars.denyEnv?.length ? [`--deny-env=${vars.denyEnv.join(",")}`] : [];
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      ...(vars.permissions ? ["--no-prompt", ...vars.permissions] : ["-A"]),
      ...deny,
      CLI,
      ...args,
    ],
    env: vars.env,
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
