import type { JobStatus, NodeStatus } from './status.js';

/** Escapes text for HTML element content and quoted attribute values. */
export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

function page(title: string, body: string, csrf: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="csrf-token" content="${escapeHtml(csrf)}">
<title>${escapeHtml(title)}</title>
<link rel="stylesheet" href="/static/app.css">
</head>
<body>
${body}
</body>
</html>
`;
}

/** The overview: one card per job. Useful without JavaScript: controls are plain forms. */
export function renderOverview(status: NodeStatus, opts: { csrf: string; controls: boolean }): string {
  const cards = status.jobs.length
    ? status.jobs.map((j) => renderJobCard(j, opts)).join('\n')
    : '<p>No backup jobs yet. Add one to <code>node.cfg</code> (see <code>node.cfg.example</code>) and reload the node.</p>';
  return page(
    `Nightjar — ${status.nickname}`,
    `<header><h1>Nightjar <span class="nick">${escapeHtml(status.nickname)}</span></h1>
<p class="meta">running since <time datetime="${escapeHtml(status.startedAt ?? '')}">${escapeHtml(status.startedAt ?? '')}</time></p></header>
<main>
<h2>Jobs</h2>
${opts.controls ? `<div class="controls">${button('/pause', 'Pause all', opts.csrf)}${button('/resume', 'Resume all', opts.csrf)}</div>` : ''}
${cards}
</main>`,
    opts.csrf,
  );
}

function button(action: string, label: string, csrf: string): string {
  return `<form method="post" action="${escapeHtml(action)}"><input type="hidden" name="_csrf" value="${escapeHtml(csrf)}"><button type="submit">${escapeHtml(label)}</button></form>`;
}

function renderJobCard(job: JobStatus, opts: { csrf: string; controls: boolean }): string {
  const p = job.progress;
  const rows: Array<[string, string]> = [
    ['Source', job.source],
    ['Target', job.target],
    ['Schedule', job.schedule],
    ['Allowed times', job.allowedTimes],
    ['Next start', job.nextStartAt ? `${job.nextStartAt}${job.nextStartReason ? ` (${job.nextStartReason})` : ''}` : '—'],
    ['Last result', job.lastResult ?? 'never run'],
    ['Last success', job.lastCompletedAt ?? 'never'],
  ];
  if (p) {
    rows.push(
      ['Files', `${p.filesDone}${p.filesEstimated ? ` of about ${p.filesEstimated}` : ''} (${p.filesNew} new, ${p.filesChanged} changed, ${p.filesUnchanged} unchanged)`],
      ['Bytes', `${p.bytesRead} read, ${p.bytesNew} new, ${p.bytesWritten} written`],
      ['Current file', p.currentPath],
    );
  }
  const id = `job-${job.name}`;
  const base = `/jobs/${encodeURIComponent(job.name)}`;
  const controls = opts.controls
    ? `<div class="controls">${job.paused ? button(`${base}/resume`, 'Resume', opts.csrf) : button(`${base}/pause`, 'Pause', opts.csrf)}${button(`${base}/run`, 'Run now', opts.csrf)}${p ? button(`${base}/cancel`, 'Cancel', opts.csrf) : ''}</div>`
    : '';
  return `<section class="job" aria-labelledby="${escapeHtml(id)}" data-job="${escapeHtml(job.name)}">
<h3 id="${escapeHtml(id)}">${escapeHtml(job.name)} <span class="state state-${escapeHtml(job.paused ? 'paused' : job.state)}">${escapeHtml(job.label)}</span></h3>
<dl>${rows.map(([k, v]) => `<dt>${k}</dt><dd>${escapeHtml(v)}</dd>`).join('')}</dl>
${controls}
</section>`;
}
