/**
 * The life of one job's run, as the scheduler drives it:
 *
 * ```
 *           ┌──────────────────────────────┐
 *   idle ──►│ waiting_window ⇄ waiting_slot │──► running ⇄ suspended
 *     ▲     └──────────────────────────────┘       │            │
 *     │                                            ▼            ▼
 *     └──────────── completed | partial | failed | cancelled ◄──┘
 * ```
 *
 * - `idle`: no run; the job is not due yet (or has just finished one).
 * - `waiting_window`: due, but outside its allowed windows; starts at the next opening.
 * - `waiting_slot`: due and allowed, but `max_concurrent_jobs` runs are already going.
 * - `running`: the run is working (its gate is open).
 * - `suspended`: the run is alive in memory but its gate is closed, because the window
 *   closed (or a bandwidth budget is spent); it continues when the gate opens again.
 * - `completed` | `partial` | `failed` | `cancelled`: how the run ended (`partial` = a
 *   snapshot was made but some files could not be read). These are passed through on the
 *   way back to `idle`; the outcome is kept beside the state as the job's last result.
 *
 * Pause (by the owner) is orthogonal: a flag beside the state. A paused job starts no run;
 * a paused run keeps its state (`running`/`suspended`) with its gate closed.
 */
export type RunState =
  | 'idle'
  | 'waiting_window'
  | 'waiting_slot'
  | 'running'
  | 'suspended'
  | 'completed'
  | 'partial'
  | 'failed'
  | 'cancelled';

/** How a run ended, as the runner reports it. `refused`: the run declined to start
 *  (source missing, mass-deletion guard, repository locked); it is shown as failed. */
export type RunOutcome = 'completed' | 'partial' | 'failed' | 'cancelled' | 'refused';

/** States that end a run. */
export const TERMINAL_STATES: readonly RunState[] = ['completed', 'partial', 'failed', 'cancelled'];

const ALLOWED: Readonly<Record<RunState, readonly RunState[]>> = {
  idle: ['waiting_window', 'waiting_slot', 'running'],
  // Back to idle when the job stops being due (config change, cancelled request).
  waiting_window: ['waiting_slot', 'running', 'idle', 'cancelled'],
  waiting_slot: ['running', 'waiting_window', 'idle', 'cancelled'],
  running: ['suspended', 'completed', 'partial', 'failed', 'cancelled'],
  // A suspended run may still end: cancelled by the owner, or failed/partial when its
  // runner gives up (the target vanished, the node stops).
  suspended: ['running', 'completed', 'partial', 'failed', 'cancelled'],
  completed: ['idle'],
  partial: ['idle'],
  failed: ['idle'],
  cancelled: ['idle'],
};

/** Raised for a transition the state machine does not allow (a scheduler bug). */
export class IllegalTransitionError extends Error {
  readonly code = 'NJ_ILLEGAL_TRANSITION';
  constructor(
    readonly from: RunState,
    readonly to: RunState,
  ) {
    super(`illegal run state transition ${from} → ${to}`);
    this.name = 'IllegalTransitionError';
  }
}

/** Whether `from → to` is allowed (staying in the same state always is). */
export function canTransition(from: RunState, to: RunState): boolean {
  return from === to || ALLOWED[from].includes(to);
}

/** Returns `to` when `from → to` is allowed, else throws IllegalTransitionError. */
export function transition(from: RunState, to: RunState): RunState {
  if (!canTransition(from, to)) throw new IllegalTransitionError(from, to);
  return to;
}

/** The state a finished run passes through for a runner outcome. */
export function stateForOutcome(outcome: RunOutcome): RunState {
  return outcome === 'refused' ? 'failed' : outcome;
}

/** True while a run exists (in memory) for the job. */
export function hasLiveRun(state: RunState): boolean {
  return state === 'running' || state === 'suspended';
}

/** The state in plain words for status pages: `waiting for window`, `paused (suspended)`. */
export function describeState(state: RunState, paused: boolean): string {
  const words: Record<RunState, string> = {
    idle: 'idle',
    waiting_window: 'waiting for window',
    waiting_slot: 'waiting for a free slot',
    running: 'running',
    suspended: 'suspended',
    completed: 'completed',
    partial: 'partially completed',
    failed: 'failed',
    cancelled: 'cancelled',
  };
  if (!paused) return words[state];
  return state === 'idle' ? 'paused' : `paused (${words[state]})`;
}
