import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  currentWindow,
  isAlwaysOpen,
  isInWindow,
  localTimeText,
  nextAllowedAt,
  nextWindowOpen,
  windowsBetween,
  windowText,
} from '../src/jobs/windows.js';
import { ws } from './helpers/window-set.js';

const BER = 'Europe/Berlin';
const NY = 'America/New_York';
const d = (iso: string) => new Date(iso);
const iso = (x: Date | null | undefined) => x?.toISOString().replace('.000Z', 'Z') ?? null;

describe('isInWindow', () => {
  const cases: Array<[string, string[], string, string, boolean]> = [
    // name, windows, zone, instant (UTC), expected
    ['before a nightly window opens', ['2200-0800'], BER, '2024-05-06T19:59:59Z', false], // 21:59:59 CEST
    ['at the opening (inclusive)', ['2200-0800'], BER, '2024-05-06T20:00:00Z', true],
    ['after midnight, inside', ['2200-0800'], BER, '2024-05-07T05:59:00Z', true], // 07:59
    ['at the close (exclusive)', ['2200-0800'], BER, '2024-05-07T06:00:00Z', false],
    ['New York keeps its own clock (01:59 EDT)', ['2200-0800'], NY, '2024-05-07T05:59:00Z', true], // 01:59 EDT
    ['fri 2200-0600 runs into Saturday morning', ['fri 2200-0600'], BER, '2024-05-11T03:00:00Z', true], // Sat 05:00
    ['fri 2200-0600 is not open on Friday morning', ['fri 2200-0600'], BER, '2024-05-10T03:00:00Z', false], // Fri 05:00
    ['fri 2200-0600 is not open on Saturday night', ['fri 2200-0600'], BER, '2024-05-11T20:30:00Z', false],
    ['mon-fri daytime on a Saturday', ['mon-fri 0900-1700'], BER, '2024-05-11T10:00:00Z', false],
    ['mon-fri daytime on a Friday', ['mon-fri 0900-1700'], BER, '2024-05-10T10:00:00Z', true],
    ['never-opening 0000-0000', ['0000-0000'], BER, '2024-05-10T10:00:00Z', false],
    ['empty set is always open', [], BER, '2024-05-10T10:00:00Z', true],
    // DST, Berlin: the spring-forward night 2024-03-31 (02:00 CET → 03:00 CEST, at 01:00Z)
    ['Berlin spring 0130-0330: 01:45 CET inside', ['0130-0330'], BER, '2024-03-31T00:45:00Z', true],
    ['Berlin spring 0130-0330: 03:29 CEST inside', ['0130-0330'], BER, '2024-03-31T01:29:00Z', true],
    ['Berlin spring 0130-0330: 03:30 CEST closed', ['0130-0330'], BER, '2024-03-31T01:30:00Z', false],
    // DST, Berlin: fall-back night 2024-10-27 (03:00 CEST → 02:00 CET, at 01:00Z)
    ['Berlin fall 2200-0200: 01:59 CEST inside', ['2200-0200'], BER, '2024-10-26T23:59:00Z', true],
    ['Berlin fall 2200-0200: first 02:30 (CEST) closed', ['2200-0200'], BER, '2024-10-27T00:30:00Z', false],
    ['Berlin fall 2200-0200: second 02:30 (CET) closed', ['2200-0200'], BER, '2024-10-27T01:30:00Z', false],
    // DST, New York: fall-back 2024-11-03 (02:00 EDT → 01:00 EST, at 06:00Z)
    ['NY fall 2200-0200: first 01:30 (EDT) inside', ['2200-0200'], NY, '2024-11-03T05:30:00Z', true],
    ['NY fall 2200-0200: second 01:30 (EST) inside', ['2200-0200'], NY, '2024-11-03T06:30:00Z', true],
    ['NY fall 2200-0200: 02:00 EST closed', ['2200-0200'], NY, '2024-11-03T07:00:00Z', false],
  ];
  for (const [name, windows, tz, at, want] of cases) {
    it(name, () => assert.equal(isInWindow(ws(...windows), tz, d(at)), want));
  }
});

describe('window opening and closing instants (DST rules)', () => {
  const cases: Array<[string, string[], string, string, string, string]> = [
    // name, windows, zone, probe instant before the window, wanted opensAt, wanted closesAt
    ['plain night (CEST)', ['2200-0800'], BER, '2024-05-06T10:00:00Z', '2024-05-06T20:00:00Z', '2024-05-07T06:00:00Z'],
    ['Berlin spring 0130-0330 is open 1 h', ['0130-0330'], BER, '2024-03-30T12:00:00Z', '2024-03-31T00:30:00Z', '2024-03-31T01:30:00Z'],
    ['Berlin spring 0230 does not exist: opens 03:00 CEST', ['0230-0400'], BER, '2024-03-30T12:00:00Z', '2024-03-31T01:00:00Z', '2024-03-31T02:00:00Z'],
    ['Berlin spring 2200-0200: closes at the gap end 03:00 CEST', ['2200-0200'], BER, '2024-03-30T12:00:00Z', '2024-03-30T21:00:00Z', '2024-03-31T01:00:00Z'],
    ['Berlin fall 2200-0200 closes at the first 02:00 (4 h)', ['2200-0200'], BER, '2024-10-26T12:00:00Z', '2024-10-26T20:00:00Z', '2024-10-27T00:00:00Z'],
    ['Berlin fall 0130-0330 is open 3 h', ['0130-0330'], BER, '2024-10-26T12:00:00Z', '2024-10-26T23:30:00Z', '2024-10-27T02:30:00Z'],
    ['Berlin fall 0230 occurs twice: opens at the first', ['0230-0400'], BER, '2024-10-26T12:00:00Z', '2024-10-27T00:30:00Z', '2024-10-27T03:00:00Z'],
    ['NY spring 0130-0330 is open 1 h', ['0130-0330'], NY, '2024-03-09T12:00:00Z', '2024-03-10T06:30:00Z', '2024-03-10T07:30:00Z'],
    ['NY spring 0230 does not exist: opens 03:00 EDT', ['0230-0400'], NY, '2024-03-09T12:00:00Z', '2024-03-10T07:00:00Z', '2024-03-10T08:00:00Z'],
    ['NY fall 2200-0200 is open 5 h (01:00-02:00 repeats)', ['2200-0200'], NY, '2024-11-02T12:00:00Z', '2024-11-03T02:00:00Z', '2024-11-03T07:00:00Z'],
    ['NY fall 0130-0330: first 01:30 to 03:30 EST', ['0130-0330'], NY, '2024-11-02T12:00:00Z', '2024-11-03T05:30:00Z', '2024-11-03T08:30:00Z'],
    ['fri 2200-0600 from Monday', ['fri 2200-0600'], BER, '2024-05-06T10:00:00Z', '2024-05-10T20:00:00Z', '2024-05-11T04:00:00Z'],
    ['mon-fri 0900-1700 from Friday evening', ['mon-fri 0900-1700'], BER, '2024-05-10T18:00:00Z', '2024-05-13T07:00:00Z', '2024-05-13T15:00:00Z'],
    ['adjacent 2200-2400,0000-0800 merge into one', ['2200-2400', '0000-0800'], BER, '2024-05-06T10:00:00Z', '2024-05-06T20:00:00Z', '2024-05-07T06:00:00Z'],
    ['overlapping 2000-2300,2200-0100 merge', ['2000-2300', '2200-0100'], BER, '2024-05-06T10:00:00Z', '2024-05-06T18:00:00Z', '2024-05-06T23:00:00Z'],
    ['sat 0000-2400 + sun 0000-2400 are one weekend', ['sat 0000-2400', 'sun 0000-2400'], BER, '2024-05-08T10:00:00Z', '2024-05-10T22:00:00Z', '2024-05-12T22:00:00Z'],
  ];
  for (const [name, windows, tz, probe, opens, closes] of cases) {
    it(name, () => {
      const set = ws(...windows);
      const next = nextWindowOpen(set, tz, d(probe));
      assert.deepEqual([iso(next?.opensAt), iso(next?.closesAt)], [opens, closes]);
      // From inside, currentWindow reports the same (merged) window.
      const mid = new Date((d(opens).getTime() + d(closes).getTime()) / 2);
      const cur = currentWindow(set, tz, mid);
      assert.deepEqual([iso(cur?.openedAt), iso(cur?.closesAt)], [opens, closes]);
    });
  }

  it('midnight does not split merged windows', () => {
    const set = ws('2200-2400', '0000-0800');
    const cur = currentWindow(set, BER, d('2024-05-06T22:00:00Z')); // 00:00 local
    assert.equal(iso(cur?.openedAt), '2024-05-06T20:00:00Z');
    assert.equal(iso(cur?.closesAt), '2024-05-07T06:00:00Z');
  });

  it('nextWindowOpen skips the window we are in; nextAllowedAt does not', () => {
    const set = ws('2200-0800');
    const inside = d('2024-05-06T23:00:00Z');
    assert.equal(iso(nextWindowOpen(set, BER, inside)?.opensAt), '2024-05-07T20:00:00Z');
    assert.equal(iso(nextAllowedAt(set, BER, inside)), iso(inside));
    assert.equal(iso(nextAllowedAt(set, BER, d('2024-05-07T12:00:00Z'))), '2024-05-07T20:00:00Z');
  });

  it('currentWindow is null outside every window', () => {
    assert.equal(currentWindow(ws('2200-0800'), BER, d('2024-05-07T12:00:00Z')), null);
  });
});

describe('always-open and never-open sets', () => {
  it('the empty set is always open with unbounded ends', () => {
    const at = d('2024-05-07T12:00:00Z');
    assert.equal(isAlwaysOpen(ws(), BER), true);
    assert.deepEqual(currentWindow(ws(), BER, at), { openedAt: null, closesAt: null });
    assert.deepEqual(nextWindowOpen(ws(), BER, at), { opensAt: at, closesAt: null });
    assert.equal(windowText(BER, { openedAt: null, closesAt: null }), 'always');
  });

  it('windows covering the whole week count as always open', () => {
    for (const set of [ws('0000-2400'), ws('1200-2400', '0000-1200'), ws('mon-fri 0000-2400', 'sat-sun 0000-2400')]) {
      assert.equal(isAlwaysOpen(set, BER), true, set.spec);
      assert.deepEqual(currentWindow(set, BER, d('2024-03-31T01:30:00Z')), { openedAt: null, closesAt: null }, set.spec);
    }
    assert.equal(isAlwaysOpen(ws('mon-sat 0000-2400'), BER), false);
  });

  it('a set that never opens has no next window', () => {
    assert.equal(nextWindowOpen(ws('0000-0000'), BER, d('2024-05-07T12:00:00Z')), null);
    assert.equal(nextAllowedAt(ws('0000-0000'), BER, d('2024-05-07T12:00:00Z')), null);
  });
});

describe('windowsBetween', () => {
  it('lists the nights ahead, clipped to the range', () => {
    const spans = windowsBetween(ws('2200-0800'), BER, d('2024-05-06T23:00:00Z'), d('2024-05-09T00:00:00Z'));
    assert.deepEqual(
      spans.map((s) => [iso(s.opensAt), iso(s.closesAt)]),
      [
        ['2024-05-06T23:00:00Z', '2024-05-07T06:00:00Z'],
        ['2024-05-07T20:00:00Z', '2024-05-08T06:00:00Z'],
        ['2024-05-08T20:00:00Z', '2024-05-09T00:00:00Z'],
      ],
    );
  });

  it('an always-open set is one span', () => {
    const spans = windowsBetween(ws(), BER, d('2024-05-06T00:00:00Z'), d('2024-05-07T00:00:00Z'));
    assert.equal(spans.length, 1);
  });
});

describe('localTimeText', () => {
  it('formats in the zone', () => {
    const at = d('2024-03-14T03:10:00Z');
    assert.equal(localTimeText(BER, at), '04:10');
    assert.equal(localTimeText(BER, at, { weekday: true }), 'Thu 04:10');
    assert.equal(localTimeText(NY, at, { date: true }), 'Wed 13 Mar 23:10');
  });
});
