// tinct web page: upload, options, colour hints, before/after view, download.
'use strict';

const $ = (id) => document.getElementById(id);
const state = { file: null, hints: [], resultUrl: null, beforeUrl: null, busy: false };

function setStatus(text, isError = false) {
  const s = $('status');
  s.textContent = text;
  s.classList.toggle('error', isError);
}

async function loadModels() {
  try {
    const r = await fetch('/api/models');
    const info = await r.json();
    const sel = $('model');
    sel.textContent = '';
    for (const m of info.models) {
      const o = document.createElement('option');
      o.value = m.name;
      o.textContent = m.name + ' — ' + m.description;
      o.selected = m.default;
      sel.appendChild(o);
    }
    const pal = $('palette');
    for (const p of info.palettes) {
      const o = document.createElement('option');
      o.value = p;
      o.textContent = p;
      pal.appendChild(o);
    }
    $('live-link').hidden = !info.live;
    updateRows();
  } catch (e) {
    setStatus('Cannot reach the server: ' + e, true);
  }
}

function updateRows() {
  const m = $('method').value;
  $('model-row').hidden = m !== 'gan';
  $('saturation-row').hidden = m !== 'gan';
  $('palette-row').hidden = m !== 'palette';
  $('reference-row').hidden = m !== 'reference';
  $('run').disabled = !state.file || state.busy;
}

function pickFile(file) {
  if (!file) return;
  state.file = file;
  state.hints = [];
  if (state.beforeUrl) URL.revokeObjectURL(state.beforeUrl);
  state.beforeUrl = URL.createObjectURL(file);
  $('before').src = state.beforeUrl;
  $('result').dataset.state = 'empty';
  $('result').removeAttribute('src');
  $('download').hidden = true;
  $('viewer').hidden = false;
  drawHints();
  updateRows();
  colourise();
}

function drawHints() {
  const layer = $('hints-layer');
  layer.textContent = '';
  const img = $('before');
  for (const h of state.hints) {
    if (!img.naturalWidth) break;
    const d = document.createElement('div');
    d.className = 'hint';
    d.style.left = (100 * (h.x + 0.5) / img.naturalWidth) + '%';
    d.style.top = (100 * (h.y + 0.5) / img.naturalHeight) + '%';
    d.style.background = h.color;
    layer.appendChild(d);
  }
  $('hint-count').textContent = state.hints.length + (state.hints.length === 1 ? ' hint' : ' hints');
}

function addHint(ev) {
  const img = $('before');
  if (!state.file || !img.naturalWidth) return;
  const rect = img.getBoundingClientRect();
  const x = Math.floor((ev.clientX - rect.left) * img.naturalWidth / rect.width);
  const y = Math.floor((ev.clientY - rect.top) * img.naturalHeight / rect.height);
  if (x < 0 || y < 0 || x >= img.naturalWidth || y >= img.naturalHeight) return;
  // Hints are discs a little larger than a pixel so a click on a big photo still counts.
  const radius = Math.max(1, Math.round(Math.max(img.naturalWidth, img.naturalHeight) / 300));
  state.hints.push({ x, y, color: $('hint-color').value, radius });
  if ($('method').value !== 'hints') {
    $('method').value = 'hints';
    updateRows();
  }
  drawHints();
  setStatus('Hint added: press Colourise to apply.');
}

async function colourise() {
  if (!state.file || state.busy) return;
  const method = $('method').value;
  const form = new FormData();
  form.append('image', state.file);
  form.append('method', method);
  if (method === 'gan' && $('model').value) form.append('model', $('model').value);
  if (method === 'gan') form.append('saturation', String($('saturation').value / 100));
  if (method === 'palette') form.append('palette', $('palette').value);
  if (method === 'hints') {
    if (!state.hints.length) {
      setStatus('Click the photo to add at least one colour hint.', true);
      return;
    }
    form.append('hints', JSON.stringify({ points: state.hints }));
  }
  if (method === 'reference') {
    const ref = $('reference').files[0];
    if (!ref) {
      setStatus('Choose a reference colour photo.', true);
      return;
    }
    form.append('reference', ref);
  }
  state.busy = true;
  updateRows();
  const t0 = performance.now();
  setStatus('Colourising…');
  $('result').dataset.state = $('result').dataset.state === 'done' ? 'done' : 'empty';
  try {
    const r = await fetch('/api/colorize?format=png', { method: 'POST', body: form });
    if (!r.ok) {
      let msg = r.status + ' ' + r.statusText;
      try { msg = (await r.json()).error || msg; } catch (_) { /* not JSON */ }
      throw new Error(msg);
    }
    const blob = await r.blob();
    if (state.resultUrl) URL.revokeObjectURL(state.resultUrl);
    state.resultUrl = URL.createObjectURL(blob);
    const res = $('result');
    await new Promise((resolve, reject) => {
      res.onload = resolve;
      res.onerror = () => reject(new Error('the result is not a displayable image'));
      res.src = state.resultUrl;
    });
    res.dataset.state = 'done';
    res.dataset.method = r.headers.get('x-tinct-method') || method;
    const dl = $('download');
    dl.href = state.resultUrl;
    dl.download = state.file.name.replace(/\.[^.]*$/, '') + '-colorized.png';
    dl.hidden = false;
    setStatus('Done in ' + ((performance.now() - t0) / 1000).toFixed(1) + ' s (' + res.dataset.method + ').');
  } catch (e) {
    $('result').dataset.state = 'error';
    setStatus(String(e.message || e), true);
  } finally {
    state.busy = false;
    updateRows();
  }
}

function init() {
  const drop = $('drop');
  $('file').addEventListener('change', (e) => pickFile(e.target.files[0]));
  for (const ev of ['dragenter', 'dragover']) {
    drop.addEventListener(ev, (e) => { e.preventDefault(); drop.classList.add('over'); });
  }
  for (const ev of ['dragleave', 'drop']) {
    drop.addEventListener(ev, () => drop.classList.remove('over'));
  }
  drop.addEventListener('drop', (e) => { e.preventDefault(); pickFile(e.dataTransfer.files[0]); });
  drop.addEventListener('keydown', (e) => { if (e.key === 'Enter' || e.key === ' ') $('file').click(); });
  $('method').addEventListener('change', updateRows);
  $('run').addEventListener('click', colourise);
  $('stage').addEventListener('click', addHint);
  $('before').addEventListener('load', drawHints);
  $('undo-hint').addEventListener('click', () => { state.hints.pop(); drawHints(); });
  $('clear-hints').addEventListener('click', () => { state.hints = []; drawHints(); });
  $('saturation').addEventListener('input', (e) => {
    $('saturation-value').textContent = e.target.value + '%';
  });
  $('split').addEventListener('input', (e) => {
    $('result').style.clipPath = 'inset(0 0 0 ' + e.target.value + '%)';
  });
  loadModels();
}

document.addEventListener('DOMContentLoaded', init);
