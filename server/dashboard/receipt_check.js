/**
 * Checks a Veriflow receipt in the page, with nothing but the browser's Web Crypto: the
 * Ed25519 signature of the key the receipt names over its canonical CBOR, that the receipt is
 * for the job the page built (its id, model, input commitment, parameters), that it commits to
 * the text the page received, and that it counts the tokens the page received. The same rules as
 * `verifyReceipt` in `protocols/receipt.ts`, written anew for the browser, so the node cannot
 * pass off a receipt for another job, another text or another number of tokens as the page's.
 *
 * What it does not say: who holds that key. The page checks the receipt against nothing the
 * network knows (no peer table, stake or ledger): "verified" means signed by the key shown, for
 * this job, this text and these tokens — not that the key is a known or staked worker.
 *
 * @module
 */

const RECEIPT_DOMAIN = "veriflow/receipt/v1";
const INPUT_DOMAIN = "veriflow/input/v2:";
const utf8 = new TextEncoder();

/** @param {Uint8Array} bytes @returns {string} */
export function toHex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** @param {string} hex @returns {Uint8Array} */
export function fromHex(hex) {
  if (!/^([0-9a-f]{2})*$/i.test(hex)) throw new Error("not hex");
  return new Uint8Array(hex.match(/../g)?.map((h) => parseInt(h, 16)) ?? []);
}

/**
 * Canonical CBOR as the node writes it for hashing and signing (`protocols/cbor.ts`): map keys
 * sorted by length, then by UTF-16 code units, index-like keys first; shortest headers; integers in [-2^32, 2^32) as integers, every other number
 * as a 64-bit float; `undefined` fields left out.
 *
 * @param {unknown} value
 * @returns {Uint8Array}
 */
export function encodeCanonical(value) {
  /** @type {number[]} */
  const out = [];
  const head = (major, n) => {
    const m = major << 5;
    if (n < 24) out.push(m | n);
    else if (n < 0x100) out.push(m | 24, n);
    else if (n < 0x10000) out.push(m | 25, n >> 8, n & 0xff);
    else out.push(m | 26, (n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff);
  };
  const write = (v) => {
    if (v === null || v === undefined) out.push(0xf6);
    else if (v === true) out.push(0xf5);
    else if (v === false) out.push(0xf4);
    else if (typeof v === "number") {
      if (Number.isInteger(v) && v >= 0 && v < 2 ** 32) head(0, v);
      else if (Number.isInteger(v) && v < 0 && -v - 1 < 2 ** 32) head(1, -v - 1);
      else {
        const view = new DataView(new ArrayBuffer(8));
        view.setFloat64(0, v);
        out.push(0xfb, ...new Uint8Array(view.buffer));
      }
    } else if (typeof v === "string") {
      const bytes = utf8.encode(v);
      head(3, bytes.length);
      out.push(...bytes);
    } else if (v instanceof Uint8Array) {
      head(2, v.length);
      out.push(...v);
    } else if (Array.isArray(v)) {
      head(4, v.length);
      v.forEach(write);
    } else if (typeof v === "object") {
      // The node's order (protocols/cbor.ts): shorter first, then by UTF-16 code units, then as
      // a JavaScript object lists them (index-like keys first).
      const sorted = {};
      for (
        const [key, item] of Object.entries(v)
          .filter(([, item]) => item !== undefined)
          .sort(([a], [b]) => a.length - b.length || (a < b ? -1 : a > b ? 1 : 0))
      ) sorted[key] = item;
      const entries = Object.entries(sorted);
      head(5, entries.length);
      for (const [key, item] of entries) {
        write(key);
        write(item);
      }
    } else throw new TypeError(`cannot encode ${typeof v}`);
  };
  write(value);
  return new Uint8Array(out);
}

/** @param {Uint8Array} bytes */
async function sha256Hex(bytes) {
  return toHex(new Uint8Array(await crypto.subtle.digest("SHA-256", bytes)));
}

/**
 * The receipt's commitment to the job's input: HMAC-SHA256 keyed by the nonce.
 * @param {{prompt: string, nonce: string}} job
 */
async function inputHashOf(job) {
  const key = await crypto.subtle.importKey(
    "raw",
    utf8.encode(job.nonce),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const message = utf8.encode(INPUT_DOMAIN + job.prompt);
  return toHex(new Uint8Array(await crypto.subtle.sign("HMAC", key, message)));
}

/**
 * The job id: SHA-256 of the job's canonical CBOR.
 * @param {object} job
 */
export function jobIdOf(job) {
  return sha256Hex(encodeCanonical(job));
}

const HEX64 = /^[0-9a-f]{64}$/;
const isInt = (n, min, max) => Number.isInteger(n) && n >= min && n <= max;
const isNonNegative = (n) => typeof n === "number" && Number.isFinite(n) && n >= 0;
/** Whether `value` is a plain object with exactly these keys. */
const hasKeys = (value, keys) =>
  value !== null && typeof value === "object" && !Array.isArray(value) &&
  Object.keys(value).length === keys.length && keys.every((k) => Object.hasOwn(value, k));

/** The fields every receipt has. */
const RECEIPT_FIELDS = [
  "v",
  "kind",
  "jobId",
  "model",
  "inputHash",
  "params",
  "outputHash",
  "commitment",
  "tokenCount",
  "worker",
  "timings",
  "sig",
];

/**
 * Whether a receipt's optional `end` is as the node's schema takes it: absent (the model's
 * stopping rule ended the job), or `cancelled` (its requester cancelled after `tokenCount`
 * tokens: at least one, since a cancel before any token has no receipt).
 * @param {Record<string, any>} r
 */
const endWellFormed = (r) =>
  !Object.hasOwn(r, "end") || (r.end === "cancelled" && r.tokenCount >= 1);

/**
 * Whether a receipt's optional `promptTokens` (the prompt tokens its worker prefilled, paid beside
 * the output) is as the node's schema takes it: absent (a receipt from before the field), or a
 * count on a text receipt.
 * @param {Record<string, any>} r
 */
const promptTokensWellFormed = (r) =>
  !Object.hasOwn(r, "promptTokens") ||
  (r.kind === "text" && isInt(r.promptTokens, 0, Number.MAX_SAFE_INTEGER));

/** The fields a receipt may have besides {@link RECEIPT_FIELDS}. */
const OPTIONAL_FIELDS = ["end", "promptTokens"];

/**
 * Whether `receipt` is a receipt as the node's `ReceiptSchema` (`protocols/receipt.ts`) takes
 * one: its version, its fields and no others (the node drops a field it does not know before
 * it checks the signature), a commitment to its tokens a validator can challenge.
 * @param {Record<string, any>} r
 */
function wellFormed(r) {
  const c = r.commitment;
  const t = r.timings;
  const fields = [...RECEIPT_FIELDS, ...OPTIONAL_FIELDS.filter((k) => Object.hasOwn(r, k))];
  return hasKeys(r, fields) && endWellFormed(r) && promptTokensWellFormed(r) && r.v === 1 &&
    (r.kind === "text" || r.kind === "tensor") && HEX64.test(r.jobId) &&
    typeof r.model === "string" && r.model.length > 0 && HEX64.test(r.inputHash) &&
    HEX64.test(r.outputHash) && isInt(r.tokenCount, 0, Number.MAX_SAFE_INTEGER) &&
    typeof r.worker === "string" && /^[0-9a-f]{64}$/i.test(r.worker) &&
    typeof r.sig === "string" && /^[0-9a-f]{128}$/i.test(r.sig) &&
    hasKeys(c, ["scheme", "root", "chunkSize", "tokenBytes"]) &&
    typeof c.scheme === "string" && c.scheme.length <= 32 && HEX64.test(c.root) &&
    isInt(c.chunkSize, 1, 255) && isInt(c.tokenBytes, 0, 4) &&
    hasKeys(t, ["startedAt", "firstTokenMs", "totalMs"]) && isNonNegative(t.startedAt) &&
    isNonNegative(t.firstTokenMs) && isNonNegative(t.totalMs);
}

/**
 * Check `receipt` (as the node sends it: JSON, `worker` and `sig` in hex) against the job the
 * page submitted, the text it received and the number of tokens it received (`prompt_token`
 * messages: the node sends the page every token of its own job, never drops one). Never throws.
 *
 * The token count is checked apart from the text: a token may decode to no text (part of a
 * character, a special token), so a receipt that bills tokens the page never got can match the
 * text exactly. Such a receipt fails `tokens received`, and `detail` says by how much, without
 * saying which side is wrong: the worker billed more than it sent, or the node did not pass on
 * all it got.
 *
 * @param {Record<string, any>} receipt
 * @param {{job?: Record<string, any>, output?: string, tokens?: number}} against
 * @returns {Promise<{ok: boolean, checks: {name: string, ok: boolean}[], reason?: string,
 *   detail?: string}>}
 */
export async function checkReceipt(receipt, against = {}) {
  /** @type {{name: string, ok: boolean}[]} */
  const checks = [];
  const check = (name, ok) => (checks.push({ name, ok }), ok);
  /** @type {string | undefined} */
  let detail;
  try {
    check("format", wellFormed(receipt));
    const { sig, ...unsigned } = receipt;
    const worker = fromHex(String(unsigned.worker));
    const signed = encodeCanonical({
      domain: RECEIPT_DOMAIN,
      receipt: { ...unsigned, worker },
    });
    const key = await crypto.subtle.importKey("raw", worker, { name: "Ed25519" }, false, [
      "verify",
    ]);
    check(
      "signature",
      await crypto.subtle.verify({ name: "Ed25519" }, key, fromHex(String(sig)), signed),
    );
    const { job, output } = against;
    if (job !== undefined) {
      check("job id", (await jobIdOf(job)) === receipt.jobId);
      check("kind", job.kind === receipt.kind);
      check("model", job.model === receipt.model);
      check("input", (await inputHashOf(job)) === receipt.inputHash);
      check(
        "params",
        toHex(encodeCanonical(job.params)) === toHex(encodeCanonical(receipt.params)),
      );
      check("token count", receipt.tokenCount <= job.params.maxTokens);
    }
    if (output !== undefined) {
      check("output", (await sha256Hex(utf8.encode(output))) === receipt.outputHash);
    }
    if (
      against.tokens !== undefined &&
      !check("tokens received", receipt.tokenCount === against.tokens)
    ) {
      detail =
        `the receipt claims ${receipt.tokenCount} tokens, this page received ${against.tokens}`;
    }
  } catch (error) {
    checks.push({
      name: `malformed (${error instanceof Error ? error.message : error})`,
      ok: false,
    });
  }
  const failed = checks.find((c) => !c.ok);
  return {
    ok: failed === undefined,
    checks,
    reason: failed?.name,
    ...(detail === undefined ? {} : { detail }),
  };
}
