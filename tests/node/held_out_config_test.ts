/**
 * `training.coordinator.heldOutFile` (`--held-out FILE`): the coordinator's private held-out
 * text, read from a flag, a `VERIFLOW_*` variable or the configuration file like every training
 * key, and refused at start with one line when it cannot give the evaluation its samples
 * (`training/held_out_text.ts`). Without it, a coordinator's start says that its held-out text is
 * the public split every trainer can read, and how to set a private one.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { resolveStartConfig } from "../../cli/start_command.ts";
import { ConfigError, formatResolvedConfig, type NodeConfig } from "../../node/config.ts";
import { trainingInputs } from "../../node/_training_children.ts";
import { DEFAULT_LOCAL_HYPER_PARAMS } from "../../training/hyper_params.ts";
import {
  HELD_OUT_EVAL_SAMPLES,
  heldOutBytesNeeded,
  HeldOutFileError,
} from "../../training/held_out_text.ts";

/** The smallest corpus a node takes: the Brown split is loaded quickly. */
const SMALL_CORPUS = { VERIFLOW_TRAINING_CORPUS_DOCS: "10" };

/** Bytes the default evaluation reads: 64 samples of 65 bytes. */
const NEEDED = heldOutBytesNeeded(DEFAULT_LOCAL_HYPER_PARAMS.sampleBytes);

/** A private text long enough, unlike any Brown document (digits only). */
const PRIVATE_TEXT = "0123456789".repeat(Math.ceil(NEEDED / 10) + 3);

async function withDir<T>(run: (dir: string) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-held-out-" });
  try {
    return await run(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** What `trainingInputs` makes of `config`, with the lines it logs. */
async function inputsOf(config: NodeConfig) {
  const lines: string[] = [];
  const inputs = await trainingInputs(config, undefined, (line) => void lines.push(line));
  return { inputs, lines };
}

Deno.test("--held-out FILE sets training.coordinator.heldOutFile, said to come from the flag", async () => {
  const { config, origins } = await resolveStartConfig(
    ["--coordinate-training", "--held-out", "/srv/private/eval.txt"],
  );
  assert.equal(config.training.coordinator.heldOutFile, "/srv/private/eval.txt");
  assert.deepEqual(origins.get("training.coordinator.heldOutFile"), {
    source: "flag",
    by: "--held-out",
  });
});

Deno.test("VERIFLOW_TRAINING_COORDINATOR_HELD_OUT_FILE sets it, and the flag beats it", async () => {
  const env = { VERIFLOW_TRAINING_COORDINATOR_HELD_OUT_FILE: "/from/env.txt" };
  const fromEnv = await resolveStartConfig(["--coordinate-training"], env);
  assert.equal(fromEnv.config.training.coordinator.heldOutFile, "/from/env.txt");
  assert.deepEqual(fromEnv.origins.get("training.coordinator.heldOutFile"), {
    source: "env",
    by: "VERIFLOW_TRAINING_COORDINATOR_HELD_OUT_FILE",
  });
  const both = await resolveStartConfig(
    ["--coordinate-training", "--held-out", "/from/flag.txt"],
    env,
  );
  assert.equal(both.config.training.coordinator.heldOutFile, "/from/flag.txt");
});

Deno.test("the configuration file's heldOutFile is read relative to the file's directory", async () => {
  await withDir(async (dir) => {
    const file = join(dir, "veriflow.json");
    await Deno.writeTextFile(
      file,
      JSON.stringify({ training: { coordinator: { enabled: true, heldOutFile: "eval.txt" } } }),
    );
    const { config, origins } = await resolveStartConfig(["--config", file]);
    assert.equal(config.training.coordinator.heldOutFile, join(dir, "eval.txt"));
    assert.equal(origins.get("training.coordinator.heldOutFile")?.source, "file");
  });
});

Deno.test("unset, there is no held-out file and --print-config says the public split is used", async () => {
  const resolved = await resolveStartConfig(["--coordinate-training"]);
  assert.equal(resolved.config.training.coordinator.heldOutFile, undefined);
  const row = formatResolvedConfig(resolved).split("\n").find((l) =>
    l.includes("training.coordinator.heldOutFile")
  );
  assert.match(row ?? "(no row)", /the public Brown held-out split/);
});

Deno.test("--held-out without --coordinate-training is refused: it would do nothing", async () => {
  await assert.rejects(
    resolveStartConfig(["--held-out", "/srv/eval.txt"]),
    (e: unknown) =>
      e instanceof ConfigError && /--held-out has no effect here/.test(e.message) &&
      /--coordinate-training/.test(e.message),
  );
});

Deno.test("an empty --held-out or VERIFLOW_TRAINING_COORDINATOR_HELD_OUT_FILE is refused naming the key", async () => {
  await assert.rejects(
    resolveStartConfig(["--coordinate-training", "--held-out", ""]),
    (e: unknown) =>
      e instanceof ConfigError && /training\.coordinator\.heldOutFile/.test(e.message),
  );
  await assert.rejects(
    resolveStartConfig(["--coordinate-training"], {
      VERIFLOW_TRAINING_COORDINATOR_HELD_OUT_FILE: "",
    }),
    (e: unknown) => e instanceof ConfigError && /heldOutFile/.test(e.message),
  );
});

/** The start's refusal of the held-out file `bytes` (absent: no file at all). */
async function refusal(bytes: Uint8Array | undefined): Promise<HeldOutFileError> {
  return await withDir(async (dir) => {
    const path = join(dir, "eval.txt");
    if (bytes !== undefined) await Deno.writeFile(path, bytes);
    const { config } = await resolveStartConfig(
      ["--coordinate-training", "--held-out", path],
      SMALL_CORPUS,
    );
    const error = await trainingInputs(config, undefined, () => {}).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(error instanceof HeldOutFileError, `refused with a HeldOutFileError: ${error}`);
    assert.ok(!error.message.includes("\n"), "one line");
    assert.ok(error.message.includes(path), "names the file");
    return error;
  });
}

Deno.test("a missing held-out file refuses the start: held_out_file_unreadable", async () => {
  const error = await refusal(undefined);
  assert.equal(error.code, "held_out_file_unreadable");
  assert.match(error.message, /no such file/);
});

Deno.test("an empty held-out file refuses the start: held_out_file_empty", async () => {
  const error = await refusal(new Uint8Array());
  assert.equal(error.code, "held_out_file_empty");
});

Deno.test("a held-out file that is not UTF-8 refuses the start: held_out_file_not_utf8", async () => {
  const latin1 = new TextEncoder().encode(PRIVATE_TEXT);
  latin1[100] = 0xe9; // "é" in Latin-1: a lone lead byte in UTF-8
  const error = await refusal(latin1);
  assert.equal(error.code, "held_out_file_not_utf8");
});

Deno.test("a held-out file too small for the evaluation's samples says how many bytes it needs", async () => {
  const error = await refusal(new TextEncoder().encode(PRIVATE_TEXT.slice(0, NEEDED - 1)));
  assert.equal(error.code, "held_out_file_too_small");
  assert.match(error.message, new RegExp(`holds ${NEEDED - 1} bytes`));
  assert.match(error.message, new RegExp(`${HELD_OUT_EVAL_SAMPLES} samples of 65 bytes`));
  assert.match(error.message, new RegExp(`at least ${NEEDED} bytes`));
  assert.equal(NEEDED, 4160);
});

Deno.test("a held-out file of exactly the bytes needed is taken as one document of its text", async () => {
  await withDir(async (dir) => {
    const path = join(dir, "eval.txt");
    const text = new TextEncoder().encode(PRIVATE_TEXT.slice(0, NEEDED));
    await Deno.writeFile(path, text);
    const { config } = await resolveStartConfig(
      ["--coordinate-training", "--held-out", path],
      SMALL_CORPUS,
    );
    const { inputs, lines } = await inputsOf(config);
    assert.deepEqual(inputs.heldOut?.documents.map((d) => d.bytes), [text]);
    assert.deepEqual(inputs.heldOutSource, { kind: "private_file", bytes: NEEDED });
    const said = lines.filter((l) => /held-out/.test(l));
    assert.equal(said.length, 1, said.join("\n"));
    assert.match(said[0], new RegExp(`private held-out file \\(${NEEDED} bytes`));
    assert.ok(!said[0].includes(path) && !said[0].includes("0123456789"), "no path, no text");
  });
});

Deno.test("a coordinator on the public split logs one line recommending a private file", async () => {
  const { config } = await resolveStartConfig(["--coordinate-training"], SMALL_CORPUS);
  const { inputs, lines } = await inputsOf(config);
  assert.equal(inputs.heldOutSource?.kind, "public_brown_split");
  assert.equal(inputs.heldOutSource?.documents, 1, "every 10th of 10 documents");
  const said = lines.filter((l) => /held-out/.test(l));
  assert.equal(said.length, 1, said.join("\n"));
  assert.match(said[0], /^warning: training: .*public Brown held-out split/);
  assert.match(said[0], /--held-out FILE/);
});

Deno.test("a trainer that does not coordinate reads no held-out file and logs no held-out line", async () => {
  const { config } = await resolveStartConfig(["--train"], SMALL_CORPUS);
  const { inputs, lines } = await inputsOf(config);
  assert.equal(inputs.heldOut, undefined);
  assert.equal(inputs.heldOutSource, undefined);
  assert.deepEqual(lines.filter((l) => /held-out/.test(l)), []);
});
