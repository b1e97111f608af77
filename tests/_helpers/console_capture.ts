/** Running a CLI command in the test's process with its console output captured. */

/** What a command printed, and its exit code. */
export interface Captured {
  /** The exit code the command returned. */
  code: number;
  /** Its `console.log` lines, joined with newlines. */
  out: string;
  /** Its `console.error` lines, joined with newlines. */
  err: string;
}

/** Run a command with console.log and console.error captured; its exit code and lines. */
export async function captureConsole(run: () => Promise<number>): Promise<Captured> {
  const out: string[] = [];
  const err: string[] = [];
  const { log, error } = console;
  console.log = (...a: unknown[]) => void out.push(a.join(" "));
  console.error = (...a: unknown[]) => void err.push(a.join(" "));
  try {
    const code = await run();
    return { code, out: out.join("\n"), err: err.join("\n") };
  } finally {
    console.log = log;
    console.error = error;
  }
}

/** Whether `path` exists. */
export function exists(path: string): Promise<boolean> {
  return Deno.stat(path).then(() => true, () => false);
}
