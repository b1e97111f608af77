/**
 * The file of what this node's audits hold against its peers (`storage/audit_penalties.ts`): a
 * reopened record keeps each demotion with the rounds it had left and each failed chunk, is its
 * owner's only, and a file this code did not write (another version, a check that does not match,
 * values out of the ranges it writes, too large) is set aside untouched and not trusted.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { sha256Hex } from "../../protocols/hash.ts";
import {
  AUDIT_PENALTIES_FILE,
  AuditPenalties,
  DEMOTION_ROUNDS,
  DEMOTION_STRIKES,
  MAX_AUDIT_PENALTIES_FILE_BYTES,
} from "../../storage/audit_penalties.ts";
import { GivenChunks } from "../../storage/given_chunks.ts";
import { ReplicatedStore } from "../../storage/replicated_store.ts";
import { MemoryPeer } from "./_memory_peer.ts";

const KEY = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku";
const OTHER = "bafkreierbigx4b5tdnttlv5x5nj57e3lwj2m4divjzzlst5d5pksyk66gq";

/** A record in a fresh directory, with the lines it logged. */
async function fresh() {
  const dir = await Deno.makeTempDir();
  const path = join(dir, AUDIT_PENALTIES_FILE);
  const lines: string[] = [];
  const open = () => AuditPenalties.open(path, { log: (l) => lines.push(l), now: () => 0 });
  return { dir, path, lines, open };
}

/** `peer` demoted: a failure of `KEY` in each of {@link DEMOTION_STRIKES} rounds. */
function demote(penalties: AuditPenalties, peer: string): void {
  for (let i = 0; i < DEMOTION_STRIKES; i++) {
    penalties.failedAudit(peer, [KEY]);
    penalties.auditRoundEnded();
  }
}

/** A file in this code's format around `state`, its check computed. */
function fileAround(state: unknown, version = 1): string {
  const json = JSON.stringify(state);
  const check = sha256Hex(new TextEncoder().encode(json));
  return `{"format":"audit-penalties","version":${version},"check":"${check}","state":${json}}\n`;
}

Deno.test("a reopened record keeps a demotion with the rounds it had left, and a failed chunk placed last", async () => {
  const { dir, open } = await fresh();
  let penalties = await open();
  try {
    const peers = [new MemoryPeer(), new MemoryPeer(), new MemoryPeer(), new MemoryPeer()];
    const [liar] = peers;
    demote(penalties, liar.id); // last strike in round 2
    for (let i = 0; i < 40; i++) penalties.auditRoundEnded();
    await penalties.close();

    penalties = await open();
    assert.equal(penalties.round, DEMOTION_STRIKES + 40, "the rounds go on from where they were");
    const store = new ReplicatedStore(peers, { replicas: 2, given: new GivenChunks(), penalties });
    assert.equal(store.demoted(liar.id), true);
    assert.equal(store.failedAuditOf(liar.id, KEY), true);
    assert.equal(store.placement(OTHER).at(-1), liar, "placed last for every chunk");
    // Round 2 + DEMOTION_ROUNDS is its last; 3 + 40 have ended.
    for (let r = penalties.round; r < 2 + DEMOTION_ROUNDS; r++) store.auditRoundEnded();
    assert.equal(store.demoted(liar.id), true, "its last round is not over");
    store.auditRoundEnded();
    assert.equal(store.demoted(liar.id), false, "over on time");
  } finally {
    await penalties.close(); // each round's end writes the record: waited for before the removal
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the record's file is its owner's only", async () => {
  const { dir, path, open } = await fresh();
  try {
    const penalties = await open();
    demote(penalties, "a1b2");
    await penalties.close();
    if (Deno.build.os !== "windows") assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

for (
  const [what, bytes, aside] of [
    ["not JSON", '{"format":"audit-pe', "rejected"],
    [
      "a check that does not match",
      fileAround({ round: 5, failed: [], strikes: [], demoted: [], departed: [] })
        .replace('"round":5', '"round":6'),
      "rejected",
    ],
    [
      "a demotion longer than DEMOTION_ROUNDS",
      fileAround({
        round: 5,
        failed: [],
        strikes: [],
        demoted: [["a1b2", 5 + DEMOTION_ROUNDS + 1]],
        departed: [],
      }),
      "rejected",
    ],
    [
      "a strike after the round it names",
      fileAround({ round: 5, failed: [], strikes: [["a1b2", [9]]], demoted: [], departed: [] }),
      "rejected",
    ],
    ["another version", fileAround({ anything: true }, 2), "v2"],
  ] as const
) {
  Deno.test(`a penalties file with ${what} is set aside untouched, logged, and not trusted`, async () => {
    const { dir, path, lines, open } = await fresh();
    try {
      await Deno.writeTextFile(path, bytes);
      const penalties = await open();
      assert.equal(penalties.empty, true);
      assert.equal(penalties.round, 0);
      const names = (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name);
      const kept = names.filter((n) => n.startsWith(`${AUDIT_PENALTIES_FILE}.${aside}-`));
      assert.equal(kept.length, 1, names.join(", "));
      assert.equal(await Deno.readTextFile(join(dir, kept[0])), bytes);
      assert.equal(lines.length, 1);
      assert.match(lines[0], /set it aside, untouched/);
      // The next write starts afresh beside it, never over it.
      demote(penalties, "a1b2");
      await penalties.close();
      assert.equal((await open()).demoted("a1b2"), true);
      assert.equal(await Deno.readTextFile(join(dir, kept[0])), bytes);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

Deno.test("a penalties file larger than any this node writes is set aside unread", async () => {
  const { dir, path, lines, open } = await fresh();
  try {
    const file = await Deno.open(path, { write: true, create: true });
    await file.truncate(MAX_AUDIT_PENALTIES_FILE_BYTES + 1);
    file.close();
    const penalties = await open();
    assert.equal(penalties.empty, true);
    assert.match(lines.join("\n"), /more than any this node writes/);
    assert.equal(await Deno.stat(path).then(() => true, () => false), false);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
