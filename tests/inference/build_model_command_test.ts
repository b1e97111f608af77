import assert from "node:assert/strict";
import { runBuildModel } from "../../inference/build_model_command.ts";
import { matchesCid } from "../../protocols/cid.ts";
import { readTextModelFiles, textModelId } from "../../inference/model_identity.ts";

Deno.test("build-model writes a loadable model directory and prints its CID; bad arguments and trained sizes exit 2", async () => {
  const out = await Deno.makeTempDir();
  const lines: string[] = [];
  const log = console.log;
  const error = console.error;
  console.log = (...a: unknown[]) => lines.push(a.join(" "));
  const errors: string[] = [];
  console.error = (...a: unknown[]) => errors.push(a.join(" "));
  try {
    assert.equal(await runBuildModel(["--size", "tiny", "--seed", "2", "--out", out]), 0);
    const { cid } = JSON.parse(lines[0]);
    assert.equal(cid, textModelId(await readTextModelFiles(out)), "the model's id");
    assert.equal(await runBuildModel(["--kind", "mlp", "--out", `${out}/mlp`]), 0);
    // A tensor model's id is its model.onnx's CID.
    assert.ok(matchesCid(JSON.parse(lines[1]).cid, await Deno.readFile(`${out}/mlp/model.onnx`)));
    assert.equal(await runBuildModel(["--size", "huge", "--out", out]), 2);
    // A trained size is installed from its weights, never built from a seed under its name.
    assert.equal(await runBuildModel(["--size", "brown", "--out", `${out}/brown`]), 2);
    assert.match(errors.at(-1)!, /brown is a trained model.*cli\.ts train/);
    await assert.rejects(Deno.stat(`${out}/brown`));
    assert.equal(await runBuildModel(["--seed", "x", "--out", out]), 2);
    assert.equal(await runBuildModel([]), 2);
    assert.equal(await runBuildModel(["--bogus"]), 2);
  } finally {
    console.log = log;
    console.error = error;
    await Deno.remove(out, { recursive: true });
  }
});

Deno.test("build-model into a directory it cannot create exits 1 with one line naming --out", async () => {
  const dir = await Deno.makeTempDir();
  const errors: string[] = [];
  const error = console.error;
  console.error = (...a: unknown[]) => errors.push(a.join(" "));
  try {
    const file = `${dir}/a-file`;
    await Deno.writeTextFile(file, "");
    assert.equal(await runBuildModel(["--out", `${file}/model`]), 1);
    assert.equal(errors.length, 1, errors.join("\n"));
    assert.match(errors[0], /^error: cannot write the model to .*a-file\/model: .*; give --out a /);
    assert.doesNotMatch(errors[0], /\n/);
  } finally {
    console.error = error;
    await Deno.remove(dir, { recursive: true });
  }
});
