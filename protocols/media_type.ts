/**
 * Media types as a file's recorded type: what `POST /v1/files` and `cli.ts put --mime` accept,
 * and what a read serves as its `Content-Type`. One pattern for both ways in, since a label no
 * header can carry (CR LF, NUL, a character past U+00FF, nothing) made every read of the file
 * fail; one length limit for a file's labels (its name and type) likewise.
 *
 * @module
 */

/**
 * A media type a `Content-Type` header can carry (RFC 9110 §8.3.1): `type/subtype` of token
 * characters, then parameters in printable ASCII.
 */
export const MEDIA_TYPE =
  /^[!#$%&'*+.^_`|~0-9A-Za-z-]+\/[!#$%&'*+.^_`|~0-9A-Za-z-]+(?:[ \t]*;[\x20-\x7e\t]*)?$/;

/**
 * Longest `name` or `mime` a put records, in UTF-16 code units (JavaScript's `length`), by
 * `POST /v1/files` and `cli.ts put` alike. A name is a file name (255 bytes on common file
 * systems) and a type a short header value; the bound also keeps both together well inside the
 * store's pin label (4 KiB, past which a label reads as none and is lost).
 */
export const MAX_FILE_LABEL_CHARS = 256;
