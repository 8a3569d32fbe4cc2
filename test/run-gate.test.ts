import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RunGate } from '../src/jobs/run-gate.js';
import { canTransition, describeState, IllegalTransitionError, transition } from '../src/jobs/run-state.js';

const turn = () => new Promise<void>((r) => setImmediate(r));

describe('RunGate', () => {
  it('an open gate lets wait() through at once', async () => {
    const gate = new RunGate();
    assert.equal(gate.isOpen, true);
    await gate.wait();
  });

  it('a closed gate parks waiters until it opens', async () => {
    const gate = new RunGate();
    gate.close('window closed');
    let passed = 0;
    const p = gate.wait().then(() => passed++);
    await turn();
    assert.equal(passed, 0);
    assert.equal(gate.waiting, 1);
    gate.open();
    await p;
    assert.equal(passed, 1);
    assert.equal(gate.waiting, 0);
  });

  it('each reason must be lifted: resuming a pause does not reopen a closed window', async () => {
    const gate = new RunGate();
    gate.close('window closed');
    gate.close('paused by owner');
    gate.open('paused by owner');
    assert.equal(gate.isOpen, false);
    assert.deepEqual(gate.reasons, ['window closed']);
    gate.open('window closed');
    assert.equal(gate.isOpen, true);
  });

  it('wait() rejects when the signal aborts (cancel while suspended)', async () => {
    const gate = new RunGate();
    gate.close('window closed');
    const ctl = new AbortController();
    const p = gate.wait(ctl.signal);
    ctl.abort(new Error('cancelled by owner'));
    await assert.rejects(p, /cancelled by owner/);
    assert.equal(gate.waiting, 0);
    await assert.rejects(gate.wait(ctl.signal), /cancelled by owner/);
  });

  it('reports changes', () => {
    const gate = new RunGate();
    const seen: boolean[] = [];
    const off = gate.onChange((open) => seen.push(open));
    gate.close('a');
    gate.close('b');
    gate.open('a');
    gate.open('b');
    off();
    gate.close('a');
    assert.deepEqual(seen, [false, true]);
  });
});

describe('run state machine', () => {
  it('allows the documented path', () => {
    let s = transition('idle', 'waiting_window');
    s = transition(s, 'waiting_slot');
    s = transition(s, 'running');
    s = transition(s, 'suspended');
    s = transition(s, 'running');
    s = transition(s, 'completed');
    s = transition(s, 'idle');
    assert.equal(s, 'idle');
    assert.equal(canTransition('suspended', 'cancelled'), true);
  });

  it('rejects illegal transitions', () => {
    for (const [from, to] of [
      ['idle', 'suspended'],
      ['idle', 'completed'],
      ['waiting_window', 'suspended'],
      ['completed', 'running'],
      ['running', 'waiting_window'],
      ['failed', 'suspended'],
    ] as const) {
      assert.throws(() => transition(from, to), (e: unknown) => e instanceof IllegalTransitionError && e.code === 'NJ_ILLEGAL_TRANSITION');
    }
  });

  it('describes states in plain words, with pause beside them', () => {
    assert.equal(describeState('waiting_window', false), 'waiting for window');
    assert.equal(describeState('suspended', true), 'paused (suspended)');
    assert.equal(describeState('idle', true), 'paused');
  });
});
