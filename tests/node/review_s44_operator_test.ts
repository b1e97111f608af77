/**
 * Review of the operator's side of `cli.ts start` (session 44): settings that would start a node
 * other than the one asked for, and a bad setting found only after the model loaded.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { configFromArgs, runStart } from "../../node/start_command.ts";
import { quietProcess } from "./_quiet_process.ts";
import { ConfigError, parseNodeConfig } from "../../node/config.ts";

/** Flags of a node on free ports, no heartbeat, the quick built-in model. */
const flags = (dataDir: string, ...more: string[]) => [
  ...["--data", dataDir, "--port", "0", "--p2p-port", "0", "--heartbeat", "0"],
  ...["--model-size", "tiny", ...more],
];

Deno.test("a timer setting past setTimeout's limit (2^31-1 ms) is refused naming its key: Deno would fire it every millisecond", async () => {
  const tooLong = String(2 ** 31);
  for (
    const [args, key] of [
      [["--heartbeat", tooLong], /heartbeatMs/],
      [
        ["--coordinate-training", "--training-deadline", tooLong],
        /training\.coordinator\.deadlineMs/,
      ],
    ] as const
  ) {
    await assert.rejects(configFromArgs([...args]), (error: unknown) => {
      assert.ok(error instanceof ConfigError, String(error));
      assert.match(error.message, key);
      return true;
    });
  }
  assert.throws(
    () => parseNodeConfig({ storage: { auditIntervalMs: 2 ** 31 } }),
    /storage\.auditIntervalMs/,
  );
  // The longest a timer can wait is still accepted.
  assert.equal(
    (await configFromArgs(["--heartbeat", String(2 ** 31 - 1)])).heartbeatMs,
    2 ** 31 - 1,
  );
});

Deno.test("an --api-keys-file that cannot be read stops start in one line before the data directory is made or the model loads", async () => {
  const parent = await Deno.makeTempDir();
  try {
    const dataDir = join(parent, "data");
    const missing = join(parent, "keys.txt");
    const fake = quietProcess();
    assert.equal(await runStart(flags(dataDir, "--api-keys-file", missing), fake.io), 1);
    assert.equal(fake.err.length, 1, fake.err.join("\n"));
    assert.match(fake.err[0], new RegExp(`API keys file ${missing}`));
    assert.ok(!fake.out.some((line) => line.startsWith("model ")), fake.out.join("\n"));
    await assert.rejects(Deno.stat(dataDir), Deno.errors.NotFound);
  } finally {
    await Deno.remove(parent, { recursive: true });
  }
});

Deno.test("a flag the rest of the command line leaves without effect is refused naming both, exit 2, before anything starts", async () => {
  const parent = await Deno.makeTempDir();
  try {
    const dataDir = join(parent, "data");
    const cases: [string[], RegExp][] = [
      [["--no-inference", "--no-validator", "--model", "/models/x"], /--model\b.*--no-inference/],
      [["--no-inference", "--no-validator", "--workers", "4"], /--workers.*--no-inference/],
      [["--cuda", "--device", "cpu"], /--cuda.*--device cpu|--device cpu.*--cuda/],
      [["--no-listen", "--p2p-host", "0.0.0.0"], /--p2p-host.*--no-listen/],
      [["--swarm-bind", "127.0.0.1"], /--swarm-bind.*--swarm/],
      [
        ["--no-validator", "--challenge-probability", "1"],
        /--challenge-probability.*--no-validator/,
      ],
      [["--train-shard", "1/2"], /--train-shard.*--train\b/],
      [["--training-rounds", "3"], /--training-rounds.*--coordinate-training/],
      [["--model", "/models/x", "--model-size", "small"], /--model-size.*--model\b/],
    ];
    for (const [more, named] of cases) {
      const fake = quietProcess();
      const args = flags(dataDir, ...more).filter((a, i, all) =>
        // `flags` gives --model-size tiny; a case that names its own model drops it.
        !(more.includes("--model-size") || more.includes("--model")) ||
        !((a === "--model-size" && all[i + 1] === "tiny") ||
          (a === "tiny" && all[i - 1] === "--model-size"))
      );
      assert.equal(await runStart(args, fake.io), 2, `${more.join(" ")}: ${fake.err.join("\n")}`);
      const [first] = fake.err.join("\n").split("\n");
      assert.match(first, /^error: /, more.join(" "));
      assert.match(first, named, more.join(" "));
      await assert.rejects(Deno.stat(dataDir), Deno.errors.NotFound);
    }
    // What the README runs is not refused: a validator without inference still loads the model
    // and challenges; a dial-out node has peers; a swarm node binds its DHT.
    for (
      const ok of [
        ["--no-inference", "--no-prover", "--challenge-probability", "1", "--workers", "2"],
        ["--no-listen", "--peer", "127.0.0.1:7711"],
        ["--swarm-bootstrap", "127.0.0.1:49737", "--swarm-bind", "127.0.0.1"],
        ["--train", "--train-shard", "0/2", "--no-listen"],
        ["--coordinate-training", "--training-rounds", "2", "--no-inference"],
        ["--device", "cuda", "--cuda"],
      ]
    ) {
      await configFromArgs(ok);
    }
  } finally {
    await Deno.remove(parent, { recursive: true });
  }
});
