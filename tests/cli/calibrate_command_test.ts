/**
 * `cli.ts calibrate`: its flags (bad values refused before anything is built or measured,
 * `--model-size` and `--seed` picking a built-in model) and the profiles it saves.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { runCalibrate, type RunCalibrateOptions } from "../../cli/calibrate_command.ts";
import type { CalibrationProfile, NoiseProfile } from "../../proof/calibration.ts";
import { handProfile } from "../_helpers/hand_profile.ts";

// `cli.ts calibrate` refuses a bad flag value with exit 2 and a first line naming the flag and what
// it takes, before it builds or measures anything; and it saves no profile whose own self-check
// failed.

/** Run calibrate with `args`, console.error captured; its exit code and first stderr line. */
async function calibrate(
  args: string[],
  options?: RunCalibrateOptions,
): Promise<{ code: number; first: string }> {
  const lines: string[] = [];
  const { error } = console;
  console.error = (...a: unknown[]) => void lines.push(a.join(" "));
  try {
    const code = await runCalibrate(args, options);
    return { code, first: lines.join("\n").split("\n")[0] };
  } finally {
    console.error = error;
  }
}

Deno.test("calibrate names the bad flag and why on its first line, and exits 2", async () => {
  const cases: [string[], RegExp][] = [
    [["--jobs", "abc"], /^error: --jobs expects a positive integer, got "abc"$/],
    [["--tokens", "0"], /^error: --tokens expects a positive integer, got "0"$/],
    [["--seed=-1"], /^error: --seed expects a non-negative integer, got "-1"$/],
    [["--threads", "1,x"], /^error: --threads expects positive integers/],
    [["--reference-threads", "0"], /^error: --reference-threads expects a positive integer/],
    [["--precisions", "fp32,fp8"], /^error: --precisions expects .*, got "fp8"$/],
    [["--model-size", "huge"], /^error: --model-size expects .*, got "huge"$/],
  ];
  for (const [args, first] of cases) {
    const r = await calibrate(args);
    assert.equal(r.code, 2, args.join(" "));
    assert.match(r.first, first, args.join(" "));
  }
});

Deno.test("calibrate that cannot load the model, install the built-in one or save says so in one line, exit 1", async () => {
  const data = await Deno.makeTempDir({ prefix: "veriflow-calibrate-" });
  try {
    const file = join(data, "a-file");
    await Deno.writeTextFile(file, "");
    const cases: [string[], RegExp][] = [
      [
        ["--model", join(data, "none"), "--data", data, "--init"],
        /^error: cannot read model\.onnx and config\.json in .*none \(No such file or directory\); give --model an exported model directory/,
      ],
      [
        ["--data", file, "--init"],
        /^error: cannot install the built-in model into .*a-file\/models: .*; give --data a directory you can write/,
      ],
    ];
    for (const [args, first] of cases) {
      const lines: string[] = [];
      const { error } = console;
      console.error = (...a: unknown[]) => void lines.push(a.join(" "));
      try {
        assert.equal(await runCalibrate(args), 1, args.join(" "));
      } finally {
        console.error = error;
      }
      assert.equal(lines.length, 1, lines.join("\n"));
      assert.match(lines[0], first);
    }
    // A profile measured but not writable: said as such, not thrown.
    const saved = await calibrate([
      "--model",
      join(data, "none"),
      "--data",
      file,
      "--init",
      "--precisions",
      "fp32",
    ], {
      calibrate: () => Promise.resolve(measured("M", {})),
    });
    assert.equal(saved.code, 1);
    assert.match(
      saved.first,
      /^error: cannot save the profile in .*a-file\/calibration: .*give --data/,
    );
    // A seed for the trained size is a flag it does not take: a usage error.
    const seeded = await calibrate(["--seed", "3", "--data", data, "--init"]);
    assert.equal(seeded.code, 2);
    assert.match(seeded.first, /^error: the trained model brown has one set of weights/);
  } finally {
    await Deno.remove(data, { recursive: true });
  }
});

/** A measured profile, as `calibrateModel` returns it, with `bf16`'s self-check counts. */
function measured(model: string, bf16: Partial<NoiseProfile>): CalibrationProfile {
  const profile = handProfile(model, { receipts: 8, positions: 512 });
  const noise = profile.precisions.fp32;
  return { ...profile, precisions: { fp32: noise, bf16: { ...noise, logitMax: 0.0373, ...bf16 } } };
}

Deno.test("calibrate saves no profile whose self-check failed: exits 1 naming the class and the failures", async () => {
  const data = await Deno.makeTempDir({ prefix: "veriflow-calibrate-" });
  const { error, log } = console;
  const err: string[] = [];
  console.error = (...a: unknown[]) => void err.push(a.join(" "));
  console.log = () => {};
  const run = (model: string, bf16: Partial<NoiseProfile>) =>
    runCalibrate([
      "--model",
      join(data, "no-model"),
      "--data",
      data,
      "--init",
      "--precisions",
      "fp32,bf16",
    ], {
      calibrate: () => Promise.resolve(measured(model, bf16)),
    });
  try {
    assert.equal(await run("Failed", { flagged: 2, samplingFailures: 7 }), 1);
    const said = err.join("\n");
    assert.match(said, /calibration of Failed failed; profile not saved/);
    assert.match(said, /bf16: self-check failed: 2 .*flagged and 7/);
    await assert.rejects(() => Deno.stat(join(data, "calibration", "Failed.json")));
    // The same measurement with a clean self-check is saved.
    assert.equal(await run("Passed", {}), 0);
    await Deno.stat(join(data, "calibration", "Passed.json"));
  } finally {
    console.error = error;
    console.log = log;
    await Deno.remove(data, { recursive: true });
  }
});

// `--model-size` and `--seed` pick a built-in model, so beside `--model DIR` they have no effect.
// `calibrate` measured DIR and said nothing, so an operator who asked for `--model-size small` got
// a profile of another model. It now refuses the pair with exit 2 naming both flags, as `start`
// refuses `--model-size` beside `--model`, before it loads or measures anything.
//
// @module

Deno.test("calibrate refuses --model-size or --seed beside --model with exit 2 naming both, before loading", async () => {
  const data = await Deno.makeTempDir({ prefix: "veriflow-calibrate-" });
  try {
    // DIR does not exist: a command that went on to load it would exit 1 saying so.
    const model = join(data, "none");
    for (const extra of [["--model-size", "small"], ["--seed", "3"]]) {
      const lines: string[] = [];
      const { error } = console;
      console.error = (...a: unknown[]) => void lines.push(a.join(" "));
      let code: number;
      try {
        code = await runCalibrate(["--model", model, ...extra, "--data", data]);
      } finally {
        console.error = error;
      }
      const first = lines.join("\n").split("\n")[0];
      assert.equal(code, 2, `${extra.join(" ")}: ${first}`);
      assert.match(first, new RegExp(`^error: ${extra[0]} has no effect beside --model`));
    }
    // Either alone is still taken: a missing DIR is the work failing (1), not a bad flag.
    const { error } = console;
    console.error = () => {};
    try {
      assert.equal(await runCalibrate(["--model", model, "--data", data, "--init"]), 1);
    } finally {
      console.error = error;
    }
  } finally {
    await Deno.remove(data, { recursive: true });
  }
});
