/**
 * Review s61 (ops2, S8): the common `--peer` slip is the peer's HTTP `--port` in place of its
 * `--p2p-port`; the help line said only `dial this peer`. It now says which port.
 */
import assert from "node:assert/strict";
import { START_HELP } from "../../node/start_help.ts";

Deno.test("review s61 ops2: start's help says --peer takes the peer's --p2p-port, not its HTTP --port", () => {
  const line = START_HELP.split("\n").find((l) => l.trimStart().startsWith("--peer "));
  assert.ok(line !== undefined, "a --peer line");
  const block = START_HELP.slice(START_HELP.indexOf(line), START_HELP.indexOf("--swarm "));
  assert.match(block, /the peer's --p2p-port, not its HTTP --port/);
});
