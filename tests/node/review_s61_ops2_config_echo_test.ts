/**
 * Review s61 (ops2, S6; test written by ops): with several `--peer` flags, a typo in one (`127.0.0.1:77x1`) was refused as
 * `network.peers.1: expected HOST:PORT with a port 1–65535 [from --peer]`: the operator had to
 * count flags from 0 to find which one, where `--port abc` says `got "abc"`. The refusal now
 * quotes the address it refused.
 */
import assert from "node:assert/strict";
import { resolveStartConfig } from "../../node/start_command.ts";

Deno.test("review s61 ops2: a malformed --peer is refused quoting the address, among several", async () => {
  await assert.rejects(
    resolveStartConfig([
      "--peer",
      "127.0.0.1:7741",
      "--peer",
      "127.0.0.1:77x1",
      "--peer",
      "127.0.0.1:7743",
    ]),
    /network\.peers\.1: expected HOST:PORT with a port 1–65535, got "127\.0\.0\.1:77x1" \[from --peer\]/,
  );
});

Deno.test("review s61 ops2: a DHT bootstrap without a port is refused quoting it", async () => {
  await assert.rejects(
    resolveStartConfig(["--swarm-bootstrap", "1.2.3.4"]),
    /network\.swarm\.bootstrap\.0: expected HOST:PORT with a port 1–65535, got "1\.2\.3\.4"/,
  );
});
