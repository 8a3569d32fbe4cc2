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

/** The overview: one card per job. Useful without JavaScript. */
export function renderOverview(status: NodeStatus, opts: { csrf: string }): string {
  const cards = status.jobs.length
    ? status.jobs.map(renderJobCard).join('\n')
    : '<p>No backup jobs yet. Add one to <code>node.cfg</code> (see <code>node.cfg.example</code>) and reload the node.</p>';
  return page(
    `Nightjar — ${status.nickname}`,
    `<header><h1>Nightjar <span class="nick">${escapeHtml(status.nickname)}</span></h1>
<p class="meta">running since <time datetime="${escapeHtml(status.startedAt)}">${escapeHtml(status.startedAt)}</time></p></header>
<main>
<h2>Jobs</h2>
${cards}
</main>`,
    opts.csrf,
  );
}

function renderJobCard(job: JobStatus): string {
  const rows: Array<[string, string]> = [
    ['Source', job.source],
    ['Target', job.target],
    ['Schedule', job.schedule],
    ['Allowed times', job.allowedTimes],
    ['Last result', job.lastResult ?? 'never run'],
    ['Last success', job.lastCompletedAt ?? 'never'],
  ];
  return `<section class="job" aria-labelledby="job-${escapeHtml(job.name)}">
<h3 id="job-${escapeHtml(job.name)}">${escapeHtml(job.name)} <span class="state state-${escapeHtml(job.state)}">${escapeHtml(job.paused ? 'paused' : job.state)}</span></h3>
<dl>${rows.map(([k, v]) => `<dt>${k}</dt><dd>${escapeHtml(v)}</dd>`).join('')}</dl>
</section>`;
}
