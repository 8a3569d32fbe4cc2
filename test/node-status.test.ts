import assert from 'node:assert/strict';
import { test } from 'node:test';
import { etaOf } from '../src/node/node-status.js';
import { ws } from './helpers/window-set.js';

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;
const night = { allowedTimes: ws('2200-0800'), timezone: 'UTC', onWindowClose: 'suspend' as const };

test('the status ETA counts the nights a run still needs from bytes left and the achieved rate', () => {
  // 1 GiB in 20 h of work: 3 GiB left need 60 h, six 10-hour nights from Monday 22:00.
  const eta = etaOf(night, new Date('2027-03-01T08:30:00Z'), { bytesDone: GiB, bytesExpected: 4 * GiB, activeMs: 72_000_000, ignoreWindow: false });
  assert.ok(eta);
  assert.match(eta.text, /^about 6 more nights \(done around Sun 08:00\)$/);
  assert.equal(eta.doneAt, '2027-03-07T08:00:00.000Z');
});

test('the status ETA of a run inside its window that fits is a duration; the first backup has none', () => {
  const eta = etaOf(night, new Date('2027-03-01T22:00:00Z'), { bytesDone: 100 * MiB, bytesExpected: 160 * MiB, activeMs: 100_000, ignoreWindow: false });
  assert.equal(eta?.text, 'about 1 minute');
  assert.equal(etaOf(night, new Date(), { bytesDone: 5, bytesExpected: 0, activeMs: 1, ignoreWindow: false })?.doneAt, null);
  assert.equal(etaOf(night, new Date(), null), null);
  // finish_job: the window only gates the start, so the run goes on through the day.
  const day = etaOf({ ...night, onWindowClose: 'finish_job' }, new Date('2027-03-01T08:30:00Z'), { bytesDone: GiB, bytesExpected: 4 * GiB, activeMs: 72_000_000, ignoreWindow: false });
  assert.match(day!.text, /^about 3 days \(done around Wed 20:30\)$/);
});
