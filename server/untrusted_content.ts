/**
 * Headers for bytes the node serves on its own origin but did not write: stored files, as
 * `/ipfs/{cid}` and `/v1/files/{cid}` return them with the type their uploader recorded.
 *
 * A file stored as `text/html` (or SVG, XML) would otherwise run as a page on the node's origin —
 * the origin of the operator's dashboard, whose token the page keeps in `sessionStorage` and whose
 * live socket trusts same-origin pages. `sandbox` makes such a document an opaque origin with
 * scripts, forms and plugins off; `default-src 'none'` loads nothing else for it. A file read as
 * a subresource (an `<img>`, a `<video>`, a `fetch`) is unaffected: a response's CSP applies only
 * when it is a document.
 *
 * @module
 */

/** Set on every response whose body is a stored file's bytes. */
export const UNTRUSTED_CONTENT_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  "content-security-policy": "sandbox; default-src 'none'",
  "x-content-type-options": "nosniff",
});
