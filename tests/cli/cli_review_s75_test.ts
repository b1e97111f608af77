/**
 * The operator CLI's answers that review s75 found wrong: a refused `--data` is a usage error
 * (exit 2) in every command, as in `start` (F6); a negative number given as its own argument is
 * named with its value (F7); `keygen` on a link to nothing gives one reason (F8); a mistyped
 * command is never answered with one that starts or changes something on a guess.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { main } from "../../cli.ts";
import { captureConsole } from "../_helpers/console_capture.ts";

const cli = (...args: string[]) => captureConsole(() => main(args));

Deno.test("a --data led by ~ is refused with exit 2 by every command, as start refuses it", async () => {
  for (
    const args of [
      ["ls"],
      ["gc"],
      ["ledger", "verify"],
      ["ledger", "repair"],
      ["keygen"],
      ["calibrate"],
      ["export", "bafkqaaa"],
      ["share", "revoke", "x"],
    ]
  ) {
    const r = await cli(...args, "--data", "~/vf-review-s75");
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.err}`);
    assert.match(
      r.err,
      /\[invalid_config\]: --data ~\/vf-review-s75 starts with ~/,
      args.join(" "),
    );
  }
});

Deno.test("a negative number given as its own argument is refused naming its value and that it must not be negative, not a -VALUE placeholder", async () => {
  const cases: [string[], RegExp][] = [
    [["gc", "--grace-ms", "-5"], /--grace-ms must not be negative .*got "-5"/],
    [["calibrate", "--jobs", "-1"], /--jobs must not be negative .*got "-1"/],
    [["status", "--url", "-x"], /--url -x: a value led by - reads as a flag; write --url=-x/],
    [
      ["share", "bafkqaaa", "--expires", "-1h"],
      /--expires -1h: a value led by - reads as a flag; write --expires=-1h/,
    ],
  ];
  for (const [args, said] of cases) {
    const r = await cli(...args);
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.err}`);
    assert.doesNotMatch(r.err, /-VALUE/, args.join(" "));
    assert.match(r.err, said, args.join(" "));
  }
});

Deno.test("keygen on an identity.key that links to nothing gives that reason alone, not advice about a failed write", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-keygen-" });
  try {
    await Deno.symlink(join(dir, "nowhere", "key"), join(dir, "identity.key"));
    const r = await cli("keygen", "--data", dir);
    assert.equal(r.code, 1);
    assert.match(r.err, /identity\.key is a link to nothing/);
    assert.doesNotMatch(r.err, /no key was written|permissions|writable file system/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a mistyped command is offered status over start on a swap of letters, and nothing when it shares nothing with a command", async () => {
  const stauts = await cli("stauts");
  assert.equal(stauts.code, 2);
  assert.match(stauts.err, /unknown command: stauts \(did you mean status\?\)/);
  const flag = await cli("-V");
  assert.equal(flag.code, 2);
  assert.doesNotMatch(flag.err, /did you mean/);
  // A command that starts or changes something is offered for one typo only.
  assert.match((await cli("strat")).err, /did you mean start\?/);
  assert.doesNotMatch((await cli("stt")).err, /did you mean start\?/);
});
