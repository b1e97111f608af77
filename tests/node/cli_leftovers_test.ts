/**
 * The command line from an operator's side, with wrong input the earlier reviews left: a key file
 * too short for `share`, a mistyped `--data` for `share revoke`, and `start`'s hint after an
 * invalid configuration.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { runPut } from "../../storage/storage_commands.ts";
import { runShare } from "../../storage/exchange_commands.ts";
import { runStart, type StartCommandIo } from "../../node/start_command.ts";
import { captureConsole as capture, exists } from "../_helpers/console_capture.ts";

Deno.test("share --key-file shorter than 32 bytes exits 2 naming the flag, the file, its size and the 32 bytes it needs, as put does", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const data = join(dir, "node");
    const file = join(dir, "f.txt");
    const key = join(dir, "k32");
    const short = join(dir, "k31");
    await Deno.writeTextFile(file, "private text");
    const secret = crypto.getRandomValues(new Uint8Array(32));
    await Deno.writeFile(key, secret);
    await Deno.writeFile(short, secret.subarray(0, 31));
    const put = await capture(() => runPut(["--private", "--key-file", key, "--data", data, file]));
    assert.equal(put.code, 0, put.err);
    const cid = put.out.trim().split("\n").pop()!;
    const shared = await capture(() => runShare([cid, "--key-file", short, "--data", data]));
    assert.equal(shared.code, 2, shared.err);
    assert.match(shared.err, new RegExp(`--key-file ${short} holds 31 bytes`));
    assert.match(shared.err, /at least 32 bytes/);
    assert.equal(shared.out, "", "no link is printed");
    // The same file is refused the same way by put, which never took it.
    const putShort = await capture(() =>
      runPut(["--private", "--key-file", short, "--data", data, file])
    );
    assert.equal(putShort.code, 2);
    assert.match(putShort.err, new RegExp(`--key-file ${short} holds 31 bytes`));
    // A key of 32 bytes shares.
    const ok = await capture(() => runShare([cid, "--key-file", key, "--data", data]));
    assert.equal(ok.code, 0, ok.err);
    assert.match(ok.out, /\/share\//);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("share revoke --data DIR that is not there exits 1 saying store_missing and check --data, not 'no share', and creates nothing", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const data = join(dir, "typo");
    for (const id of ["AAAAAAAAAAAAAAAAAAAAAA", "not-a-share-id"]) {
      const revoked = await capture(() => runShare(["revoke", id, "--data", data]));
      assert.equal(revoked.code, 1);
      assert.match(revoked.err, /^error \[store_missing\]: .*check --data/);
      assert.doesNotMatch(revoked.err, /no share/);
    }
    assert.equal(await exists(data), false, "share revoke created the data directory");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("start with an invalid configuration offers --print-config only as the check after the fix, and not to whoever just ran it", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const file = join(dir, "config.json");
    await Deno.writeTextFile(file, JSON.stringify({ roles: { storag: false } }));
    const startErr = async (args: string[]) => {
      const err: string[] = [];
      const io: StartCommandIo = {
        onStopSignal: () => () => {},
        out: () => {},
        err: (line) => void err.push(line),
        now: () => 0,
        env: () => ({}),
      };
      assert.equal(await runStart(args, io), 2);
      return err.join("\n");
    };
    // --print-config resolves the same configuration: it fails the same way, so the hint to
    // run it again would send the operator round in a circle.
    const printing = await startErr(["--config", file, "--print-config"]);
    assert.match(printing, /roles\.storag: unknown key/);
    assert.match(printing, /fix the key named above/);
    assert.doesNotMatch(printing, /--print-config/);
    // Without it, it is offered for after the fix, never as the way to find the bad value.
    const starting = await startErr(["--config", file]);
    assert.match(starting, /fix the key named above; then cli\.ts start --print-config/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
