/**
 * `.ci/run`, driven with a stand-in `deno` on PATH that records its arguments and prints the
 * summaries a real run would: what CI runs, and the totals it reports.
 */
import assert from "node:assert/strict";
import { join } from "node:path";

const SCRIPT = new URL("../../.ci/run", import.meta.url).pathname;

/**
 * A fake `deno`: answers `--version` as the pinned version, logs every call, prints the test
 * summary named in `SUMMARY_<n>` for the n-th test run, and fails the commands listed in
 * `FAIL_STEPS` (e.g. "lint").
 */
const FAKE_DENO = `#!/usr/bin/env bash
echo "$*" >> "$CALLS"
case "$*" in
  --version) echo "deno 2.9.6 (stable, release, x86_64-unknown-linux-gnu)"; exit 0 ;;
esac
for failing in $FAIL_STEPS; do
  case "$*" in *"$failing"*) exit 1 ;; esac
done
case "$*" in
  "task test"|"test "*)
    n=$(( $(grep -cE '^(task test|test )' "$CALLS") ))
    var="SUMMARY_$n"
    echo "\${!var}"
    case "\${!var}" in ok*) ;; *) exit 1 ;; esac ;;
esac
exit 0
`;

async function runCi(env: Record<string, string>): Promise<{ calls: string[]; last: string }> {
  const dir = await Deno.makeTempDir();
  try {
    const bin = join(dir, "bin");
    await Deno.mkdir(bin);
    await Deno.writeTextFile(join(bin, "deno"), FAKE_DENO, { mode: 0o755 });
    const calls = join(dir, "calls");
    await Deno.writeTextFile(calls, "");
    const output = await new Deno.Command("bash", {
      args: [SCRIPT],
      env: { PATH: `${bin}:${Deno.env.get("PATH")}`, CALLS: calls, FAIL_STEPS: "", ...env },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const lines = new TextDecoder().decode(output.stdout).trimEnd().split("\n");
    return { calls: (await Deno.readTextFile(calls)).trimEnd().split("\n"), last: lines.at(-1)! };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("CI runs the JSDoc examples of every source folder, and its totals include them", async () => {
  const { calls, last } = await runCi({
    SUMMARY_1: "ok | 120 passed (14 steps) | 0 failed (41s)",
    SUMMARY_2: "ok | 50 passed | 0 failed (7s)",
  });
  const doc = calls.find((c) => c.startsWith("test ") && c.includes("--doc"));
  assert.ok(doc, `no doc-test run among ${JSON.stringify(calls)}`);
  for (const folder of ["actors", "inference", "node", "protocols", "server", "mod.ts"]) {
    assert.ok(doc.split(" ").includes(folder), `doc tests miss ${folder}: ${doc}`);
  }
  assert.ok(!doc.split(" ").includes("tests"), "the suite is not run twice");
  // chromium, install, fmt, lint, check: five checks; then 120 tests and 50 examples.
  assert.equal(last, `${5 + 120 + 50} passed, 0 failed`);
});

Deno.test("CI's totals count a failed step, a failed example and a test run that died", async () => {
  const { last } = await runCi({
    FAIL_STEPS: "lint",
    SUMMARY_1: "error: the runner crashed before reporting",
    SUMMARY_2: "FAILED | 48 passed | 2 failed (7s)",
  });
  assert.equal(last, `${4 + 48} passed, ${1 + 1 + 2} failed`);
});
