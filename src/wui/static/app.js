// Nightjar status page: live updates over server-sent events and controls through fetch.
// Loaded from /static/app.js (CSP script-src 'self'; no inline script). Without it the
// page still works: every control is a plain form and a reload shows the latest state.
'use strict';

(function () {
  const meta = (name) => document.querySelector(`meta[name="${name}"]`)?.getAttribute('content') ?? '';
  const csrf = meta('csrf-token');
  const live = document.getElementById('live-status');
  const say = (text) => {
    if (live) live.textContent = text;
  };

  function updateJob(card, j) {
    for (const el of card.querySelectorAll('[data-field]')) {
      const key = el.dataset.field;
      if (key === 'label') {
        el.textContent = j.label;
        el.className = `state state-${j.stateClass}`;
      } else if (key in j.fields) {
        el.textContent = j.fields[key];
        if (key === 'bytesSent') el.dataset.bytes = j.fields.bytesSentExact;
      }
    }
    card.dataset.state = j.stateClass;
    card.classList.toggle('stale', j.stale);
    const bar = card.querySelector('.bar');
    if (bar) {
      bar.hidden = !j.progress;
      const p = bar.querySelector('progress');
      if (p && j.progress) {
        p.max = j.progress.max;
        p.value = j.progress.value;
      }
    }
    for (const form of card.querySelectorAll('form[data-when]')) {
      const when = form.dataset.when;
      form.hidden = when === 'paused' ? !j.paused : when === 'unpaused' ? j.paused : when === 'active' ? !j.active : false;
    }
  }

  function apply(update) {
    const view = update.view;
    for (const el of document.querySelectorAll('[data-node-field]')) {
      const key = el.dataset.nodeField;
      if (key in view.node) el.textContent = view.node[key];
    }
    for (const card of document.querySelectorAll('section.job[data-job]')) {
      const j = view.jobs[card.dataset.job];
      if (j) updateJob(card, j);
    }
    for (const el of document.querySelectorAll('[data-job-field][data-for]')) {
      const j = view.jobs[el.dataset.for];
      if (j && el.dataset.jobField in j.fields) el.textContent = j.fields[el.dataset.jobField];
    }
    document.body.dataset.updatedAt = view.node.now;
  }

  if (document.querySelector('section.job[data-job], [data-node-field]') && 'EventSource' in window) {
    const source = new EventSource('/api/v1/events/stream');
    source.addEventListener('status', (e) => {
      try {
        apply(JSON.parse(e.data));
        document.body.dataset.live = 'on';
      } catch (err) {
        say(`could not show an update: ${err}`);
      }
    });
    source.addEventListener('error', () => {
      document.body.dataset.live = 'off';
      say('live updates paused: the node does not answer (retrying)');
    });
    source.addEventListener('open', () => say(''));
  }

  // Controls: POST the JSON API with the CSRF header; the form posts itself when fetch fails.
  document.addEventListener('submit', async (e) => {
    const form = e.target;
    if (!(form instanceof HTMLFormElement) || !form.dataset.api || !csrf) return;
    e.preventDefault();
    const body = {};
    for (const [k, v] of new FormData(form)) if (k !== '_csrf' && k !== 'back') body[k] = v;
    const buttons = form.querySelectorAll('button');
    buttons.forEach((b) => (b.disabled = true));
    try {
      const res = await fetch(form.dataset.api, {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'content-type': 'application/json', 'x-csrf-token': csrf, accept: 'application/json' },
        body: JSON.stringify(body),
      });
      const answer = await res.json().catch(() => ({}));
      if (!res.ok) {
        say(answer.error ?? `failed: HTTP ${res.status}`);
        return;
      }
      if (answer.action) say(`${answer.job ?? 'all jobs'}: ${answer.result}`);
      if (form.classList.contains('bandwidth') || form.classList.contains('restore')) location.reload();
    } catch (err) {
      say(`failed: ${err}`);
    } finally {
      buttons.forEach((b) => (b.disabled = false));
    }
  });
})();
