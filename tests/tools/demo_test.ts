/**
 * `deno task demo` runs its whole story — a DHT testnet, four node processes, a job, its receipt
 * and verdict, a cheater convicted and routed around, a file read back after its first holder
 * was killed, a clean shutdown — and exits 0.
 */
import assert from "node:assert/strict";

Deno.test("deno task demo exits 0 and prints the receipt, the verdict and the conviction", async () => {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL("../../tools/demo.ts", import.meta.url).pathname, "--quiet"],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const out = new TextDecoder().decode(stdout);
  assert.equal(code, 0, `${out}\n${new TextDecoder().decode(stderr)}`);
  assert.match(out, /The receipt the client got/);
  assert.match(out, /commits {2}Merkle root [0-9a-f]{64}/);
  assert.match(out, /verdict {2}challenged job [0-9a-f]{12} → valid/);
  assert.match(out, /convicted="true"/);
  assert.match(out, /the next job runs on the worker/);
  assert.match(out, /read back through \w+: \d+ bytes, identical/);
  assert.match(out, /holder\(s\) left; repaired [1-9]\d* copies/);
  assert.match(out, /Done\./);
});

Deno.test("cli.ts demo with an unknown flag exits 2 with one line naming it, no stack trace", async () => {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL("../../cli.ts", import.meta.url).pathname, "demo", "--bogus"],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const err = new TextDecoder().decode(stderr);
  assert.equal(code, 2, err);
  assert.equal(new TextDecoder().decode(stdout), "");
  assert.equal(err.trimEnd().split("\n").length, 1, err);
  assert.match(err, /--bogus.*--help/);
});
