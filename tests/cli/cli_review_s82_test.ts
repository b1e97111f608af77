/**
 * The operator CLI's review at stop 82 (F2–F5): an empty data directory is refused by every
 * command, `train --out` is checked before a round is spent, `--training-challenge-probability`
 * where nothing reads it is refused, and the help says what the commands accept.
 *
 * @module
 */
import assert from "node:assert/strict";
import { cli } from "./_cli_child.ts";

const CLI = new URL("../../cli.ts", import.meta.url).pathname;

/** `cli.ts ARGS` run in `cwd`, with `env` over this process's environment. */
async function cliIn(cwd: string, args: string[], env: Record<string, string> = {}) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, ...args],
    cwd,
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code: out.code,
    out: new TextDecoder().decode(out.stdout),
    err: new TextDecoder().decode(out.stderr),
  };
}

// ---- F2: an empty data directory is the working directory: refused, exit 2 -----------------------

const EMPTY_DATA_RUNS: [name: string, args: string[]][] = [
  ["keygen", ["keygen", "--data", ""]],
  ["put", ["put", "--data", "", "--init", "file.txt"]],
  ["ls", ["ls", "--data", ""]],
  ["gc", ["gc", "--data", ""]],
  ["import", ["import", "--data", "", "--init", "file.txt"]],
  ["ledger verify", ["ledger", "verify", "--data", ""]],
  ["share list", ["share", "list", "--data", ""]],
  ["calibrate", [
    "calibrate",
    "--data",
    "",
    "--init",
    "--model-size",
    "tiny",
    "--jobs",
    "1",
    "--tokens",
    "1",
    "--threads",
    "1",
    "--precisions",
    "fp32",
  ]],
];

for (const [name, args] of EMPTY_DATA_RUNS) {
  Deno.test(`${name} --data "": refused (exit 2), nothing written in the working directory`, async () => {
    const cwd = await Deno.makeTempDir({ prefix: "vf_empty_data_" });
    try {
      await Deno.writeTextFile(`${cwd}/file.txt`, "x\n");
      const { code, err } = await cliIn(cwd, args);
      assert.equal(code, 2, err);
      assert.match(err, /--data is empty, which would be the working directory/);
      const left = [];
      for await (const entry of Deno.readDir(cwd)) left.push(entry.name);
      assert.deepEqual(left, ["file.txt"], "no key, store, calibration or model written");
    } finally {
      await Deno.remove(cwd, { recursive: true });
    }
  });
}

Deno.test('keygen with VERIFLOW_DATA_DIR="": refused (exit 2), no key in the working directory', async () => {
  const cwd = await Deno.makeTempDir({ prefix: "vf_empty_data_" });
  try {
    const { code, err } = await cliIn(cwd, ["keygen"], { VERIFLOW_DATA_DIR: "" });
    assert.equal(code, 2, err);
    assert.match(err, /VERIFLOW_DATA_DIR is empty.*unset VERIFLOW_DATA_DIR for the default/);
    assert.equal(await exists(`${cwd}/identity.key`), false);
  } finally {
    await Deno.remove(cwd, { recursive: true });
  }
});

// ---- F3: train --out is checked before training ---------------------------------------------------

Deno.test("train --out FILE: refused before a round is trained, naming --out", async () => {
  const dir = await Deno.makeTempDir({ prefix: "vf_train_out_" });
  try {
    const file = `${dir}/file`;
    await Deno.writeTextFile(file, "x\n");
    const { code, out, err } = await cli([
      "train",
      "--out",
      file,
      "--rounds",
      "1",
      "--steps",
      "1",
      "--trainers",
      "1",
      "--log-format",
      "json",
    ]);
    assert.equal(code, 1, err);
    assert.match(err, new RegExp(`^error: cannot write the model to ${file}: .*give --out a`));
    assert.equal(out, "", "no round ran");
    assert.equal(await Deno.readTextFile(file), "x\n");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// ---- F4: --training-challenge-probability where nothing reads it -----------------------------------

Deno.test("start --training-challenge-probability: refused where no training is validated", async () => {
  const flag = ["--training-challenge-probability", "0.9", "--print-config"];
  const noValidator = await cli(["start", "--no-validator", ...flag]);
  assert.equal(noValidator.code, 2, noValidator.err);
  assert.match(noValidator.err, /--training-challenge-probability has no effect here: --no-valid/);
  const noTraining = await cli(["start", ...flag]);
  assert.equal(noTraining.code, 2, noTraining.err);
  assert.match(noTraining.err, /validates no training: add --train, --coordinate-training/);
  const coordinating = await cli(["start", "--coordinate-training", ...flag]);
  assert.equal(coordinating.code, 0, coordinating.err);
  assert.match(coordinating.out, /training\.challengeProbability\s+0\.9/);
});

// ---- F5: the help says what the commands accept ----------------------------------------------------

Deno.test("build-model --kind mlp --size small: refused (the mlp model has one shape)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "vf_mlp_size_" });
  try {
    const { code, err } = await cli([
      "build-model",
      "--kind",
      "mlp",
      "--size",
      "small",
      "--out",
      `${dir}/m`,
    ]);
    assert.equal(code, 2, err);
    assert.match(err, /^error: --size is for --kind gpt/);
    assert.equal(await exists(`${dir}/m`), false);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("train --sample-bytes: the help's range is the one refused", async () => {
  const help = await cli(["train", "--help"]);
  assert.match(help.out, /--sample-bytes L {2}bytes per sample, from 2 to context \+ 1/);
  const one = await cli(["train", "--out", "/nonexistent/never", "--sample-bytes", "1"]);
  assert.equal(one.code, 2, one.err);
  // tiny's context is 256: the refusal names the range the help gives.
  assert.match(one.err, /--sample-bytes must be an integer from 2 to 257, got 1/);
});

Deno.test("cli.ts help names share list and build-model --kind", async () => {
  const { code, out } = await cli(["help"]);
  assert.equal(code, 0);
  assert.match(out, /share list \[CID\]/);
  assert.match(out, /build-model \[--kind gpt\|mlp\]/);
});

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}
