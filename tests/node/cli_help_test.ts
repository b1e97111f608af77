/**
 * `cli.ts` as a newcomer following the README runs it, with the permissions they would give:
 * every command's `--help` prints its usage with examples of that command and exits 0 with no
 * permission at all; `infer` and `status` run
 * with `--allow-net` alone say, when the node asks for a key, that `VERIFLOW_API_KEY` cannot be
 * read without `--allow-env=VERIFLOW_API_KEY`; and `get` of a CID the store does not hold says
 * what to do next.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { COMMANDS } from "../../cli.ts";

const CLI = new URL("../../cli.ts", import.meta.url).pathname;

/** What a `deno run` of `cli.ts` gave. */
interface Ran {
  code: number;
  out: string;
  err: string;
}

/**
 * Run `deno run <permissions> cli.ts <args>`. `env` is the child's whole environment when given
 * (else the test's, with `NO_COLOR`).
 */
async function cli(
  permissions: string[],
  args: string[],
  env?: Record<string, string>,
): Promise<Ran> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", ...permissions, CLI, ...args],
    stdout: "piped",
    stderr: "piped",
    env: env ?? { NO_COLOR: "1" },
    clearEnv: env !== undefined,
  }).output();
  const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  return { code: output.code, out: text(output.stdout), err: text(output.stderr) };
}

/** The test's environment with `VERIFLOW_API_KEY` set to `key`, or without it (`undefined`). */
function envWithKey(key: string | undefined): Record<string, string> {
  const env: Record<string, string> = { ...Deno.env.toObject(), NO_COLOR: "1" };
  delete env.VERIFLOW_API_KEY;
  return key === undefined ? env : { ...env, VERIFLOW_API_KEY: key };
}

/** `fn` over `items`, `width` at a time: the machine is small and shared. */
async function inBatches<T, R>(items: T[], width: number, fn: (item: T) => Promise<R>) {
  const results: R[] = [];
  for (let i = 0; i < items.length; i += width) {
    results.push(...await Promise.all(items.slice(i, i + width).map(fn)));
  }
  return results;
}

Deno.test("every command's --help prints its usage and exits 0 with no permission at all", async () => {
  const names = Object.keys(COMMANDS);
  const runs = await inBatches(names, 3, (name) => cli([], [name, "--help"]));
  const failed = names.flatMap((name, i) => {
    const { code, out, err } = runs[i];
    return code === 0 && /usage/i.test(out) && err === "" ? [] : [`${name}: exit ${code} ${err}`];
  });
  assert.deepEqual(failed, [], "commands whose --help needed a permission or failed");
});

Deno.test("every command's --help has an Examples block of that very command, as cli.ts --help promises", async () => {
  const usage = await cli([], ["--help"]);
  assert.match(usage.out, /Each command takes --help, with examples\./);
  const names = Object.keys(COMMANDS);
  const runs = await inBatches(names, 3, (name) => cli([], [name, "--help"]));
  const missing = names.filter((name, i) => {
    const block = /^Examples?:\n((?: {2}.*\n?)+)/m.exec(runs[i].out)?.[1] ?? "";
    // Each example line runs the command itself: `cli.ts NAME` (start's: `deno task start`).
    const runsIt = new RegExp(`(cli\\.ts|deno task) ${name}\\b`);
    return !block.split("\n").some((line) => runsIt.test(line));
  });
  assert.deepEqual(missing, [], "commands whose --help gives no example of themselves");
});

/**
 * A node's edge that requires an API key and was given none it accepts: 401 to every request,
 * the WebSocket upgrade included, with a Veriflow error body (what `status` reads).
 */
function keyRequiringNode(): Deno.HttpServer<Deno.NetAddr> {
  return Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, () =>
    Response.json(
      { error: { code: "api_key_required", message: "this node requires an API key" } },
      { status: 401 },
    ));
}

Deno.test("infer and status run with --allow-net alone say that VERIFLOW_API_KEY needs --allow-env=VERIFLOW_API_KEY when the node answers 401; unset, they ask for a key as before", async () => {
  const node = keyRequiringNode();
  const port = node.addr.port;
  try {
    const commands = [
      ["infer", "--url", `ws://127.0.0.1:${port}`, "--max-tokens", "5", "hi"],
      ["status", "--url", `http://127.0.0.1:${port}`],
    ];
    for (const args of commands) {
      const what = args[0];
      // The README's promise: --allow-net is all these commands need; the key is set but unread.
      const unread = await cli(["--allow-net"], args, envWithKey("0123456789abcdefXYZ"));
      assert.equal(unread.code, 1, `${what}: ${unread.err}`);
      assert.match(unread.err, /401/, what);
      assert.match(unread.err, /--allow-env=VERIFLOW_API_KEY/, `${what}: ${unread.err}`);
      // Readable and not set: the old hint, with no word of permissions.
      const unset = await cli(
        ["--allow-net", "--allow-env=VERIFLOW_API_KEY"],
        args,
        envWithKey(undefined),
      );
      assert.equal(unset.code, 1, `${what}: ${unset.err}`);
      assert.match(unset.err, /\(pass --api-key KEY or set VERIFLOW_API_KEY\)/, what);
      assert.doesNotMatch(unset.err, /allow-env/, what);
    }
  } finally {
    await node.shutdown();
  }
});

Deno.test("get of a CID the store does not hold exits 1 saying what to do next: check the CID and --data, or read it through a running node", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const data = join(dir, "node");
    const file = join(dir, "a.txt");
    await Deno.writeTextFile(file, "held\n");
    const put = await cli(["-A"], ["put", "--data", data, file]);
    assert.equal(put.code, 0, put.err);
    // A well-formed CID of bytes nobody put.
    const absent = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy";
    const get = await cli(["-A"], ["get", absent, "--data", data]);
    assert.equal(get.code, 1, get.err);
    assert.equal(get.err.trimEnd().split("\n").length, 1, get.err);
    assert.match(get.err, /^error \[chunk_not_found\]: no object .* in the local store; /);
    assert.match(get.err, new RegExp(`check the CID.*--data ${data}.*cli\\.ts ls --data ${data}`));
    assert.match(get.err, new RegExp(`running node.*/v1/files/${absent}`));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
