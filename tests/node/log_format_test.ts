import assert from "node:assert/strict";
import { lineLogger, logRecord } from "../../node/log_format.ts";

const FIXED = new Date("2025-01-02T03:04:05.000Z");

Deno.test("json log lines are one object each: time, level, component, msg", () => {
  const lines: string[] = [];
  const log = lineLogger("json", (l) => lines.push(l), undefined, () => FIXED);
  log("validator: challenged job 3f2a9c → valid");
  log("actor node/storage crashed: disk full");
  log("\nsupervision tree:\nnode [system]\n");
  const records = lines.map((l) => JSON.parse(l));
  assert.deepEqual(records[0], {
    time: "2025-01-02T03:04:05.000Z",
    level: "info",
    component: "validator",
    msg: "validator: challenged job 3f2a9c → valid",
  });
  assert.equal(records[1].level, "error");
  assert.equal(records[2].msg, "supervision tree:\nnode [system]");
  assert.ok(lines.every((l) => !l.includes("\n")), "one line per record");
});

Deno.test("text log lines are written as the node says them", () => {
  const lines: string[] = [];
  lineLogger("text", (l) => lines.push(l))("heartbeat up 10s");
  assert.deepEqual(lines, ["heartbeat up 10s"]);
  assert.equal(logRecord("error: the node did not start").level, "error");
  assert.equal(logRecord("x", "warn").level, "warn");
});

Deno.test("a line led by its kind (error:, try:, fatal:) is the node's, not a component named error or try", () => {
  for (
    const line of [
      "error: the node did not start: Address in use",
      'try: deno run -A cli.ts infer --url ws://127.0.0.1:8080/v1/ws "Once upon a time"',
      "fatal: the supervisor gave up",
      "warning: no model loaded",
      "interrupted: stopping start-up after the current step",
    ]
  ) {
    assert.equal(logRecord(line).component, "node", line);
  }
  assert.equal(logRecord("error: the node did not start: x").level, "error");
  assert.equal(logRecord("validator: challenged job 3f2a9c").component, "validator");
  assert.equal(logRecord("training: round 3 started").component, "training");
});

// Review s74 F6: zero-width characters (U+200B, U+FEFF), the Arabic letter mark (U+061C, a bidi
// control), the LTR/RTL marks and a lone surrogate went into the log raw.
Deno.test("zero-width characters, bidi marks and lone surrogates are escaped in text and json alike", () => {
  const hidden = [
    "\u200b",
    "\u200c",
    "\u200d",
    "\u200e",
    "\u200f",
    "\ufeff",
    "\u061c",
    "\ud800",
    "\udfff",
  ];
  // Each beside a space: a joiner between two letters is writing, kept (the test below).
  const said = `peer says: a ${hidden.join(" b ")} c and an emoji 😀 stays`;
  const text: string[] = [];
  lineLogger("text", (l) => text.push(l))(said);
  const json: string[] = [];
  lineLogger("json", (l) => json.push(l), undefined, () => new Date(0))(said);
  for (const [form, line] of [["text", text[0]], ["json", json[0]]]) {
    for (const char of hidden) {
      assert.ok(!line.includes(char), `${form}: U+${char.charCodeAt(0).toString(16)} raw`);
      assert.ok(
        line.includes(`\\u${char.charCodeAt(0).toString(16).padStart(4, "0")}`),
        `${form}: U+${char.charCodeAt(0).toString(16)} written out`,
      );
    }
    assert.ok(line.includes("😀"), `${form}: a surrogate pair is a character, left as it is`);
  }
  assert.equal(JSON.parse(json[0]).msg, said, "the JSON reads back the same");
});

// Stop 78: the log wrote the joiners of an emoji sequence or of Persian out (`\u200d`), so a model
// or a peer's words named with 👩‍💻 read as escapes; a joiner that only hides (beside a space, at
// an end, doubled) is still written out, and so is everything that can spoof a line.
Deno.test("zero-width joiners inside a word stay in text and json; hiding ones, controls, bidi overrides and line separators are written out", () => {
  const kept = ["👩\u200d💻", "🏳️\u200d🌈", "می\u200cخواهم", "क्\u200dष"];
  const spoofing = [
    ["\u200d", "a \u200db"], // beside a space: hides
    ["\u200c", "ab\u200c"], // at the end: hides
    ["\u200d", "a\u200d\u200db"], // doubled: hides
    ["\u202e", "a\u202eb"], // a bidi override between letters
    ["\u2028", "a\u2028b"], // a line separator
    ["\x1b", "a\x1b[2Jb"], // an escape sequence
    ["\u200b", "a\u200bb"], // a zero-width space between letters
  ] as const;
  const said = `peer says: ${[...kept, ...spoofing.map(([, text]) => text)].join(" | ")}`;
  const text: string[] = [];
  lineLogger("text", (l) => text.push(l))(said);
  const json: string[] = [];
  lineLogger("json", (l) => json.push(l), undefined, () => new Date(0))(said);
  for (const [form, line] of [["text", text[0]], ["json", json[0]]]) {
    for (const word of kept) {
      assert.ok(line.includes(word), `${form}: ${JSON.stringify(word)} kept`);
    }
    for (const [char, around] of spoofing) {
      const code = char.charCodeAt(0);
      const out = code < 0x100 && form === "text"
        ? `\\x${code.toString(16).padStart(2, "0")}`
        : `\\u${code.toString(16).padStart(4, "0")}`;
      assert.ok(!line.includes(around), `${form}: ${JSON.stringify(around)} raw`);
      assert.ok(line.includes(out), `${form}: ${out} written out in ${JSON.stringify(around)}`);
    }
  }
  assert.equal(text[0].split("\u200d").length - 1, 3, "text: only the three hiding ZWJs out");
  assert.equal(JSON.parse(json[0]).msg, said, "the JSON reads back the same");
});
