/**
 * The output of a CLI command run in the test's process, captured through its `io` argument
 * (`cli/status_command.ts`'s `runStatus(args, io)`), for the `status` tests
 * (`status_command_test.ts`, `status_no_dashboard_test.ts`).
 *
 * @module
 */

/** A command's captured lines and the `io` to hand it. */
export interface CommandIo {
  /** Lines it wrote to its output. */
  out: string[];
  /** Lines it wrote to its error output. */
  err: string[];
  io: { out: (line: string) => void; err: (line: string) => void };
}

/** A fresh capture: hand `io` to the command, then read `out` and `err`. */
export function io(): CommandIo {
  const out: string[] = [];
  const err: string[] = [];
  return {
    out,
    err,
    io: { out: (l: string) => void out.push(l), err: (l: string) => void err.push(l) },
  };
}
