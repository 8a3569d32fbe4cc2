import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { durationText, estimateCompletion } from '../src/jobs/eta.js';
import { ws } from './helpers/window-set.js';

const MiB = 1024 * 1024;
const HOUR = 3_600_000;
const BER = 'Europe/Berlin';
const d = (iso: string) => new Date(iso);

describe('estimateCompletion', () => {
  it('without windows it is a duration', () => {
    const eta = estimateCompletion({ bytesLeft: 1024 * MiB, bytesPerSecond: MiB, now: d('2024-05-06T10:00:00Z'), windows: ws(), timezone: BER });
    assert.equal(eta.text, 'about 17 minutes');
    assert.equal(eta.doneAt?.toISOString(), '2024-05-06T10:17:04.000Z');
    assert.equal(eta.windowsNeeded, 0);
  });

  it('counts the nights ahead: about 4 more nights (done around Fri 23:00)', () => {
    // Mon 23:00 CEST inside 2200-0800: 9 h left tonight, then 10 h a night; 40 h of work.
    const eta = estimateCompletion({
      bytesLeft: 40 * 3600 * MiB,
      bytesPerSecond: MiB,
      now: d('2024-05-06T21:00:00Z'),
      windows: ws('2200-0800'),
      timezone: BER,
    });
    assert.equal(eta.text, 'about 4 more nights (done around Fri 23:00)');
    assert.equal(eta.doneAt?.toISOString(), '2024-05-10T21:00:00.000Z');
    assert.equal(eta.windowsNeeded, 4);
  });

  it('a suspended run (outside the window) finishing next night', () => {
    const eta = estimateCompletion({ bytesLeft: 5 * 3600 * MiB, bytesPerSecond: MiB, now: d('2024-05-07T10:00:00Z'), windows: ws('2200-0800'), timezone: BER });
    assert.equal(eta.text, 'about 1 more night (done around Wed 03:00)');
  });

  it('fits in the current window: a duration', () => {
    const eta = estimateCompletion({ bytesLeft: 3 * 3600 * MiB, bytesPerSecond: MiB, now: d('2024-05-06T21:00:00Z'), windows: ws('2200-0800'), timezone: BER });
    assert.equal(eta.text, 'about 3 hours');
  });

  it('says "windows" for daytime windows and adds the date beyond a week', () => {
    const eta = estimateCompletion({
      bytesLeft: 10 * 8 * 3600 * MiB, // ten working days of 8 h
      bytesPerSecond: MiB,
      now: d('2024-05-06T05:00:00Z'), // Mon 07:00, before the window
      windows: ws('mon-fri 0900-1700'),
      timezone: BER,
    });
    assert.equal(eta.text, 'about 10 more windows (done around Fri 17 May 17:00)');
  });

  it('ignoreWindows treats the time as continuous', () => {
    const eta = estimateCompletion({ bytesLeft: 30 * 3600 * MiB, bytesPerSecond: MiB, now: d('2024-05-06T10:00:00Z'), windows: ws('2200-0800'), timezone: BER, ignoreWindows: true });
    assert.equal(eta.text, 'about 30 hours (done around Tue 18:00)');
  });

  it('no rate yet, nothing left, beyond the horizon', () => {
    const base = { now: d('2024-05-06T10:00:00Z'), windows: ws('2200-0800'), timezone: BER };
    assert.equal(estimateCompletion({ ...base, bytesLeft: 1, bytesPerSecond: 0 }).doneAt, null);
    assert.equal(estimateCompletion({ ...base, bytesLeft: 0, bytesPerSecond: 0 }).text, 'done');
    const far = estimateCompletion({ ...base, bytesLeft: 1e15, bytesPerSecond: 1 });
    assert.equal(far.doneAt, null);
    assert.match(far.text, /more than 90 days/);
  });
});

describe('durationText', () => {
  it('exact and rounded forms', () => {
    assert.equal(durationText(7 * 24 * HOUR), '7d');
    assert.equal(durationText(36 * HOUR), '1d 12h');
    assert.equal(durationText(36 * 60_000), '36m');
    assert.equal(durationText(45_000), '45s');
    assert.equal(durationText(20 * 60_000, true), '20 minutes');
    assert.equal(durationText(30_000, true), 'less than a minute');
    assert.equal(durationText(3 * 24 * HOUR, true), '3 days');
  });
});
