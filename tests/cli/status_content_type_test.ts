/**
 * `cli.ts status` (`cli/status_command.ts`) against a server that does not answer like a node:
 * the "did not answer like a Veriflow node" line names the answer's Content-Type, the server's
 * choice, with its C1 controls escaped (review s77 vstr F6: Deno's fetch refuses C0 controls in a
 * header, but the bytes 0x80-0xff arrive as U+0080-U+00FF, and the line printed OSC, ST, CSI and
 * NEL as they were).
 */
import assert from "node:assert/strict";
import { runStatus } from "../../cli/status_command.ts";

/** What no printed line may hold: C0 controls, DEL, C1 controls. */
// deno-lint-ignore no-control-regex -- the controls a hostile server sends
const RAW = /[\x00-\x08\x0a-\x1f\x7f-\x9f]/;

const text = (s: string) => new TextEncoder().encode(s);
/** `text/html`, then OSC (a window title), ST, CSI clearing the screen, NEL, a forged line. */
const CONTENT_TYPE = new Uint8Array([
  ...text("text/html"),
  0x9d,
  ...text("0;owned"),
  0x9c,
  0x9b,
  ...text("2J"),
  0x85,
  ...text("ledger   credit 1000000"),
]);

/**
 * Answer one request on 127.0.0.1 with `status` and the raw {@link CONTENT_TYPE} bytes (no HTTP
 * library writes those), then run `status` (text mode) against it; its exit code and lines.
 */
async function statusAgainst(status: string, body: string) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const serving = (async () => {
    const conn = await listener.accept();
    try {
      await conn.read(new Uint8Array(4096));
      const bytes = text(body);
      await conn.write(
        new Uint8Array([
          ...text(`HTTP/1.1 ${status}\r\nContent-Type: `),
          ...CONTENT_TYPE,
          ...text(`\r\nContent-Length: ${bytes.length}\r\nConnection: close\r\n\r\n`),
          ...bytes,
        ]),
      );
    } finally {
      conn.close();
    }
  })();
  try {
    const lines: string[] = [];
    const code = await runStatus(["--url", `http://127.0.0.1:${listener.addr.port}`], {
      out: (l) => void lines.push(l),
      err: (l) => void lines.push(l),
      env: () => undefined,
    });
    return { code, lines };
  } finally {
    await serving;
    listener.close();
  }
}

for (
  const [status, body] of [["502 Bad Gateway", "<html>bad gateway</html>"], ["200 OK", "not json"]]
) {
  Deno.test(`status answered ${status} with a hostile Content-Type prints it escaped`, async () => {
    const { code, lines } = await statusAgainst(status, body);
    assert.equal(code, 1);
    const said = lines.join("\n");
    assert.doesNotMatch(said, RAW, JSON.stringify(said));
    assert.match(said, /did not answer like a Veriflow node/);
    assert.ok(said.includes("text/html\\x9d0;owned\\x9c\\x9b2J\\x85ledger"), said);
  });
}
