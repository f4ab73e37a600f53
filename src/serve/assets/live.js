// tinct live page: the two Motion JPEG streams side by side, and the run's counts.
'use strict';

const $ = (id) => document.getElementById(id);

function setStatus(text, isError = false) {
  const s = $('status');
  s.textContent = text;
  s.classList.toggle('error', isError);
}

function describe(st) {
  if (st.state === 'starting') return `Waiting for ${st.source}…`;
  const counts = `${st.frames_in} frames in, ${st.frames_out} out (${st.coloured} coloured, ` +
    `${st.carried} carried, ${st.dropped} dropped)`;
  if (st.state === 'ended') return `${st.source} ended: ${st.ended}. ${counts}.`;
  return `${st.source}: ${st.width}×${st.height}, ${st.fps_out.toFixed(1)} of ` +
    `${st.frame_rate.toFixed(1)} frames/s, latency ${st.latency_ms.toFixed(0)} ms. ${counts}.`;
}

let started = false;
async function poll() {
  let st;
  try {
    const r = await fetch('/api/live', { cache: 'no-store' });
    st = await r.json();
    if (!r.ok) {
      setStatus(st.error || `HTTP ${r.status}`, true);
      return;
    }
  } catch (e) {
    setStatus('Cannot reach the server: ' + e, true);
    setTimeout(poll, 2000);
    return;
  }
  // The streams start once there are frames, so a page opened early still shows them.
  if (!started && st.state !== 'starting') {
    started = true;
    $('gray').src = '/live/gray.mjpg';
    $('colour').src = '/live/colour.mjpg';
  }
  document.body.dataset.state = st.state;
  setStatus(describe(st), st.state === 'ended' && String(st.ended).startsWith('error'));
  if (st.state !== 'ended') setTimeout(poll, 1000);
}

poll();
