import type {
  BandwidthLimitStatus,
  EventSummary,
  RestoreTask,
  RunSummary,
  SnapshotEntry,
  SnapshotSummary,
  StorageClientView,
  TargetSnapshots,
  UsagePoint,
} from './controls.js';
import type { JobStatus } from './status.js';
import { bandwidthForm, escapeHtml, formatBytes, formatDuration, formatRate, jobCard, num, page, time, type LiveView, type PageContext } from './views.js';

/** base64url of a path's exact bytes: how paths travel in links (names need not be UTF-8). */
export function pathParam(path: Buffer): string {
  return path.toString('base64url');
}

/** A name for display: exact when UTF-8, else with U+FFFD for the bytes that are not. */
export function showName(name: Buffer): string {
  return name.toString('utf8');
}

function stat(stats: Readonly<Record<string, unknown>> | null, ...keys: string[]): number | undefined {
  for (const k of keys) {
    const v = stats?.[k];
    if (typeof v === 'number') return v;
  }
  return undefined;
}

function bytes(n: number | undefined): string {
  return n === undefined ? '—' : formatBytes(n);
}

/** One series for the rate chart, drawn server-side as SVG (no script, no CDN). */
export interface ChartSeries {
  readonly title: string;
  readonly points: readonly UsagePoint[];
  readonly bucketMs: number;
  /** The limit in force, bytes/s, drawn as a dashed line; null = none. */
  readonly limit: number | null;
}

/** A bar chart of bytes/s per bucket with the limit drawn in. Accessible: a title and a summary. */
export function rateChart(s: ChartSeries): string {
  const W = 600;
  const H = 160;
  const PAD = 36;
  const rates = s.points.map((p) => p.bytes / (s.bucketMs / 1000));
  const peak = Math.max(1, ...rates, s.limit ?? 0);
  const bw = s.points.length ? (W - PAD) / s.points.length : 0;
  const y = (v: number) => H - 16 - (v / peak) * (H - 32);
  const bars = rates
    .map((r, i) => `<rect x="${(PAD + i * bw).toFixed(1)}" y="${y(r).toFixed(1)}" width="${Math.max(1, bw - 1).toFixed(1)}" height="${(H - 16 - y(r)).toFixed(1)}" fill="#1f5fa8"/>`)
    .join('');
  const limit =
    s.limit !== null
      ? `<line x1="${PAD}" x2="${W}" y1="${y(s.limit).toFixed(1)}" y2="${y(s.limit).toFixed(1)}" stroke="#c62828" stroke-dasharray="6 4"/><text x="${W - 4}" y="${(y(s.limit) - 4).toFixed(1)}" text-anchor="end" font-size="11" fill="#c62828">limit ${escapeHtml(formatRate(s.limit))}</text>`
      : '';
  const avg = rates.length ? rates.reduce((a, b) => a + b, 0) / rates.length : 0;
  const summary = `${s.title}: peak ${formatRate(Math.max(0, ...rates))}, average ${formatRate(avg)}${s.limit !== null ? `, limit ${formatRate(s.limit)}` : ''}`;
  return `<figure class="chart"><svg viewBox="0 0 ${W} ${H}" role="img" aria-label="${escapeHtml(summary)}" xmlns="http://www.w3.org/2000/svg">
<title>${escapeHtml(summary)}</title>
<line x1="${PAD}" x2="${W}" y1="${H - 16}" y2="${H - 16}" stroke="#888"/>
<text x="2" y="14" font-size="11" fill="#888">${escapeHtml(formatRate(peak))}</text>
${bars}${limit}
</svg><figcaption>${escapeHtml(summary)}</figcaption></figure>`;
}

/** Run history with Box Backup-style statistics. */
export function runTable(runs: readonly RunSummary[]): string {
  if (!runs.length) return '<p>No runs yet.</p>';
  const rows = runs
    .map((r) => {
      const s = r.stats;
      const dur = stat(s, 'durationMs') ?? (r.endedAt ? Date.parse(r.endedAt) - Date.parse(r.startedAt) : undefined);
      return `<tr><td>${time(r.startedAt)}</td><td>${dur === undefined ? '—' : escapeHtml(formatDuration(dur))}</td><td class="result-${escapeHtml(r.result)}">${escapeHtml(r.result)}${
        r.error ? `<br><small>${escapeHtml(r.error)}</small>` : ''
      }</td><td>${num(stat(s, 'filesTotal', 'filesSeen'))}</td><td>${num(stat(s, 'filesNew'))}</td><td>${num(stat(s, 'filesChanged'))}</td><td>${num(stat(s, 'filesUnchanged'))}</td><td>${num(
        stat(s, 'filesRemoved'),
      )}</td><td>${bytes(stat(s, 'bytesTotal', 'bytesSeen'))}</td><td>${bytes(stat(s, 'bytesRead'))}</td><td>${bytes(stat(s, 'bytesNew'))}</td><td>${bytes(stat(s, 'bytesWritten', 'bytesSent'))}</td><td>${num(
        stat(s, 'warningCount', 'warnings'),
      )}</td><td>${r.snapshotId ? `<code>${escapeHtml(r.snapshotId.slice(0, 12))}</code>` : '—'}</td></tr>`;
    })
    .join('\n');
  return `<div class="scroll"><table>
<caption>Run history, newest first</caption>
<thead><tr><th scope="col">Started</th><th scope="col">Took</th><th scope="col">Result</th><th scope="col">Files</th><th scope="col">New</th><th scope="col">Changed</th><th scope="col">Unchanged</th><th scope="col">Removed</th><th scope="col">Size</th><th scope="col">Read</th><th scope="col">New bytes</th><th scope="col">Sent</th><th scope="col">Warnings</th><th scope="col">Snapshot</th></tr></thead>
<tbody>
${rows}
</tbody></table></div>`;
}

export interface JobPageModel {
  readonly job: JobStatus;
  readonly view: LiveView['jobs'][string];
  readonly runs: readonly RunSummary[];
  readonly config: Readonly<Record<string, string>> | null;
  readonly charts: readonly ChartSeries[];
  /** Limits of the job and its target (when bandwidth controls are present). */
  readonly limits: { readonly job?: BandwidthLimitStatus; readonly target?: BandwidthLimitStatus } | null;
}

/** The job page: live card, current run, rate charts, bandwidth forms, history, settings. */
export function renderJobPage(ctx: PageContext, m: JobPageModel): string {
  const alias = m.job.target.split(':')[0]!;
  const cfg = m.config
    ? `<dl class="config">${Object.entries(m.config)
        .map(([k, v]) => `<dt>${escapeHtml(k)}</dt><dd>${escapeHtml(v)}</dd>`)
        .join('')}</dl>`
    : '<p>No settings.</p>';
  return page(
    ctx,
    `Job ${m.job.name}`,
    `<h1>Job ${escapeHtml(m.job.name)}</h1>
${jobCard(ctx, m.job, m.view, { heading: 'h2', link: false })}
<h2>Current run</h2>
<dl class="run"><dt>Current file</dt><dd><span data-job-field="currentPath" data-for="${escapeHtml(m.job.name)}">${escapeHtml(m.view.fields.currentPath ?? '—')}</span></dd>
<dt>Warnings so far</dt><dd><span data-job-field="warnings" data-for="${escapeHtml(m.job.name)}">${escapeHtml(m.view.fields.warnings ?? '—')}</span></dd></dl>
<h2>Send rate</h2>
${m.charts.length ? m.charts.map(rateChart).join('\n') : '<p>No bandwidth data on this node.</p>'}
${
  m.limits
    ? `${bandwidthForm(ctx, { kind: 'job', name: m.job.name }, m.limits.job, `/jobs/${encodeURIComponent(m.job.name)}`)}${bandwidthForm(
        ctx,
        { kind: 'target', name: alias },
        m.limits.target,
        `/jobs/${encodeURIComponent(m.job.name)}`,
      )}`
    : ''
}
<h2>History</h2>
${runTable(m.runs)}
<h2>Settings</h2>
${cfg}`,
    '',
  );
}

/** The event log, filterable by job, paged by id. */
export function renderEvents(ctx: PageContext, events: readonly EventSummary[], opts: { jobs: readonly string[]; job: string | undefined; limit: number }): string {
  const rows = events
    .map((e) => `<tr class="level-${escapeHtml(e.level)}"><td>${time(e.at)}</td><td>${escapeHtml(e.job ?? '(node)')}</td><td>${escapeHtml(e.level)}</td><td>${escapeHtml(e.message)}</td></tr>`)
    .join('\n');
  const last = events[events.length - 1];
  const older =
    last && events.length >= opts.limit
      ? `<p><a href="/events?${new URLSearchParams({ ...(opts.job ? { job: opts.job } : {}), before: String(last.id) }).toString()}">Older events</a></p>`
      : '';
  return page(
    ctx,
    'Events',
    `<h1>Events</h1>
<form method="get" action="/events" class="filter"><label for="ev-job">Job</label> <select id="ev-job" name="job"><option value="">all jobs</option>${opts.jobs
      .map((j) => `<option value="${escapeHtml(j)}"${j === opts.job ? ' selected' : ''}>${escapeHtml(j)}</option>`)
      .join('')}</select> <button type="submit">Show</button></form>
${events.length ? `<div class="scroll"><table><caption>Event log${opts.job ? ` of ${escapeHtml(opts.job)}` : ''}, newest first</caption><thead><tr><th scope="col">Time</th><th scope="col">Job</th><th scope="col">Level</th><th scope="col">What happened</th></tr></thead><tbody>
${rows}
</tbody></table></div>` : '<p>No events.</p>'}
${older}`,
    '/events',
  );
}

function restoreTable(restores: readonly RestoreTask[]): string {
  if (!restores.length) return '';
  return `<h2>Restores</h2><div class="scroll"><table><thead><tr><th scope="col">Started</th><th scope="col">Snapshot</th><th scope="col">Path</th><th scope="col">Into</th><th scope="col">State</th><th scope="col">Files</th><th scope="col">Bytes</th><th scope="col">Warnings</th></tr></thead><tbody>${restores
    .map(
      (r) =>
        `<tr><td>${time(r.startedAt)}</td><td><code>${escapeHtml(r.snapshot.slice(0, 12))}</code></td><td>${escapeHtml(r.path)}</td><td>${escapeHtml(r.dest)}</td><td>${escapeHtml(r.state)}${
          r.error ? `: ${escapeHtml(r.error)}` : ''
        }</td><td>${num(r.files)}</td><td>${escapeHtml(formatBytes(r.bytes))}</td><td>${num(r.warnings)}</td></tr>`,
    )
    .join('')}</tbody></table></div>`;
}

/** Per target, its snapshots with statistics. */
export function renderSnapshots(ctx: PageContext, targets: readonly TargetSnapshots[], restores: readonly RestoreTask[]): string {
  const sections = targets
    .map((t) => {
      const body = t.error
        ? `<p class="error">${escapeHtml(t.error)}</p>`
        : t.snapshots.length
          ? `<div class="scroll"><table><caption>Snapshots on ${escapeHtml(t.alias)}, newest first</caption><thead><tr><th scope="col">Time</th><th scope="col">Job</th><th scope="col">Host</th><th scope="col">Source</th><th scope="col">Files</th><th scope="col">Size</th><th scope="col">New</th><th scope="col">Id</th></tr></thead><tbody>${t.snapshots
              .map(
                (s) =>
                  `<tr><td>${time(s.time)}</td><td>${escapeHtml(s.job)}</td><td>${escapeHtml(s.host)}</td><td>${escapeHtml(s.source)}</td><td>${num(stat(s.stats, 'filesTotal', 'filesSeen'))}</td><td>${bytes(
                    stat(s.stats, 'bytesTotal'),
                  )}</td><td>${bytes(stat(s.stats, 'bytesNew'))}</td><td><a href="/snapshots/${encodeURIComponent(t.alias)}/${s.id}">${escapeHtml(s.id.slice(0, 12))}</a></td></tr>`,
              )
              .join('')}</tbody></table></div>`
          : '<p>No snapshots yet.</p>';
      return `<section><h2>Target ${escapeHtml(t.alias)} <small>(${escapeHtml(t.kind)})</small></h2>${body}</section>`;
    })
    .join('\n');
  return page(ctx, 'Snapshots', `<h1>Snapshots</h1>${sections || '<p>No targets configured.</p>'}${restoreTable(restores)}`, '/snapshots');
}

const TYPE_MARK: Record<string, string> = { dir: '📁', file: '📄', symlink: '↪' };

/** One directory of a snapshot: entries with links to go deeper or download, and the restore form. */
export function renderBrowse(
  ctx: PageContext,
  m: { target: string; snapshot: SnapshotSummary; path: Buffer; entries: readonly SnapshotEntry[]; restores: readonly RestoreTask[] },
): string {
  const base = `/snapshots/${encodeURIComponent(m.target)}/${m.snapshot.id}`;
  const parts = m.path.length ? splitBytes(m.path) : [];
  const crumbs = [`<a href="${base}">${escapeHtml(m.snapshot.source || '/')}</a>`];
  for (let i = 0; i < parts.length; i++) {
    const sub = joinBytes(parts.slice(0, i + 1));
    crumbs.push(`<a href="${base}?path=${pathParam(sub)}">${escapeHtml(showName(parts[i]!))}</a>`);
  }
  const rows = m.entries
    .map((e) => {
      const sub = m.path.length ? Buffer.concat([m.path, Buffer.from('/'), e.name]) : e.name;
      const shown = escapeHtml(showName(e.name));
      const name =
        e.type === 'dir'
          ? `<a href="${base}?path=${pathParam(sub)}">${shown}/</a>`
          : e.type === 'file'
            ? `<a href="${base}/file?path=${pathParam(sub)}" download>${shown}</a>`
            : `${shown}${e.linkTarget ? ` → ${escapeHtml(showName(e.linkTarget))}` : ''}`;
      return `<tr><td><span aria-hidden="true">${TYPE_MARK[e.type] ?? '·'}</span> ${name}</td><td>${escapeHtml(e.type)}</td><td>${e.type === 'file' ? escapeHtml(formatBytes(e.size)) : ''}</td><td>${(e.mode & 0o7777)
        .toString(8)
        .padStart(4, '0')}</td><td>${time(e.mtime)}</td></tr>`;
    })
    .join('\n');
  const restore =
    ctx.role === 'owner'
      ? `<form method="post" action="${base}/restore" class="restore" data-api="/api/v1${base}/restore">
<input type="hidden" name="_csrf" value="${escapeHtml(ctx.csrf)}">
<input type="hidden" name="path" value="${pathParam(m.path)}">
<label for="restore-dest">Restore ${escapeHtml(parts.length ? showName(joinBytes(parts)) : 'the whole snapshot')} into a new or empty directory on the node</label>
<input id="restore-dest" name="dest" placeholder="/home/me/restored" required size="30">
<button type="submit">Restore</button>
</form>`
      : '';
  return page(
    ctx,
    `Snapshot ${m.snapshot.id.slice(0, 12)}`,
    `<h1>Snapshot <code>${escapeHtml(m.snapshot.id.slice(0, 12))}</code></h1>
<p class="meta">${escapeHtml(m.snapshot.job)} on ${escapeHtml(m.snapshot.host)}, ${time(m.snapshot.time)}, target ${escapeHtml(m.target)}</p>
<nav aria-label="Path" class="crumbs">${crumbs.join(' / ')}</nav>
<div class="scroll"><table><thead><tr><th scope="col">Name</th><th scope="col">Type</th><th scope="col">Size</th><th scope="col">Mode</th><th scope="col">Modified</th></tr></thead><tbody>
${rows || '<tr><td colspan="5">empty directory</td></tr>'}
</tbody></table></div>
${restore}
${restoreTable(m.restores)}`,
    '/snapshots',
  );
}

function splitBytes(p: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let start = 0;
  for (let i = 0; i <= p.length; i++) {
    if (i === p.length || p[i] === 0x2f) {
      if (i > start) out.push(p.subarray(start, i));
      start = i + 1;
    }
  }
  return out;
}

function joinBytes(parts: readonly Buffer[]): Buffer {
  return Buffer.concat(parts.flatMap((p, i) => (i === 0 ? [p] : [Buffer.from('/'), p])));
}

/** The storage service: clients with space, quota and last seen; alerts on top. */
export function renderStorage(ctx: PageContext, clients: readonly StorageClientView[], alerts: readonly { name: string; message: string }[]): string {
  const alertList = alerts.length ? `<ul class="alerts" role="alert">${alerts.map((a) => `<li>${escapeHtml(a.message)}</li>`).join('')}</ul>` : '<p>No alerts.</p>';
  const stale = new Set(alerts.map((a) => a.name));
  const rows = clients
    .map(
      (c) =>
        `<tr${stale.has(c.name) ? ' class="stale"' : ''}><td>${escapeHtml(c.name)}</td><td>${escapeHtml(formatBytes(c.usedBytes))}</td><td>${c.quota === null ? 'none' : escapeHtml(formatBytes(c.quota))}</td><td>${
          c.quota ? `<meter min="0" max="${c.quota}" value="${c.usedBytes}" aria-label="space used by ${escapeHtml(c.name)}"></meter>` : ''
        }</td><td>${num(c.objects)}</td><td>${c.appendOnly ? 'yes' : 'no'}</td><td>${time(c.lastSeenAt, 'never')}</td><td>${time(c.lastBackupAt, 'never')}</td></tr>`,
    )
    .join('\n');
  return page(
    ctx,
    'Storage',
    `<h1>Storage service</h1>
<h2>Alerts</h2>
${alertList}
<h2>Clients</h2>
${clients.length ? `<div class="scroll"><table><thead><tr><th scope="col">Client</th><th scope="col">Used</th><th scope="col">Quota</th><th scope="col">Share</th><th scope="col">Objects</th><th scope="col">Append-only</th><th scope="col">Last seen</th><th scope="col">Last backup</th></tr></thead><tbody>${rows}</tbody></table></div>` : '<p>No clients yet (nightjar add-client).</p>'}`,
    '/storage',
  );
}

/** A plain error page (message escaped). */
export function renderError(ctx: PageContext, status: number, message: string): string {
  return page(ctx, `Error ${status}`, `<h1>${status}</h1><p>${escapeHtml(message)}</p><p><a href="/">Back to the overview</a></p>`, '');
}
