/**
 * `cli.ts calibrate` refuses a bad flag value with exit 2 and a first line naming the flag and
 * what it takes, before it builds or measures anything.
 */
import assert from "node:assert/strict";
import { runCalibrate } from "../../node/calibrate_command.ts";

/** Run calibrate with `args`, console.error captured; its exit code and first stderr line. */
async function calibrate(args: string[]): Promise<{ code: number; first: string }> {
  const lines: string[] = [];
  const { error } = console;
  console.error = (...a: unknown[]) => void lines.push(a.join(" "));
  try {
    const code = await runCalibrate(args);
    return { code, first: lines.join("\n").split("\n")[0] };
  } finally {
    console.error = error;
  }
}

Deno.test("calibrate names the bad flag and why on its first line, and exits 2", async () => {
  const cases: [string[], RegExp][] = [
    [["--jobs", "abc"], /^--jobs expects a positive integer, got "abc"$/],
    [["--tokens", "0"], /^--tokens expects a positive integer, got "0"$/],
    [["--seed=-1"], /^--seed expects a non-negative integer, got "-1"$/],
    [["--threads", "1,x"], /^--threads expects positive integers/],
    [["--reference-threads", "0"], /^--reference-threads expects a positive integer/],
    [["--precisions", "fp32,fp8"], /^--precisions expects .*, got "fp8"$/],
    [["--model-size", "huge"], /^--model-size expects .*, got "huge"$/],
  ];
  for (const [args, first] of cases) {
    const r = await calibrate(args);
    assert.equal(r.code, 2, args.join(" "));
    assert.match(r.first, first, args.join(" "));
  }
});
