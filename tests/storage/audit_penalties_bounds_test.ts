/**
 * The penalties record (`storage/audit_penalties.ts`) within the bounds its reader checks (review
 * s76 vstore F3, F4): whatever the writer writes is read back, so a real demotion survives a
 * restart however many throw-away holders came and went, or whatever ids a library caller used;
 * a file rejected for a bad id says so; and forgetting holders that left costs their own pairs
 * only, so one `set_peers` after a day's departures does not stall the node.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { sha256Hex } from "../../protocols/hash.ts";
import {
  AUDIT_PENALTIES_FILE,
  AuditPenalties,
  DEMOTION_STRIKES,
  MAX_FAILED_AUDITS,
} from "../../storage/audit_penalties.ts";

const KEY = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku";
/** The holder whose demotion must survive whatever else the record holds. */
const DEMOTED = "d3m0";
/** A departure clock whose retention runs out when told to. */
function departureClock() {
  const clock = { ranOut: false, now: () => 1_000, retentionRanOut: () => clock.ranOut };
  return clock;
}

/** A 64-hex-digit id, as a peer key's, for `i`. */
const idOf = (i: number) => i.toString(16).padStart(64, "0");

/**
 * A record in a fresh directory with {@link DEMOTED} demoted, `fill` run on it, closed and opened
 * again: the reopened record, and the lines both opens logged.
 */
async function roundTrip(fill: (penalties: AuditPenalties) => void) {
  const dir = await Deno.makeTempDir();
  const path = join(dir, AUDIT_PENALTIES_FILE);
  const lines: string[] = [];
  try {
    const penalties = await AuditPenalties.open(path, { log: (l) => lines.push(l) });
    for (let i = 0; i < DEMOTION_STRIKES; i++) {
      penalties.failedAudit(DEMOTED, [KEY]);
      penalties.auditRoundEnded();
    }
    fill(penalties);
    await penalties.close();
    const reopened = await AuditPenalties.open(path, { log: (l) => lines.push(l) });
    const aside = (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name)
      .filter((name) => name !== AUDIT_PENALTIES_FILE);
    return { reopened, lines, aside };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("more holders admitting a loss and leaving than the reader's bound on departures: the record is read back, the demotion kept", async () => {
  const clock = departureClock();
  // Past the failed-pair cap and the reader's bound on departures (MAX_FAILED_AUDITS + 2 × 4096).
  const holders = MAX_FAILED_AUDITS + 14_464;
  const { reopened, lines, aside } = await roundTrip((penalties) => {
    const present = new Set([DEMOTED]);
    for (let i = 0; i < holders; i++) {
      penalties.markFailed(idOf(i), KEY);
      if (i % 1_000 === 999) penalties.setPeers(present, clock); // they left
    }
    penalties.setPeers(present, clock);
  });
  assert.deepEqual(aside, [], lines.join("\n"));
  assert.equal(reopened.demoted(DEMOTED), true, lines.join("\n"));
  // The newest loss is still held against its holder; the oldest was evicted by the cap.
  assert.equal(reopened.failedAuditOf(idOf(holders - 1), KEY), true);
  assert.equal(reopened.failedAuditOf(idOf(0), KEY), false);
});

Deno.test("an id or a key the reader would refuse (a space, over 256 characters) is not recorded: the rest is read back", async () => {
  const long = "f".repeat(300);
  const { reopened, lines, aside } = await roundTrip((penalties) => {
    penalties.markFailed("peer a", KEY);
    penalties.failedAudit(long, [KEY]);
    penalties.markFailed(idOf(1), "a key");
    penalties.markFailed(idOf(2), KEY);
  });
  assert.deepEqual(aside, [], lines.join("\n"));
  assert.equal(reopened.demoted(DEMOTED), true, lines.join("\n"));
  assert.equal(reopened.failedAuditOf(idOf(2), KEY), true);
  assert.equal(reopened.failedAuditOf("peer a", KEY), false);
  assert.equal(reopened.failedAuditOf(long, KEY), false);
  assert.equal(reopened.failedAuditOf(idOf(1), "a key"), false);
});

Deno.test("a file with a demoted id too long is set aside for its id, not for its rounds", async () => {
  const dir = await Deno.makeTempDir();
  const path = join(dir, AUDIT_PENALTIES_FILE);
  try {
    const state = {
      round: 5,
      failed: [],
      strikes: [],
      demoted: [["f".repeat(300), 6]],
      departed: [],
    };
    const json = JSON.stringify(state);
    const check = sha256Hex(new TextEncoder().encode(json));
    await Deno.writeTextFile(
      path,
      `{"format":"audit-penalties","version":1,"check":"${check}","state":${json}}\n`,
    );
    const lines: string[] = [];
    const penalties = await AuditPenalties.open(path, { log: (l) => lines.push(l) });
    assert.equal(penalties.empty, true);
    assert.equal(lines.length, 1);
    assert.match(lines[0], /bad demotion list \(an id /);
    assert.doesNotMatch(lines[0], /rounds/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("forgetting thousands of departed holders at once forgets every one of them and their pairs", () => {
  /**
   * Holders that each admit one loss, then leave. Their cost is not timed here (timings belong in
   * benchmarks): the per-peer index made it linear, 74.7 s → 0.25 s at 32,768 holders with the
   * review's script (tmp/s76/review_vstore/penalties_forget_cost.ts, this 2-core VM).
   */
  const HOLDERS = 8_192;
  const clock = departureClock();
  const penalties = new AuditPenalties();
  for (let i = 0; i < HOLDERS; i++) penalties.markFailed(idOf(i), KEY);
  const nobody = new Set<string>();
  penalties.setPeers(nobody, clock); // they all leave
  assert.equal(penalties.empty, false);
  clock.ranOut = true;
  penalties.setPeers(nobody, clock); // a day later: every departure runs out at once
  assert.equal(penalties.empty, true);
});
