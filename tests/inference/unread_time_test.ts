import assert from "node:assert/strict";
import { UnreadTime } from "../../inference/_unread_time.ts";

Deno.test("UnreadTime sums the time between reads over the last reads only, and the time since the last read ended", () => {
  const unread = new UnreadTime(2, 0);
  assert.equal(unread.unreadMs(5), 5, "unread since it began");
  unread.reading(5); // 5 ms unread before the first read
  assert.equal(unread.unreadMs(100), 5, "a read in progress is not time left unread");
  unread.read(100);
  unread.reading(130); // 30
  unread.read(130);
  assert.equal(unread.unreadMs(130), 35);
  unread.reading(131); // 1: the first read's 5 ms drops out of the last two
  unread.read(131);
  assert.equal(unread.unreadMs(131), 31);
  assert.equal(unread.unreadMs(141), 41, "and the time since the last read ended");
});

Deno.test("UnreadTime counts a read begun twice once", () => {
  const unread = new UnreadTime(4, 0);
  unread.reading(10);
  unread.reading(20);
  unread.read(20);
  assert.equal(unread.unreadMs(20), 10);
});
