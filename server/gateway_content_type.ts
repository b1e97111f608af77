/**
 * The `Content-Type` of a plain read from the gateway, for a file whose pin recorded none (a UnixFS
 * id carries no type): from its name's extension when the URL gives one (`/ipfs/{cid}/site/app.css`),
 * else from its first bytes. The Path Gateway spec asks for both ("sniffing based on file name
 * and magic bytes"); the name wins because many types (text, CSS, JSON) have no magic bytes.
 *
 * @module
 */
import { MEDIA_TYPE } from "../protocols/media_type.ts";

/**
 * Bytes sniffed to guess a plain read's content type: what WHATWG MIME Sniffing and Go's
 * `http.DetectContentType` (kubo's) read, enough to tell text from binary. Magic bytes need 16;
 * text has none, and binary data shows its control bytes within a few hundred. Inside the first
 * leaf, which a read verifies whole anyway.
 */
export const SNIFF_BYTES = 512;

/** Type of a name's extension: what a browser needs to show, play or load the file. */
const TYPE_BY_EXTENSION: Readonly<Record<string, string>> = {
  html: "text/html; charset=utf-8",
  htm: "text/html; charset=utf-8",
  txt: "text/plain; charset=utf-8",
  md: "text/markdown; charset=utf-8",
  css: "text/css; charset=utf-8",
  csv: "text/csv; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  mjs: "text/javascript; charset=utf-8",
  json: "application/json",
  // RFC 8949 §9.5's extension: a stored CBOR file is served as what `Accept: application/cbor`
  // asks for (gateway_routes.ts, FILE_TYPED_FORMATS).
  cbor: "application/cbor",
  xml: "application/xml",
  svg: "image/svg+xml",
  png: "image/png",
  jpg: "image/jpeg",
  jpeg: "image/jpeg",
  gif: "image/gif",
  webp: "image/webp",
  avif: "image/avif",
  ico: "image/vnd.microsoft.icon",
  webm: "video/webm",
  mp4: "video/mp4",
  ogg: "audio/ogg",
  mp3: "audio/mpeg",
  wav: "audio/wav",
  pdf: "application/pdf",
  wasm: "application/wasm",
  woff2: "font/woff2",
};

/**
 * A file's recorded type (its pin's label) as a `Content-Type`, or `undefined` when it is no
 * media type: `POST /v1/files` checks `mime`, but `cli.ts put --mime` records what it is given,
 * as did stores written before that check, and one no header carries (CR LF, a character past
 * U+00FF) made every read of the file, on both routes, a 500. Such a label is ignored: the file
 * is typed as if none were recorded.
 *
 * @example
 * ```ts
 * import { headerType } from "./gateway_content_type.ts";
 * headerType("video/mp4"); // "video/mp4"
 * headerType("text/plain\r\nx: 1"); // undefined
 * ```
 */
export function headerType(recorded: string | undefined): string | undefined {
  return recorded !== undefined && MEDIA_TYPE.test(recorded) ? recorded : undefined;
}

/**
 * The type a file `name` is known by, from its extension (case ignored), or `undefined`.
 *
 * @example
 * ```ts
 * import { typeFromName } from "./gateway_content_type.ts";
 * typeFromName("index.HTML"); // "text/html; charset=utf-8"
 * ```
 */
export function typeFromName(name: string | undefined): string | undefined {
  const dot = name?.lastIndexOf(".") ?? -1;
  if (name === undefined || dot <= 0) return undefined;
  return TYPE_BY_EXTENSION[name.slice(dot + 1).toLowerCase()];
}

/**
 * A content type from a file's first bytes ({@link SNIFF_BYTES} of them): the few formats a browser
 * must be told to play or show, by their magic bytes; then text, which has none: no byte WHATWG
 * MIME Sniffing calls binary data (a control character other than tab, LF, FF, CR and ESC) is
 * `text/plain`, with `charset=utf-8` when the bytes are UTF-8 (the Path Gateway spec: "detect
 * plain text file and return text/plain instead of application/octet-stream"). Anything else is
 * bytes.
 *
 * @example
 * ```ts
 * import { typeFromBytes } from "./gateway_content_type.ts";
 * typeFromBytes(new Uint8Array([0x89, 0x50, 0x4e, 0x47])); // "image/png"
 * ```
 */
export function typeFromBytes(head: Uint8Array): string {
  const starts = (...bytes: number[]) => bytes.every((b, i) => head[i] === b);
  const ascii = (at: number, text: string) =>
    [...text].every((ch, i) => head[at + i] === ch.charCodeAt(0));
  if (starts(0x1a, 0x45, 0xdf, 0xa3)) return "video/webm";
  if (ascii(4, "ftyp")) {
    // An ISO-BMFF file: its major brand says which. AVIF and HEIF images are ISO-BMFF too, and
    // labelled video/mp4 a page's <img> got a "video" (WHATWG MIME Sniffing reads MP4 from the
    // brand, not from `ftyp` alone).
    const brand = String.fromCharCode(...head.subarray(8, 12));
    if (brand === "avif" || brand === "avis") return "image/avif";
    if (["heic", "heix", "heim", "heis", "mif1", "msf1"].includes(brand)) return "image/heif";
    return "video/mp4";
  }
  if (ascii(0, "OggS")) return "audio/ogg";
  if (ascii(0, "RIFF") && ascii(8, "WAVE")) return "audio/wav";
  if (starts(0x89, 0x50, 0x4e, 0x47)) return "image/png";
  if (starts(0xff, 0xd8, 0xff)) return "image/jpeg";
  if (ascii(0, "GIF87a") || ascii(0, "GIF89a")) return "image/gif";
  if (ascii(0, "RIFF") && ascii(8, "WEBP")) return "image/webp";
  // A PDF starts as text: told apart before the text rule.
  if (ascii(0, "%PDF-")) return "application/pdf";
  if (!head.some(isBinaryDataByte)) {
    return isUtf8(head) ? "text/plain; charset=utf-8" : "text/plain";
  }
  return "application/octet-stream";
}

/** A byte WHATWG MIME Sniffing calls binary data: no text holds it. */
function isBinaryDataByte(byte: number): boolean {
  return byte <= 0x08 || byte === 0x0b || (byte >= 0x0e && byte <= 0x1a) ||
    (byte >= 0x1c && byte <= 0x1f);
}

/** True when `head` is UTF-8, but for a character cut at its end (a sniffed prefix may cut one). */
function isUtf8(head: Uint8Array): boolean {
  try {
    new TextDecoder("utf-8", { fatal: true }).decode(head, { stream: true });
    return true;
  } catch {
    return false;
  }
}
