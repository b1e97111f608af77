/**
 * `cli.ts infer` as a client user meets it (review stop 60, `ux2`): its help starts as the other
 * commands' do (`Usage: cli.ts infer`, not a `veriflow` binary there is none of); a one-token
 * job's summary says "1 token"; and a flag outside the range docs/API.md documents is refused
 * before anything is sent, naming the flag (not the wire field) with exit 2, as every other bad
 * flag value is.
 */
import { assert, assertEquals } from "../server/_assert.ts";
import { startTestNode } from "../server/_fixtures.ts";
import { runInfer } from "../../client/infer_command.ts";
import { GENERATION_LIMITS } from "../../protocols/job.ts";

function captureIo() {
  const out: string[] = [];
  const err: string[] = [];
  return {
    out,
    err,
    io: { stdout: (t: string) => void out.push(t), stderr: (t: string) => void err.push(t) },
  };
}

Deno.test("infer --help starts with the header the other commands use", async () => {
  const { out, io } = captureIo();
  assertEquals(await runInfer(["--help"], io), 0);
  assert(out.join("").startsWith("Usage: cli.ts infer [options] [PROMPT...]\n"), out.join(""));
});

Deno.test("infer's summary counts a one-token job as 1 token", async () => {
  const node = await startTestNode();
  try {
    const { err, io } = captureIo();
    const status = await runInfer(["--url", node.url, "--max-tokens", "1", "Hello"], io);
    assertEquals(status, 0, err.join(""));
    const summary = err.join("");
    assert(/\n\[1 token, /.test(summary), summary);
  } finally {
    await node.close();
  }
});

Deno.test("infer refuses a number flag outside its documented range, naming the flag, exit 2, before connecting", async () => {
  // The node's own bounds: the command's copy of them must agree.
  const { maxTokens, maxTemperature, maxTopK } = GENERATION_LIMITS;
  const cases: [string[], string][] = [
    [["--max-tokens", "99999"], `--max-tokens 99999 is out of range: 1 to ${maxTokens}`],
    [["--max-tokens", "0"], `--max-tokens 0 is out of range: 1 to ${maxTokens}`],
    [["--temperature", "2.5"], `--temperature 2.5 is out of range: 0 to ${maxTemperature}`],
    [["--top-p", "1.5"], "--top-p 1.5 is out of range: 0 to 1"],
    [["--top-k", `${maxTopK + 1}`], `--top-k ${maxTopK + 1} is out of range: 0 to ${maxTopK}`],
  ];
  for (const [flags, expected] of cases) {
    const { err, io } = captureIo();
    // Nothing listens on port 9: a check made after connecting would say so instead.
    const status = await runInfer(["--url", "ws://127.0.0.1:9", ...flags, "hi"], io);
    assertEquals(status, 2, `${flags.join(" ")}: ${err.join("")}`);
    // One error line, then the usage (stop 65: before, the line had no `error: ` before it).
    assert(err.join("").startsWith(`error: ${expected}\n\nUsage: cli.ts infer`), err.join(""));
  }
});
