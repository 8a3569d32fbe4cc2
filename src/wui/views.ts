import { formatBytes, formatDuration, formatRate, parseDuration } from '../node/config/units.js';
import type { BandwidthLimitStatus, BandwidthScope } from './controls.js';
import type { JobStatus, NodeStatus } from './status.js';

/** Escapes text for HTML element content and quoted attribute values. */
export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** Who is looking: the owner (controls) or a read-only share link (status only). */
export type Role = 'owner' | 'readonly';

/** What every page needs besides its own content. */
export interface PageContext {
  readonly role: Role;
  /** The CSRF token for forms and fetch (owner only; '' for read-only). */
  readonly csrf: string;
  readonly nickname: string;
  /** Which optional parts the node has, for the navigation. */
  readonly hasStorage: boolean;
  readonly hasSnapshots: boolean;
}

/** The page shell: navigation, stylesheet, the one static script. No inline script or style. */
export function page(ctx: PageContext, title: string, body: string, current: string): string {
  const nav: Array<[string, string]> = [['/', 'Overview']];
  if (ctx.role === 'owner' && ctx.hasSnapshots) nav.push(['/snapshots', 'Snapshots']);
  nav.push(['/events', 'Events']);
  if (ctx.hasStorage) nav.push(['/storage', 'Storage']);
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="csrf-token" content="${escapeHtml(ctx.csrf)}">
<meta name="nightjar-role" content="${ctx.role}">
<title>${escapeHtml(title)} — Nightjar ${escapeHtml(ctx.nickname)}</title>
<link rel="stylesheet" href="/static/app.css">
<script src="/static/app.js" defer></script>
</head>
<body>
<header>
<p class="brand">Nightjar <span class="nick">${escapeHtml(ctx.nickname)}</span>${ctx.role === 'readonly' ? ' <span class="badge">read-only</span>' : ''}</p>
<nav aria-label="Pages"><ul>${nav
    .map(([href, label]) => `<li><a href="${href}"${href === current ? ' aria-current="page"' : ''}>${label}</a></li>`)
    .join('')}</ul></nav>
</header>
<main>
${body}
</main>
<p class="live" role="status" aria-live="polite" id="live-status"></p>
</body>
</html>
`;
}

/** A POST form with one button; `api` is the JSON route app.js calls instead when it runs. */
export function button(ctx: PageContext, action: string, label: string, opts: { api?: string; when?: string; hidden?: boolean; cls?: string } = {}): string {
  if (ctx.role !== 'owner') return '';
  return `<form method="post" action="${escapeHtml(action)}" class="ctl${opts.cls ? ` ${opts.cls}` : ''}"${opts.api ? ` data-api="${escapeHtml(opts.api)}"` : ''}${
    opts.when ? ` data-when="${opts.when}"` : ''
  }${opts.hidden ? ' hidden' : ''}><input type="hidden" name="_csrf" value="${escapeHtml(ctx.csrf)}"><button type="submit">${escapeHtml(label)}</button></form>`;
}

/** A number with thousands separators (fixed locale, so pages and tests agree). */
export function num(n: number | undefined | null): string {
  return n === undefined || n === null || !Number.isFinite(n) ? '—' : Math.round(n).toLocaleString('en-US');
}

export function time(iso: string | null | undefined, empty = '—'): string {
  if (!iso) return empty;
  return `<time datetime="${escapeHtml(iso)}">${escapeHtml(iso.replace('T', ' ').replace(/\.\d{3}Z$/, 'Z'))}</time>`;
}

/** Node-wide figures the overview shows above the cards. */
export interface NodeFigures {
  /** Upload rate, bytes/s. */
  readonly rate: number;
  /** Node-wide limit in force: bytes/s, null = none, undefined = not known. */
  readonly limit: number | null | undefined;
  readonly limits: readonly BandwidthLimitStatus[];
}

/**
 * Everything app.js updates, computed on the server so page and live view agree:
 * per job the text of each `[data-field]`, the state badge, the progress bar and which
 * controls apply.
 */
export interface LiveView {
  readonly node: { readonly uptime: string; readonly rate: string; readonly limit: string; readonly now: string };
  readonly jobs: Record<
    string,
    {
      readonly label: string;
      readonly stateClass: string;
      readonly paused: boolean;
      readonly active: boolean;
      readonly stale: boolean;
      readonly progress: { readonly value: number; readonly max: number } | null;
      readonly fields: Record<string, string>;
    }
  >;
}

/** The job's `eta`, when the status carries one (a string or `{ text }`). */
function etaText(job: JobStatus): string | null {
  const any = job as unknown as { eta?: unknown; progress?: { eta?: unknown } | null };
  for (const e of [any.eta, any.progress?.eta]) {
    if (typeof e === 'string' && e) return e;
    if (e && typeof e === 'object' && typeof (e as { text?: unknown }).text === 'string') return (e as { text: string }).text;
  }
  return null;
}

/** `every 1d` → 1 day in ms; null for cron schedules or anything unparsable. */
function frequencyMs(schedule: string): number | null {
  const m = /^every\s+(.+)$/.exec(schedule);
  if (!m) return null;
  try {
    return parseDuration(m[1]!.replace(/\s+/g, ''));
  } catch {
    return null;
  }
}

/** No success within twice the job's frequency (measured from now). */
export function isStale(job: JobStatus, nowMs: number): boolean {
  if (!job.enabled) return false;
  const freq = frequencyMs(job.schedule);
  if (freq === null || freq <= 0) return false;
  if (!job.lastCompletedAt) return false;
  return nowMs - Date.parse(job.lastCompletedAt) > 2 * freq;
}

/** The state shown: the run state, `paused`, or `overdue` when the next start has long passed. */
function stateOf(job: JobStatus, nowMs: number): { label: string; cls: string } {
  if (job.paused) return { label: job.label, cls: 'paused' };
  const overdue = job.nextStartAt !== null && !job.progress && nowMs - Date.parse(job.nextStartAt) > 5 * 60_000 && job.state !== 'waiting_window';
  if (overdue && (job.state === 'idle' || job.state === 'completed')) return { label: 'overdue', cls: 'overdue' };
  return { label: job.label, cls: job.state.replace(/[^a-z_-]/gi, '') };
}

/** Builds the live view of a status; `rates` are per-job send rates in bytes/s. */
export function liveView(status: NodeStatus, rates: ReadonlyMap<string, number>, node: NodeFigures, sent: ReadonlyMap<string, number> = new Map()): LiveView {
  const nowMs = Date.parse(status.now);
  const jobs: Record<string, LiveView['jobs'][string]> = {};
  for (const j of status.jobs) {
    const p = j.progress;
    const s = stateOf(j, nowMs);
    const rate = rates.get(j.name);
    const bytesSent = sent.get(j.name) ?? p?.bytesWritten ?? 0;
    jobs[j.name] = {
      label: s.label,
      stateClass: s.cls,
      paused: j.paused,
      active: p !== null,
      stale: isStale(j, nowMs),
      progress: p ? { value: p.filesDone, max: Math.max(p.filesEstimated, p.filesDone, 1) } : null,
      fields: {
        next: j.nextStartAt ? `${j.nextStartAt.replace('T', ' ').replace(/\.\d{3}Z$/, 'Z')}${j.nextStartReason ? ` (${j.nextStartReason})` : ''}` : '—',
        window: j.window ?? 'any time',
        filesDone: p ? num(p.filesDone) : '—',
        filesEstimated: p && p.filesEstimated ? `of about ${num(p.filesEstimated)}` : '',
        filesNew: p ? num(p.filesNew) : '—',
        filesChanged: p ? num(p.filesChanged) : '—',
        filesUnchanged: p ? num(p.filesUnchanged) : '—',
        bytesRead: p ? formatBytes(p.bytesRead) : '—',
        bytesNew: p ? formatBytes(p.bytesNew) : '—',
        bytesSent: p || sent.has(j.name) ? formatBytes(bytesSent) : '—',
        bytesSentExact: String(bytesSent),
        rate: p && rate !== undefined ? formatRate(rate) : '—',
        eta: etaText(j) ?? '—',
        currentPath: p?.currentPath || '—',
        warnings: p ? num(p.warnings) : '—',
        lastResult: j.lastResult ?? 'never run',
        lastSuccess: j.lastCompletedAt ? j.lastCompletedAt.replace('T', ' ').replace(/\.\d{3}Z$/, 'Z') : 'never',
        lastError: j.lastError ?? '',
      },
    };
  }
  return {
    node: {
      uptime: status.startedAt ? formatDuration(Math.max(0, nowMs - Date.parse(status.startedAt))) : 'not running',
      rate: formatRate(node.rate),
      limit: node.limit === undefined ? 'not set' : formatRate(node.limit),
      now: status.now,
    },
    jobs,
  };
}

function field(name: string, value: string | undefined): string {
  return `<span data-field="${name}">${escapeHtml(value ?? '')}</span>`;
}

/** One job's card (overview and job page). Fields carry `data-field` for app.js. */
export function jobCard(ctx: PageContext, job: JobStatus, view: LiveView['jobs'][string], opts: { heading: 'h2' | 'h3'; link: boolean }): string {
  const f = view.fields;
  const base = `/jobs/${encodeURIComponent(job.name)}`;
  const api = `/api/v1/jobs/${encodeURIComponent(job.name)}`;
  const id = `job-${job.name.replace(/[^A-Za-z0-9_-]/g, '_')}`;
  const h = opts.heading;
  const controls =
    ctx.role === 'owner'
      ? `<div class="controls">${button(ctx, `${base}/pause`, 'Pause', { api: `${api}/pause`, when: 'unpaused', hidden: view.paused })}${button(ctx, `${base}/resume`, 'Resume', {
          api: `${api}/resume`,
          when: 'paused',
          hidden: !view.paused,
        })}${button(ctx, `${base}/run`, 'Run now', { api: `${api}/run` })}${button(ctx, `${base}/cancel`, 'Cancel', { api: `${api}/cancel`, when: 'active', hidden: !view.active })}</div>`
      : '';
  return `<section class="job${view.stale ? ' stale' : ''}" data-state="${escapeHtml(view.stateClass)}" aria-labelledby="${id}" data-job="${escapeHtml(job.name)}">
<${h} id="${id}">${opts.link ? `<a href="${base}">${escapeHtml(job.name)}</a>` : escapeHtml(job.name)} <span class="state state-${escapeHtml(view.stateClass)}" data-field="label">${escapeHtml(view.label)}</span>${
    view.stale ? ' <span class="badge warn" data-stale>stale: no success in 2× its frequency</span>' : ''
  }</${h}>
<p class="what">${escapeHtml(job.source)} → ${escapeHtml(job.target)} · ${escapeHtml(job.schedule)} · ${escapeHtml(job.allowedTimes)} (${escapeHtml(job.timezone)})</p>
<div class="bar"${view.progress ? '' : ' hidden'}><progress aria-label="files of ${escapeHtml(job.name)} done" max="${view.progress?.max ?? 1}" value="${view.progress?.value ?? 0}"></progress></div>
<dl>
<dt>Next start</dt><dd>${field('next', f.next)}</dd>
<dt>Window</dt><dd>${field('window', f.window)}</dd>
<dt>Files</dt><dd>${field('filesDone', f.filesDone)} seen ${field('filesEstimated', f.filesEstimated)} · ${field('filesNew', f.filesNew)} new · ${field('filesChanged', f.filesChanged)} changed · ${field(
    'filesUnchanged',
    f.filesUnchanged,
  )} unchanged</dd>
<dt>Bytes</dt><dd>${field('bytesRead', f.bytesRead)} read · ${field('bytesNew', f.bytesNew)} new · <span data-field="bytesSent" data-bytes="${escapeHtml(f.bytesSentExact!)}">${escapeHtml(f.bytesSent!)}</span> sent</dd>
<dt>Rate</dt><dd>${field('rate', f.rate)}</dd>
<dt>ETA</dt><dd>${field('eta', f.eta)}</dd>
<dt>Last result</dt><dd>${field('lastResult', f.lastResult)} <span class="error">${field('lastError', f.lastError)}</span></dd>
<dt>Last success</dt><dd>${field('lastSuccess', f.lastSuccess)}</dd>
</dl>
${controls}
</section>`;
}

/** The overview: node figures and one card per job. Useful without JavaScript: controls are plain forms. */
export function renderOverview(ctx: PageContext, status: NodeStatus, view: LiveView, opts: { bandwidth: boolean; limits: readonly BandwidthLimitStatus[] }): string {
  const cards = status.jobs.length
    ? status.jobs.map((j) => jobCard(ctx, j, view.jobs[j.name]!, { heading: 'h3', link: true })).join('\n')
    : '<p>No backup jobs yet. Add one to <code>node.cfg</code> (see <code>node.cfg.example</code>) and reload the node.</p>';
  const nodeLimit = opts.limits.find((l) => l.scope.kind === 'node');
  return page(
    ctx,
    'Overview',
    `<h1>Overview</h1>
<dl class="node" data-node>
<dt>Node</dt><dd>${escapeHtml(status.nickname)}${status.running ? '' : ' (not running)'}</dd>
<dt>Up for</dt><dd><span data-node-field="uptime">${escapeHtml(view.node.uptime)}</span></dd>
<dt>Sending</dt><dd><span data-node-field="rate">${escapeHtml(view.node.rate)}</span> (limit <span data-node-field="limit">${escapeHtml(view.node.limit)}</span>)</dd>
</dl>
${ctx.role === 'owner' ? `<div class="controls">${button(ctx, '/pause', 'Pause all', { api: '/api/v1/pause' })}${button(ctx, '/resume', 'Resume all', { api: '/api/v1/resume' })}</div>` : ''}
${opts.bandwidth && ctx.role === 'owner' ? bandwidthForm(ctx, { kind: 'node' }, nodeLimit, '/') : ''}
<h2>Jobs</h2>
${cards}`,
    '/',
  );
}

/** The change-bandwidth form for one scope (`limit`: `512KiB/s`, `off` or `default`). */
export function bandwidthForm(ctx: PageContext, scope: BandwidthScope, current: BandwidthLimitStatus | undefined, back: string): string {
  if (ctx.role !== 'owner') return '';
  const what = scope.kind === 'node' ? 'node-wide' : `${scope.kind} ${scope.name}`;
  const id = `bw-${scope.kind}-${scope.kind === 'node' ? '' : scope.name.replace(/[^A-Za-z0-9_-]/g, '_')}`;
  const now = current
    ? `configured ${escapeHtml(current.configured)}${current.override !== undefined ? `, overridden to ${escapeHtml(formatRate(current.override))}` : ''}; in force: ${escapeHtml(
        formatRate(current.effectiveBytesPerSecond),
      )}`
    : '';
  return `<form method="post" action="/bandwidth" class="bandwidth" data-api="/api/v1/bandwidth">
<input type="hidden" name="_csrf" value="${escapeHtml(ctx.csrf)}">
<input type="hidden" name="scope" value="${scope.kind}">
${scope.kind === 'node' ? '' : `<input type="hidden" name="name" value="${escapeHtml(scope.name)}">`}
<input type="hidden" name="back" value="${escapeHtml(back)}">
<label for="${id}">Bandwidth limit (${escapeHtml(what)})</label>
<input id="${id}" name="limit" placeholder="512KiB/s, off or default" required size="18">
<button type="submit">Set</button>
${now ? `<small>${now}</small>` : ''}
</form>`;
}

export { formatBytes, formatDuration, formatRate };
