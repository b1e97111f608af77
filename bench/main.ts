/**
 * `deno task bench [NAME...]`: runs each area's benchmark script in its own process (so one
 * bench's heap and threads do not colour the next) and lets each print its own table of
 * measurements and ratios against a baseline measured in the same run.
 *
 * Names: actors, codec, model, inference, validation, proof, detection, storage, network, swarm,
 * edge, ledger, training. No name runs them all.
 * Arguments after `--` are passed to every script (e.g. `-- --size-mib 64`).
 *
 * @module
 */

const BENCHES = [
  "actors",
  "codec",
  "model",
  "inference",
  "validation",
  "proof",
  "detection",
  "storage",
  "network",
  "swarm",
  "edge",
  "ledger",
  "training",
] as const;

const dash = Deno.args.indexOf("--");
const names = dash === -1 ? Deno.args : Deno.args.slice(0, dash);
const passThrough = dash === -1 ? [] : Deno.args.slice(dash + 1);

if (names.includes("--help") || names.includes("-h")) {
  console.log(
    `Usage: deno task bench [NAME...] [-- FLAGS]\n\n` +
      `Runs each named benchmark (all of them without a name) in its own process; FLAGS after ` +
      `\`--\` go to every one (e.g. \`-- --size-mib 64\`).\n\nNames: ${BENCHES.join(", ")}`,
  );
  Deno.exit(0);
}

const unknown = names.filter((n) => !(BENCHES as readonly string[]).includes(n));
if (unknown.length > 0) {
  console.error(
    `error: unknown bench: ${unknown.join(", ")} (known: ${BENCHES.join(", ")}); see cli.ts ` +
      "bench --help",
  );
  Deno.exit(2);
}

const selected = names.length > 0 ? names : [...BENCHES];
let failures = 0;
for (const name of selected) {
  const script = new URL(`./${name}_bench.ts`, import.meta.url);
  console.log(`\n=== bench: ${name} ===`);
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--v8-flags=--expose-gc", script.pathname, ...passThrough],
    stdout: "inherit",
    stderr: "inherit",
  }).spawn();
  const { code } = await child.status;
  if (code !== 0) {
    failures++;
    console.error(`bench ${name} exited with code ${code}`);
  }
}
Deno.exit(failures === 0 ? 0 : 1);
