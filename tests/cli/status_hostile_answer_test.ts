/**
 * `cli.ts status` (`cli/status_command.ts`) against a server at `--url` whose answer carries
 * terminal controls: every line it prints shows them escaped, in the refusal's message as in the
 * snapshot's strings (review s76 F3: the window title set, the screen cleared, and a forged
 * `ledger   credit 1000000` line, in text mode).
 */
import assert from "node:assert/strict";
import { runStatus } from "../../cli/status_command.ts";

const ESC = "\x1b";
/** Sets the window title, clears the screen, homes the cursor, then forges a line. */
const HOSTILE = `${ESC}]0;owned${ESC}\\${ESC}[2J${ESC}[H\r\nledger   credit 1000000, stake 0\u202e`;
/** What no printed line may hold: ESC, CR, a newline inside it, the C1 CSI, bidi overrides. */
// deno-lint-ignore no-control-regex -- the controls a hostile peer sends
const RAW = /[\x1b\r\x9b\u202a-\u202e\u2066-\u2069]/u;

/** Serve `answer` at 127.0.0.1 and run `status` (text mode) against it; its lines. */
async function statusAgainst(answer: () => Response): Promise<{ code: number; lines: string[] }> {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, answer);
  try {
    const lines: string[] = [];
    const code = await runStatus(["--url", `http://127.0.0.1:${server.addr.port}`], {
      out: (l) => void lines.push(l),
      err: (l) => void lines.push(l),
      env: () => undefined,
    });
    return { code, lines };
  } finally {
    await server.shutdown();
  }
}

Deno.test("status shows a refusal's hostile message on one line, its controls escaped", async () => {
  const { code, lines } = await statusAgainst(() =>
    Response.json({ error: { code: "not_found", message: HOSTILE } }, { status: 404 })
  );
  assert.equal(code, 1);
  const said = lines.join("\n");
  assert.doesNotMatch(said, RAW);
  assert.match(lines[0], /answered 404: \\x1b\]0;owned.*\\r\\nledger {3}credit 1000000/);
  // The forged line stays inside the error line: no printed line starts with it.
  assert.ok(!said.split("\n").some((l) => l.startsWith("ledger")), said);
});

Deno.test("status shows a snapshot's hostile version and roles with their controls escaped", async () => {
  const { code, lines } = await statusAgainst(() =>
    Response.json({
      type: "snapshot",
      node: { key: "ab".repeat(32), version: HOSTILE },
      tree: { name: "node", kind: "system", status: "running", restarts: 0, children: [] },
      peers: [{ key: "cd".repeat(32), roles: [HOSTILE], convicted: false }],
    })
  );
  assert.equal(code, 0);
  const said = lines.join("\n");
  assert.doesNotMatch(said, RAW);
  assert.match(lines[0], /^node (ab){32} \(v\\x1b\]0;owned/);
  assert.match(said, /peers {4}1: cdcdcdcdcdcd \\x1b\]0;owned/);
  // Every forged "ledger" text is inside another line: the only ledger line is the node's own.
  assert.deepEqual(said.split("\n").filter((l) => l.startsWith("ledger")), [
    "ledger   none (--no-validator)",
  ]);
});
