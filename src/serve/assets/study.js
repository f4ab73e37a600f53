// tinct study page: show a trial, record the click, show the next one.
'use strict';

const $ = (id) => document.getElementById(id);
let current = null;
let answered = 0;

function participant() {
  const el = $('participant');
  let id = el.value.trim();
  if (!id) {
    id = new URLSearchParams(location.search).get('p') || localStorage.getItem('tinct-participant') ||
      ('p-' + Math.random().toString(36).slice(2, 10));
    el.value = id;
  }
  localStorage.setItem('tinct-participant', id);
  return id;
}

async function nextTrial() {
  const grid = $('grid');
  grid.textContent = '';
  grid.dataset.state = 'loading';
  const r = await fetch('/api/study/trial?participant=' + encodeURIComponent(participant()));
  const t = await r.json();
  if (!r.ok) {
    $('progress').textContent = t.error || 'error';
    return;
  }
  current = { id: t.trial, shownAt: 0 };
  grid.classList.toggle('pair', t.images.length === 2);
  let pending = t.images.length;
  t.images.forEach((url, i) => {
    const b = document.createElement('button');
    b.className = 'choice';
    b.type = 'button';
    b.setAttribute('aria-label', 'Image ' + (i + 1));
    const img = document.createElement('img');
    img.alt = 'Image ' + (i + 1);
    img.onload = img.onerror = () => {
      if (--pending === 0) {
        grid.dataset.state = 'ready';
        current.shownAt = performance.now();
      }
    };
    img.src = url;
    b.appendChild(img);
    b.addEventListener('click', () => answer(i));
    grid.appendChild(b);
  });
}

async function answer(choice) {
  if (!current) return;
  const trial = current;
  current = null;
  const response_ms = trial.shownAt ? Math.round(performance.now() - trial.shownAt) : null;
  const r = await fetch('/api/study/answer', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ trial: trial.id, choice, response_ms }),
  });
  const res = await r.json();
  if (!r.ok) {
    $('progress').textContent = res.error || 'error';
    return;
  }
  answered += 1;
  $('progress').textContent = answered + (answered === 1 ? ' answer' : ' answers') + ' recorded. Thank you!';
  document.body.dataset.answers = String(answered);
  nextTrial();
}

async function init() {
  const r = await fetch('/api/study/info');
  const info = await r.json();
  $('instructions').textContent = info.mode === '2afc'
    ? 'One of these two photos is a real colour photo; the other was coloured by a computer. Click the real one.'
    : 'One of these ' + info.set_size + ' photos is a real colour photo; the others were coloured by a computer. Click the real one.';
  participant();
  nextTrial();
}

document.addEventListener('DOMContentLoaded', init);
