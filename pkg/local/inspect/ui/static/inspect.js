// The inspector page: follows the list live over server-sent events, shows
// a request's details in place, replays, and filters. Every piece of HTML
// it inserts was rendered (and escaped) by the server's templates.
(function () {
  'use strict';

  const table = document.getElementById('exchanges');
  const tbody = table.tBodies[0];
  const empty = document.getElementById('empty');
  const detail = document.getElementById('detail');
  const live = document.getElementById('live');
  const pathInput = document.getElementById('filter-path');
  const statusInput = document.getElementById('filter-status');
  const filterError = document.getElementById('filter-error');
  const limit = Number(table.dataset.limit) || 500;

  let selected = Number(detail.dataset.selected) || 0;
  let source = null;
  let detailTimer = null;
  // flash is a replay's outcome, shown on the new exchange's detail even
  // when the detail is rendered again as the exchange finishes.
  let flash = { id: 0, text: '' };

  function setLive(state, text) {
    live.dataset.state = state;
    live.textContent = text;
  }

  function showEmpty() {
    const filtered = pathInput.value.trim() !== '' || statusInput.value.trim() !== '';
    empty.dataset.filtered = filtered ? 'yes' : 'no';
    empty.hidden = tbody.rows.length > 0;
  }

  function rowFromHTML(html) {
    const t = document.createElement('template');
    t.innerHTML = html.trim();
    return t.content.firstElementChild;
  }

  // upsert puts a row in its place: the list is ordered newest (highest
  // id) first.
  function upsert(html) {
    const row = rowFromHTML(html);
    if (!row) return;
    const id = Number(row.dataset.id);
    if (id === selected) row.classList.add('selected');
    const old = document.getElementById(row.id);
    if (old) {
      old.replaceWith(row);
    } else {
      let before = null;
      for (const r of tbody.rows) {
        if (Number(r.dataset.id) < id) { before = r; break; }
      }
      tbody.insertBefore(row, before);
      while (tbody.rows.length > limit) tbody.deleteRow(-1);
    }
    if (id === selected) refreshDetailSoon(id);
  }

  function removeRow(id) {
    const row = document.getElementById('x-' + id);
    if (row) row.remove();
  }

  function evictBefore(oldest) {
    for (const r of Array.from(tbody.rows)) {
      if (Number(r.dataset.id) < oldest) r.remove();
    }
  }

  function connect(since) {
    if (source) source.close();
    filterError.textContent = '';
    const q = new URLSearchParams({ path: pathInput.value, status: statusInput.value, since: String(since) });
    source = new EventSource('/api/events?' + q.toString());
    source.onopen = function () { setLive('on', 'live'); };
    source.onerror = function () { setLive('off', 'reconnecting…'); };
    source.addEventListener('row', function (e) { upsert(e.data); showEmpty(); });
    source.addEventListener('remove', function (e) { removeRow(Number(e.data)); showEmpty(); });
    source.addEventListener('evict', function (e) { evictBefore(Number(e.data)); showEmpty(); });
    source.addEventListener('invalid', function (e) {
      filterError.textContent = e.data;
      setLive('off', 'filter not understood');
    });
  }

  function filterQuery() {
    const q = new URLSearchParams();
    if (pathInput.value.trim()) q.set('path', pathInput.value.trim());
    if (statusInput.value.trim()) q.set('status', statusInput.value.trim());
    const s = q.toString();
    return s ? '?' + s : '';
  }

  function remember() {
    const base = selected ? '/exchanges/' + selected : '/';
    history.replaceState(null, '', base + filterQuery());
  }

  // A new filter starts the list over: the server sends every kept
  // exchange that matches, then follows new ones.
  let filterTimer = null;
  function filterChanged() {
    clearTimeout(filterTimer);
    filterTimer = setTimeout(function () {
      tbody.replaceChildren();
      showEmpty();
      remember();
      connect(0);
    }, 200);
  }

  async function loadDetail(id) {
    const resp = await fetch('/exchanges/' + id + '/detail', { cache: 'no-store' });
    const html = await resp.text();
    if (id !== selected) return; // another row was clicked meanwhile
    detail.innerHTML = html;
    detail.dataset.selected = String(id);
    const status = document.getElementById('replay-status');
    if (status && flash.id === id) status.textContent = flash.text;
  }

  function refreshDetailSoon(id) {
    clearTimeout(detailTimer);
    detailTimer = setTimeout(function () { loadDetail(id); }, 100);
  }

  function select(id) {
    selected = id;
    for (const r of tbody.querySelectorAll('tr.selected')) r.classList.remove('selected');
    const row = document.getElementById('x-' + id);
    if (row) row.classList.add('selected');
    remember();
    return loadDetail(id);
  }

  tbody.addEventListener('click', function (e) {
    if (e.ctrlKey || e.metaKey || e.shiftKey || e.button !== 0) return; // let "open in new tab" work
    const row = e.target.closest('tr.exchange');
    if (!row) return;
    e.preventDefault();
    select(Number(row.dataset.id));
  });

  detail.addEventListener('click', function (e) {
    const link = e.target.closest('a.replay-of');
    if (!link || e.ctrlKey || e.metaKey || e.shiftKey) return;
    e.preventDefault();
    select(Number(link.dataset.id));
  });

  detail.addEventListener('submit', async function (e) {
    const form = e.target.closest('#replay-form');
    if (!form) return;
    e.preventDefault();
    const button = form.querySelector('#replay');
    const status = form.querySelector('#replay-status');
    button.disabled = true;
    status.textContent = 'replaying…';
    try {
      const resp = await fetch('/api/exchanges/' + form.dataset.id + '/replay', { method: 'POST' });
      const answer = await resp.json();
      if (!resp.ok) {
        status.textContent = answer.error || ('replay failed: ' + resp.status);
        button.disabled = false;
        return;
      }
      flash = { id: answer.id, text: 'Replay of #' + answer.replay_of + ': the app answered ' + answer.status + '.' };
      await select(answer.id);
    } catch (err) {
      status.textContent = 'replay failed: ' + err;
      button.disabled = false;
    }
  });

  pathInput.addEventListener('input', filterChanged);
  statusInput.addEventListener('input', filterChanged);
  document.getElementById('filters').addEventListener('submit', function (e) {
    e.preventDefault();
    filterChanged();
  });

  if (selected) {
    const row = document.getElementById('x-' + selected);
    if (row) row.classList.add('selected');
  }
  showEmpty();
  connect(Number(table.dataset.seq) || 0);
})();
