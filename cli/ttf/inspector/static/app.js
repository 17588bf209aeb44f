// ttf inspector: the list, live updates, the detail pane, edit and replay, copy, HAR.
// Network data only ever becomes text (TTF.h / textContent): never markup.
"use strict";
(function () {
  const h = TTF.h;
  const $ = id => document.getElementById(id);
  const state = {
    selected: null,      // id of the selected entry
    entries: new Map(),  // id -> summary, as listed
    paused: false,
    missed: 0,
    status: null,
    detail: null,        // the selected entry's detail
    checked: new Set(),  // ids ticked for export
    refreshTimer: null,
    liveTimer: null,     // a streamed answer's detail refresh, pending
    editing: false,
    view: "requests",    // or "sockets": the caller WebSocket sessions
    sockets: new Map(),  // id -> session summary
    sockSelected: null,  // id of the selected session
    sockTimer: null,     // the selected session's detail refresh, pending
  };

  // ---- small helpers ---------------------------------------------------------------------
  async function api(path, options) {
    const r = await fetch(path, Object.assign({headers: {"Content-Type": "application/json"}}, options || {}));
    let data = null;
    try { data = await r.json(); } catch (e) { data = {error: "HTTP " + r.status}; }
    if (!r.ok) throw Object.assign(new Error(data.error || ("HTTP " + r.status)), {data: data, status: r.status});
    return data;
  }
  function notice(text, kind) {
    const box = $("notice");
    box.replaceChildren(h("span", {}, text), h("button", {type: "button", className: "link", onclick: () => { box.hidden = true; }}, "Dismiss"));
    box.className = kind || "error";
    box.hidden = false;
  }
  function clock(t) {
    const d = new Date(t * 1000);
    return d.toLocaleTimeString([], {hour12: false}) + "." + String(d.getMilliseconds()).padStart(3, "0");
  }
  function statusClass(e) {
    if (e.source === "denied") return "denied";
    return "s" + String(e.status).charAt(0);
  }
  const IDEMPOTENT = new Set(["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"]);

  function confirmDialog(text, okLabel) {
    const dialog = $("confirm");
    $("confirm-text").textContent = TTF.visible(text);
    $("confirm-ok").textContent = okLabel || "Send";
    return new Promise(resolve => {
      function done(value) {
        $("confirm-ok").removeEventListener("click", ok);
        $("confirm-cancel").removeEventListener("click", cancel);
        dialog.removeEventListener("cancel", cancel);
        if (dialog.open) dialog.close();
        resolve(value);
      }
      function ok() { done(true); }
      function cancel() { done(false); }
      $("confirm-ok").addEventListener("click", ok);
      $("confirm-cancel").addEventListener("click", cancel);
      dialog.addEventListener("cancel", cancel);
      dialog.showModal();
      $("confirm-cancel").focus();
    });
  }
  async function copyText(text, what) {
    try {
      await navigator.clipboard.writeText(text);
      notice(what + " copied to the clipboard.", "ok");
    } catch (e) {
      notice("The browser refused the clipboard: select the text below and copy it.", "warn");
    }
  }

  // ---- the header ------------------------------------------------------------------------
  function renderStatus(s) {
    state.status = s;
    const t = s.tunnel;
    const badge = $("state");
    badge.textContent = TTF.visible(stateText(t));
    badge.className = "state " + stateClass(t);
    const info = $("tunnel");
    const rows = [];
    const add = (label, value, copy) => rows.push(h("div", {className: "pair"}, h("dt", {}, label),
      h("dd", {}, h("span", {className: "mono"}, value || "—"), copy && value ? h("button", {type: "button", className: "link", onclick: () => copyText(value, label)}, "copy") : null)));
    if (s.tunnels && s.tunnels.length) {
      // a config file's tunnels: one line each (name, state, public URL, local target)
      for (const one of s.tunnels) {
        rows.push(h("div", {className: "pair"}, h("dt", {}, one.name),
          h("dd", {}, h("span", {className: "state " + stateClass(one)}, stateText(one)), " ",
            h("span", {className: "mono"}, one.public_url || "—"),
            one.public_url ? h("button", {type: "button", className: "link", onclick: () => copyText(one.public_url, one.name + " URL")}, "copy") : null,
            h("span", {className: "mono"}, " → http://" + one.local_target))));
      }
      const online = s.tunnels.filter(one => one.state === "online").length;
      const down = s.tunnels.filter(one => one.state === "online" && one.local_service === "down").length;
      badge.textContent = online + " of " + s.tunnels.length + " tunnels online" + (down ? " · " + down + " local service" + (down > 1 ? "s" : "") + " down" : "");
      badge.className = "state " + (online === s.tunnels.length && !down ? "online" : "reconnecting");
    } else {
      add("Tunnel id", t.tunnel_id);
      add("Public URL", t.public_url, true);
      if (t.subdomain_url && t.subdomain_url !== t.public_url) add("Subdomain URL", t.subdomain_url, true);
      if (t.path_based_url && t.path_based_url !== t.public_url) add("Path URL", t.path_based_url, true);
      add("Local", "http://" + s.local_target);
    }
    info.replaceChildren(...rows);
    if (s.sockets) renderSockCount(s.sockets.open);
    renderTunnels();
    renderCap();
    renderEmpty();
  }
  // "online · local service down (connection refused)": the tunnel is up, the app behind it is not
  function stateText(t) {
    let text = t.state + (t.reason ? ": " + t.reason : "");
    if (t.state === "online" && t.local_service === "down") text += " · local service down" + (t.local_detail ? " (" + t.local_detail + ")" : "");
    return text;
  }
  function stateClass(t) {
    return t.state === "online" && t.local_service === "down" ? "reconnecting" : t.state;
  }
  function renderCap() {
    const s = state.status;
    if (!s) return;
    const hist = s.history;
    $("cap").textContent = hist.count + " of max " + hist.limit + " kept · " + TTF.humanBytes(hist.bytes) + " of " +
      TTF.humanBytes(hist.budget) + " · bodies cut at " + TTF.humanBytes(hist.body_cap);
    const limit = $("limit");
    if (document.activeElement !== limit) limit.value = hist.limit;
  }
  function renderEmpty() {
    const empty = $("empty");
    const s = state.status;
    const none = state.entries.size === 0;
    empty.hidden = !none;
    $("list").hidden = none;
    if (!none || !s) return;
    const filtered = filterQuery().toString() !== "";
    if (filtered && s.history.count > 0) {
      $("empty-text").textContent = "No request matches the filters.";
      $("empty-curl").hidden = $("copy-empty").hidden = true;
      return;
    }
    const url = s.tunnel.public_url;
    $("empty-text").textContent = url ? "No requests yet. Send one to your public URL:" : "No requests yet. Waiting for the tunnel to be established…";
    const line = url ? "curl -i " + (url.endsWith("/") ? url : url + "/") : "";
    $("empty-curl").textContent = line;
    $("empty-curl").hidden = $("copy-empty").hidden = !url;
  }

  // ---- the list ----------------------------------------------------------------------------
  function filterQuery() {
    const q = new URLSearchParams();
    const set = (k, v) => { if (v) q.set(k, v); };
    set("path", $("f-path").value.trim());
    set("text", $("f-text").value);
    set("method", $("f-method").value);
    set("status", $("f-status").value);
    set("tunnel", $("f-tunnel").value);
    const minutes = Number($("f-time").value);
    if (minutes) q.set("since", String(Date.now() / 1000 - minutes * 60));
    return q;
  }
  function scheduleRefresh(delay) {
    if (state.refreshTimer) return;
    state.refreshTimer = setTimeout(() => { state.refreshTimer = null; refresh(); }, delay === undefined ? 150 : delay);
  }
  async function refresh() {
    let data;
    try { data = await api("/api/requests?" + filterQuery().toString()); } catch (e) { notice("Cannot read the list: " + e.message); return; }
    reconcile(data.requests);
    if (state.status) Object.assign(state.status.history, {count: data.count, limit: data.limit, bytes: data.bytes});
    $("more").hidden = data.total <= data.requests.length;
    $("more").textContent = "Showing the newest " + data.requests.length + " of " + data.total + " matching requests.";
    renderCap();
    renderEmpty();
    renderTunnels();
  }

  function row(e) {
    const statusText = String(e.status || "—") + (e.source === "denied" ? " denied" : "") + (e.error && e.source !== "denied" ? " " + e.error : "");
    const status = h("td", {className: "status " + statusClass(e), title: statusText}, statusText);
    const badges = [];
    if (e.source === "replay") badges.push(h("span", {className: "badge", title: "replay of #" + e.replay_of}, "replay"));
    if (e.source === "edited") badges.push(h("span", {className: "badge", title: "edited from #" + e.replay_of}, "edited"));
    if (e.source === "imported") badges.push(h("span", {className: "badge"}, "imported"));
    if (e.source === "denied") badges.push(h("span", {className: "badge denied", title: e.error || ""}, e.error || "denied"));
    if (e.streaming) badges.push(h("span", {className: "badge live", title: "the answer is still arriving"}, "streaming · " + TTF.humanBytes(e.response_size)));
    else if (e.streamed) badges.push(h("span", {className: "badge", title: "the answer went out as it was produced"}, "streamed"));
    const box = h("input", {type: "checkbox", tabIndex: -1, "aria-label": "select #" + e.id + " for export (x)", checked: state.checked.has(e.id)});
    box.addEventListener("click", ev => ev.stopPropagation());
    box.addEventListener("change", () => { if (box.checked) state.checked.add(e.id); else state.checked.delete(e.id); });
    const tr = h("tr", {dataset: {id: e.id}, tabIndex: -1, "aria-selected": "false"},
      h("td", {className: "pick"}, box),
      h("td", {className: "num"}, "#" + e.id),
      h("td", {className: "time"}, clock(e.time)),
      h("td", {className: "tunnel"}, e.tunnel || ""),
      h("td", {className: "method"}, e.method),
      h("td", {className: "host"}, e.host || ""),
      h("td", {className: "uri", title: e.uri}, e.uri, ...badges),
      status,
      h("td", {className: "dur"}, e.duration_ms + " ms"));
    tr.addEventListener("click", () => select(e.id));
    return tr;
  }

  // Patch the table to show `list` (newest first) without rebuilding it: rows that stay are the
  // same DOM nodes, so text selection, focus and the scroll position survive live updates.
  function reconcile(list) {
    const pane = $("listpane");
    const rows = $("rows");
    const anchor = pane.scrollTop > 0 ? firstVisibleRow(pane) : null;
    const anchorOffset = anchor ? anchor.offsetTop - pane.scrollTop : 0;
    const wanted = new Set(list.map(e => e.id));
    for (const tr of Array.from(rows.children)) {
      const id = Number(tr.dataset.id);
      if (!wanted.has(id)) { tr.remove(); state.entries.delete(id); }
    }
    let cursor = rows.firstElementChild;
    for (const e of list) {
      let tr = cursor && Number(cursor.dataset.id) === e.id ? cursor : rows.querySelector('tr[data-id="' + e.id + '"]');
      if (!tr) tr = row(e);
      if (tr !== cursor) rows.insertBefore(tr, cursor);
      else cursor = cursor.nextElementSibling;
      state.entries.set(e.id, e);
    }
    while (cursor) { const next = cursor.nextElementSibling; state.entries.delete(Number(cursor.dataset.id)); cursor.remove(); cursor = next; }
    if (anchor && anchor.isConnected) pane.scrollTop = anchor.offsetTop - anchorOffset;
    if (state.selected !== null && !wanted.has(state.selected)) { state.selected = null; state.editing = false; showNothing(); }
    markSelected();
  }
  function firstVisibleRow(pane) {
    for (const tr of $("rows").children) if (tr.offsetTop + tr.offsetHeight > pane.scrollTop) return tr;
    return null;
  }
  function markSelected() {
    markRows("rows", state.selected);
  }
  function markRows(body, selected) {  // the requests' or the WebSocket sessions' list
    for (const tr of $(body).children) {
      const on = Number(tr.dataset.id) === selected;
      tr.classList.toggle("sel", on);
      tr.setAttribute("aria-selected", String(on));
      tr.tabIndex = on ? 0 : -1;
    }
  }
  function renderTunnels() {
    // a config file's tunnels (the status names them all), else whatever tunnel ids the entries carry
    const named = state.status && state.status.tunnels ? state.status.tunnels.map(one => one.name) : [];
    const seen = new Set(named.concat(Array.from(state.entries.values()).map(e => e.tunnel).filter(Boolean)));
    const select = $("f-tunnel");
    document.body.classList.toggle("multi-tunnel", seen.size > 1 || select.value !== "");
    select.hidden = seen.size <= 1 && select.value === "";
    for (const t of seen) if (!Array.from(select.options).some(o => o.value === t)) select.append(h("option", {value: t}, t));
  }

  // ---- live updates (server-sent events) ---------------------------------------------------
  function listen() {
    const source = new EventSource("/api/events");
    source.addEventListener("hello", ev => { renderStatus(JSON.parse(ev.data)); scheduleRefresh(0); });
    source.addEventListener("status", ev => renderStatus(JSON.parse(ev.data)));
    source.addEventListener("entry", ev => {
      const data = JSON.parse(ev.data);
      if (state.status) state.status.history.count = data.count;
      if (state.paused) { state.missed++; renderPause(); renderCap(); return; }
      scheduleRefresh();
    });
    // a streamed answer's entry as it arrives (status, growing size, body so far): patch its row in place
    // and, when it is the one shown, its detail (at most every LIVE_DETAIL_MS)
    source.addEventListener("update", ev => {
      const e = JSON.parse(ev.data).entry;
      if (state.paused) return;
      const tr = $("rows").querySelector('tr[data-id="' + e.id + '"]');
      if (!tr) return;
      state.entries.set(e.id, e);
      tr.replaceWith(row(e));
      markSelected();
      if (state.selected === e.id && !state.editing) liveDetail(e.id, !e.streaming);
    });
    for (const kind of ["cleared", "settings", "resync"]) source.addEventListener(kind, () => {
      if (kind === "cleared" && state.selected !== null) { state.selected = null; showNothing(); }
      if (!state.paused || kind !== "resync") scheduleRefresh(0);
      if (kind === "resync") refreshSockets();  // this page fell behind: the sessions' events too
      api("/api/status").then(renderStatus, () => {});
    });
    // a caller WebSocket session opened, changed (messages: at most every 250 ms) or closed
    source.addEventListener("socket", ev => {
      const data = JSON.parse(ev.data);
      const s = data.socket;
      renderSockCount(data.open);
      for (const id of data.evicted) {
        state.sockets.delete(id);
        const gone = sockTr(id);
        if (gone) gone.remove();
        if (state.sockSelected === id) { state.sockSelected = null; if (state.view === "sockets") showNoSocket(); }
      }
      state.sockets.set(s.id, s);
      const old = sockTr(s.id);
      const tr = sockRow(s);
      if (old) old.replaceWith(tr); else $("sockrows").prepend(tr);
      renderSockEmpty();
      markSockSelected();
      if (state.view === "sockets" && state.sockSelected === s.id) liveSocket(s.id, s.state !== "open");
    });
    source.onerror = () => { $("state").textContent = "inspector unreachable (ttf stopped?)"; $("state").className = "state offline"; };
    source.onopen = () => api("/api/status").then(renderStatus, () => {});
  }
  const LIVE_DETAIL_MS = 500;
  // A live detail (a streamed answer's, a WebSocket session's) is fetched again at most every
  // LIVE_DETAIL_MS, and at once for the last change; `show` gets it unless the page moved on.
  function refetchLater(timer, path, last, show) {
    if (state[timer] && !last) return;
    clearTimeout(state[timer]);
    state[timer] = setTimeout(async () => {
      state[timer] = null;
      let d;
      try { d = await api(path); } catch (e) { return; }
      show(d);
    }, last ? 0 : LIVE_DETAIL_MS);
  }
  function liveDetail(id, last) {
    refetchLater("liveTimer", "/api/requests/" + id, last, d => {
      if (state.selected !== id || state.editing || state.view !== "requests") return;
      const pane = $("detail");
      const top = pane.scrollTop;
      state.detail = d;
      renderDetail(d);
      pane.scrollTop = top;
    });
  }
  function renderPause() {
    const b = $("pause");
    b.textContent = state.paused ? "Resume live updates" : "Pause live updates";
    b.setAttribute("aria-pressed", String(state.paused));
    $("pending").textContent = state.paused && state.missed ? state.missed + " new while paused" : "";
  }

  // ---- the detail pane ---------------------------------------------------------------------
  function showNothing() {
    TTF.releaseObjectUrls();
    state.detail = null;
    if (state.view !== "requests") return;  // the pane shows a WebSocket session
    $("detail").replaceChildren(h("p", {className: "dim"}, "Select a request (click, or ↑/↓ and j/k)."));
  }
  async function select(id, focusRow) {
    state.selected = id;
    state.editing = false;
    state.detail = null;  // until this request's detail arrives, r/e/c must not act on the previous one
    markSelected();
    const tr = $("rows").querySelector('tr[data-id="' + id + '"]');
    if (tr) { tr.scrollIntoView({block: "nearest"}); if (focusRow !== false) tr.focus({preventScroll: true}); }
    let d;
    try { d = await api("/api/requests/" + id); } catch (e) { $("detail").replaceChildren(h("p", {className: "dim"}, e.message)); return; }
    if (state.selected !== id || state.view !== "requests") return;
    state.detail = d;
    renderDetail(d);
    if (d.replay_of !== null && d.replay_of !== undefined) showDiff(d.id, d.replay_of);
  }

  function link(id, text) {
    return h("button", {type: "button", className: "link", onclick: () => select(id)}, text || "#" + id);
  }
  function renderDetail(d) {
    TTF.releaseObjectUrls();
    const box = $("detail");
    const meta = h("p", {className: "meta"},
      h("span", {className: "status " + statusClass(d)}, String(d.status)), " · ", d.duration_ms + " ms in the local app · ",
      new Date(d.time * 1000).toLocaleString(), d.tunnel ? " · tunnel " + d.tunnel : "");
    const links = h("p", {className: "links"});
    if (d.source === "denied") links.append(h("span", {className: "badge denied"}, "refused by the edge: " + (d.error || "denied")), " It never reached your local service. ");
    else if (d.error) links.append(h("span", {className: "badge"}, "error: " + d.error), " ");
    if (d.replay_of !== null) links.append(d.source === "edited" ? "Edited from " : "Replay of ", link(d.replay_of), " ");
    if (d.source === "imported") links.append("Imported from a HAR file. ");
    if (d.replays.length) { links.append("Replayed as "); d.replays.slice(0, 20).forEach(r => links.append(link(r), " ")); }
    const count = h("input", {type: "number", min: 1, max: state.status ? state.status.replay_max : 100, value: 1, id: "replay-count", "aria-label": "times to replay"});
    const target = h("select", {id: "copy-target", "aria-label": "command target"},
      h("option", {value: "local"}, "to the local service"), h("option", {value: "public"}, "through the public URL"));
    const actions = h("div", {className: "actions"},
      h("button", {type: "button", className: "primary", id: "do-replay", onclick: () => replay(d, null, Number(count.value) || 1)}, "Replay"),
      h("label", {className: "times"}, "×", count),
      h("button", {type: "button", id: "do-edit", onclick: () => openEditor(d)}, "Edit and replay"),
      h("button", {type: "button", id: "copy-curl", onclick: () => copyCommand(d, "curl", target.value)}, "Copy as curl"),
      h("button", {type: "button", id: "copy-httpie", onclick: () => copyCommand(d, "httpie", target.value)}, "Copy as HTTPie"),
      target,
      h("a", {href: "/api/har?ids=" + d.id, download: "ttf-" + d.id + ".har", className: "button"}, "HAR"));
    box.replaceChildren(
      h("h2", {className: "title"}, h("span", {className: "method"}, d.method), " ", h("span", {className: "mono"}, d.uri)),
      meta, links, actions,
      h("div", {id: "command-box", hidden: true}),
      h("div", {id: "diff-box"}),
      h("section", {className: "part"}, h("h3", {}, "Request headers"), hostNote(d), TTF.headerTable(d.request_headers)),
      h("section", {className: "part"}, h("h3", {}, "Request body ", sizeNote(d.request_size, d.request_truncated)),
        TTF.bodyView(d.request_body, d.request_size, d.request_truncated, d.request_view, d.request_headers)),
      h("section", {className: "part"}, h("h3", {}, "Response headers"), TTF.headerTable(d.response_headers)),
      h("section", {className: "part"}, h("h3", {}, "Response body ", sizeNote(d.response_size, d.response_truncated),
        d.streaming ? h("span", {className: "badge live"}, "still arriving") : d.streamed ? h("span", {className: "badge"}, "streamed") : null),
        TTF.bodyView(d.response_body, d.response_size, d.response_truncated, d.response_view, d.response_headers)));
  }
  // The headers are as the caller sent them; the local service got Host: <local target> (ttf moves the
  // public one to X-Forwarded-Host unless --keep-host): say so where the Host header is read.
  function hostNote(d) {
    const sent = d.sent_host;
    const got = Object.entries(d.request_headers || {}).find(([k]) => k.toLowerCase() === "host");
    if (!sent || !got || got[1][0] === sent) return null;
    return h("div", {className: "notes"}, h("p", {className: "info", id: "host-note"}, "As the caller sent them. Your local service received Host: " +
      sent + ", with the public host in X-Forwarded-Host (ttf --keep-host passes the public Host instead)."));
  }
  function sizeNote(size, truncated) {
    return h("span", {className: "dim"}, "(" + TTF.humanBytes(size) + (truncated ? ", truncated" : "") + ")");
  }

  async function showDiff(id, against) {
    let diff;
    try { diff = await api("/api/requests/" + id + "/diff?against=" + against); } catch (e) { return; }
    const box = $("diff-box");
    if (!box || state.selected !== id) return;
    const changed = diff.headers.filter(r => r.change !== "same");
    const body = diff.body;
    const lines = (body.lines || []).map(l => h("div", {className: l.startsWith("+") ? "add" : l.startsWith("-") ? "del" : l.startsWith("@@") ? "hunk" : ""}, l));
    box.replaceChildren(h("section", {className: "diff", id: "diff"},
      h("h3", {}, "Response compared with ", link(against)),
      h("p", {}, "Status: ", diff.status.same ? String(diff.status.b) + " (same)" : diff.status.a + " → " + diff.status.b),
      changed.length ? TTF.table(["header", "change", "#" + against, "#" + id], changed.map(r => [r.name, r.change, r.a.join(", "), r.b.join(", ")]))
        : h("p", {}, "Headers: the same."),
      h("p", {}, "Body: ", body.same ? "the same (" + TTF.humanBytes(body.b_size) + ")" :
        "different (" + TTF.humanBytes(body.a_size) + " → " + TTF.humanBytes(body.b_size) + ")",
        body.decoded_for_display ? " · compared decoded for display" : "", body.truncated ? " · a capture was truncated" : ""),
      lines.length ? h("pre", {className: "udiff"}, ...lines) : null));
  }

  // ---- replay and edit ---------------------------------------------------------------------
  async function replay(d, edits, count) {
    const method = edits && edits.method ? edits.method : d.method;
    if (!IDEMPOTENT.has(method.toUpperCase())) {
      const times = count > 1 ? " " + count + " times" : "";
      const ok = await confirmDialog("Send " + method + " " + (edits && edits.uri ? edits.uri : d.uri) + " to the local service again" + times +
        "? " + method + " is not idempotent: doing it again may change data.", "Send " + method);
      if (!ok) return false;
    }
    const body = {count: count};
    if (edits) body.request = edits;
    let result;
    try {
      result = await api("/api/requests/" + d.id + "/replay", {method: "POST", body: JSON.stringify(body)});
    } catch (e) {
      notice((edits ? "Edited request refused: " : "Replay refused: ") + e.message);
      return false;
    }
    if (count > 1) {
      const st = Object.entries(result.statuses).map(([k, v]) => v + "× " + k).join(", ");
      notice("Replayed " + count + " times: " + st + "; " + result.durations_ms.min + "/" + result.durations_ms.median + "/" + result.durations_ms.max + " ms (min/median/max).", "ok");
    }
    if (state.paused) { state.paused = false; state.missed = 0; renderPause(); }
    await refresh();
    $("listpane").scrollTop = 0;  // the new entry is the newest: bring it into view
    await select(result.id);
    return true;
  }

  function headersText(headers) {
    const lines = [];
    for (const [name, values] of Object.entries(headers)) for (const v of values) lines.push(name + ": " + v);
    return lines.join("\n");
  }
  function parseHeaders(text) {
    const out = [];
    for (const [i, line] of text.split("\n").entries()) {
      if (!line.trim()) continue;
      const at = line.indexOf(":");
      if (at < 1) throw new Error("headers, line " + (i + 1) + ": expected 'Name: value'");
      out.push([line.slice(0, at).trim(), line.slice(at + 1).replace(/^[ \t]+/, "").replace(/\r$/, "")]);
    }
    return out;
  }

  function openEditor(d) {
    state.editing = true;
    let touched = false;  // an untouched body editor sends the captured bytes unchanged
    const raw = TTF.bytes(d.request_body);
    const text = TTF.utf8(raw);
    const layout = d.request_view && d.request_view.layout ? d.request_view.layout.kind : "text";
    const method = h("input", {id: "edit-method", value: d.method, "aria-label": "method", list: "methods", autocomplete: "off"});
    const uri = h("input", {id: "edit-uri", value: d.uri, "aria-label": "path and query", className: "mono wide"});
    const headers = h("textarea", {id: "edit-headers", className: "mono", rows: 8, "aria-label": "headers, one 'Name: value' per line"});
    headers.value = headersText(d.request_headers);
    const modes = [["keep", "keep the captured body"], ["text", "text"], ["json", "JSON"], ["form", "form fields"], ["file", "file (binary)"]];
    const mode = h("select", {id: "edit-mode", "aria-label": "body as"}, ...modes.map(([v, t]) => h("option", {value: v}, t)));
    mode.value = d.request_truncated || (raw.length && text === null) ? "keep" : layout === "json" ? "json" : layout === "form" ? "form" : "text";
    const bodyText = h("textarea", {id: "edit-body", className: "mono", rows: 10, "aria-label": "body"});
    bodyText.value = text === null ? "" : text;
    const formRows = h("tbody", {});
    const addField = (k, v) => {
      const name = h("input", {value: k, "aria-label": "field name"});
      const value = h("input", {value: v, "aria-label": "field value", className: "wide"});
      const tr = h("tr", {}, h("td", {}, name), h("td", {}, value),
        h("td", {}, h("button", {type: "button", className: "link", onclick: () => { tr.remove(); touched = true; }}, "remove")));
      formRows.append(tr);
    };
    for (const [k, v] of new URLSearchParams(text || "")) addField(k, v);
    const form = h("div", {id: "edit-form"}, h("table", {className: "kv"}, h("thead", {}, h("tr", {}, h("th", {}, "name"), h("th", {}, "value"), h("th", {}, ""))), formRows),
      h("button", {type: "button", onclick: () => { addField("", ""); touched = true; }}, "Add field"));
    const file = h("input", {type: "file", id: "edit-file", "aria-label": "body from a file"});
    const jsonNote = h("span", {className: "dim", "aria-live": "polite"});
    const format = h("button", {type: "button", onclick: () => {
      try { bodyText.value = JSON.stringify(JSON.parse(bodyText.value), null, 2); touched = true; jsonNote.textContent = ""; } catch (e) { jsonNote.textContent = "not JSON: " + e.message; }
    }}, "Format JSON");
    bodyText.addEventListener("input", () => { touched = true; });
    formRows.addEventListener("input", () => { touched = true; });
    const bodyBox = h("div", {className: "edit-body"});
    function showMode() {
      bodyBox.replaceChildren(...({
        keep: [h("p", {className: "dim"}, d.request_truncated ? "The captured body was truncated: it cannot be sent as it was." : "The captured " + raw.length + " bytes are sent unchanged.")],
        text: [bodyText], json: [bodyText, h("div", {}, format, jsonNote)], form: [form], file: [file],
      })[mode.value]);
    }
    mode.addEventListener("change", () => { touched = true; showMode(); });
    showMode();
    const count = h("input", {type: "number", min: 1, max: state.status ? state.status.replay_max : 100, value: 1, id: "edit-count", "aria-label": "times to send"});
    const error = h("p", {className: "error", id: "edit-error", role: "alert"});
    async function send() {
      error.textContent = "";
      const edits = {method: method.value.trim(), uri: uri.value.trim()};
      try { edits.headers = parseHeaders(headers.value); } catch (e) { error.textContent = e.message; return; }
      if (mode.value === "file") {
        if (!file.files.length) { error.textContent = "choose a file for the body"; return; }
        edits.body_base64 = TTF.base64(new Uint8Array(await file.files[0].arrayBuffer()));
      } else if (touched && mode.value === "json") {
        try { JSON.parse(bodyText.value); } catch (e) { error.textContent = "the body is not JSON: " + e.message; return; }
        edits.body = bodyText.value;
      } else if (touched && mode.value === "text") {
        edits.body = bodyText.value;
      } else if (touched && mode.value === "form") {
        const q = new URLSearchParams();
        for (const tr of formRows.children) { const [n, v] = tr.querySelectorAll("input"); if (n.value) q.append(n.value, v.value); }
        edits.body = q.toString();
      }
      // untouched text/json/form and "keep": the captured bytes go out exactly as they were
      const sent = await replay(d, edits, Number(count.value) || 1);
      if (!sent) {
        const last = $("notice").textContent;
        if (last) error.textContent = last.replace(/Dismiss$/, "");
      }
    }
    $("detail").replaceChildren(h("form", {className: "editor", id: "editor", "aria-label": "Edit the request"},
      h("h2", {}, "Edit #" + d.id + " and send it to the local service"),
      h("div", {className: "line"}, method, uri),
      h("label", {className: "block"}, "Headers (one 'Name: value' per line)", headers),
      h("div", {className: "line"}, h("label", {}, "Body as ", mode)),
      bodyBox,
      error,
      h("div", {className: "actions"},
        h("button", {type: "button", className: "primary", id: "edit-send", onclick: send}, "Send"),
        h("label", {className: "times"}, "×", count),
        h("button", {type: "button", id: "edit-cancel", onclick: () => select(d.id)}, "Cancel"))));
    $("editor").addEventListener("submit", ev => ev.preventDefault());
    method.focus();
  }

  // ---- copy as curl / HTTPie ----------------------------------------------------------------
  async function copyCommand(d, tool, target) {
    let c;
    try { c = await api("/api/requests/" + d.id + "/curl?target=" + target); } catch (e) { notice(e.message); return; }
    const text = tool === "curl" ? c.curl : c.httpie;
    const box = $("command-box");
    box.hidden = false;
    box.replaceChildren(h("h3", {}, tool === "curl" ? "curl" : "HTTPie", " (", c.url, ")"),
      h("pre", {className: "command", id: "command"}, text),
      ...c.notes.map(n => h("p", {className: "warn"}, n)),
      ...(c.body_url ? [h("a", {href: c.body_url, download: c.body_file, className: "button", id: "body-download"}, "Download " + c.body_file)] : []));
    await copyText(text, tool === "curl" ? "curl command" : "HTTPie command");
  }

  // ---- caller WebSocket sessions ---------------------------------------------------------------
  function setView(view) {
    if (state.view === view) return;
    state.view = view;
    state.editing = false;
    document.body.classList.toggle("view-sockets", view === "sockets");
    $("view-requests").setAttribute("aria-selected", String(view === "requests"));
    $("view-sockets").setAttribute("aria-selected", String(view === "sockets"));
    if (view === "sockets") {
      refreshSockets();
      if (state.sockSelected !== null) selectSocket(state.sockSelected, false); else showNoSocket();
    } else if (state.selected !== null) {
      select(state.selected, false);
    } else {
      showNothing();
    }
  }
  function renderSockCount(open) {
    $("sock-count").textContent = open ? open + " open" : "";
  }
  async function refreshSockets() {
    let data;
    try { data = await api("/api/sockets"); } catch (e) { notice("Cannot read the WebSocket sessions: " + e.message); return; }
    state.sockets = new Map(data.sockets.map(s => [s.id, s]));
    $("sockrows").replaceChildren(...data.sockets.map(sockRow));  // newest first
    renderSockCount(data.open);
    renderSockEmpty();
    markSockSelected();
  }
  function renderSockEmpty() {
    const none = state.sockets.size === 0;
    $("sock-empty").hidden = !none;
    $("socklist").hidden = none;
  }
  function sockTr(id) {
    return $("sockrows").querySelector('tr[data-id="' + id + '"]');
  }
  function sockStateText(s) {
    if (s.state === "open") return "open" + (s.protocol ? " · " + s.protocol : "");
    if (s.state === "refused") return "refused " + s.refused_status;
    return "closed" + (s.close_code === null ? "" : " " + s.close_code) + (s.closed_by ? " by " + s.closed_by : "");
  }
  function arrow(direction) {
    return direction === "to_app" ? "→ app" : "→ caller";
  }
  function sockRow(s) {
    const tr = h("tr", {dataset: {id: s.id}, tabIndex: -1, "aria-selected": "false"},
      h("td", {className: "num"}, "#" + s.id),
      h("td", {className: "time"}, clock(s.opened_at)),
      h("td", {className: "tunnel"}, s.tunnel || ""),
      h("td", {className: "uri", title: s.uri}, s.uri),
      h("td", {className: "sstate s" + s.state, title: s.close_reason || ""}, sockStateText(s)),
      h("td", {className: "msgs", title: s.messages.to_app + " caller → app, " + s.messages.to_caller + " app → caller"},
        s.messages.to_app + " / " + s.messages.to_caller),
      h("td", {className: "last", title: s.last ? s.last.text : ""}, s.last ? arrow(s.last.direction) + " " + s.last.text : ""));
    tr.addEventListener("click", () => selectSocket(s.id));
    return tr;
  }
  function markSockSelected() {
    markRows("sockrows", state.sockSelected);
  }
  function showNoSocket() {
    $("detail").replaceChildren(h("p", {className: "dim"}, "Select a WebSocket session (click, or ↑/↓ and j/k)."));
  }
  async function selectSocket(id, focusRow) {
    state.sockSelected = id;
    markSockSelected();
    const tr = sockTr(id);
    if (tr) { tr.scrollIntoView({block: "nearest"}); if (focusRow !== false) tr.focus({preventScroll: true}); }
    let d;
    try { d = await api("/api/sockets/" + id); } catch (e) { $("detail").replaceChildren(h("p", {className: "dim"}, e.message)); return; }
    if (state.sockSelected !== id || state.view !== "sockets") return;
    renderSocket(d, true);
  }
  function liveSocket(id, last) {
    refetchLater("sockTimer", "/api/sockets/" + id, last, d => {
      if (state.sockSelected === id && state.view === "sockets") renderSocket(d, false);
    });
  }
  function durationText(seconds) {
    const s = Math.max(0, Math.round(seconds));
    return s < 60 ? s + " s" : Math.floor(s / 60) + " min " + (s % 60) + " s";
  }
  function endedNote(d) {
    if (d.state === "open") return null;
    let text;
    if (d.state === "refused") {
      text = "The handshake was refused: the caller got " + d.refused_status + " (" + d.refused_code + (d.close_reason ? ": " + d.close_reason : "") + ").";
    } else if (d.closed_by === "caller") {
      text = "The caller closed it with " + d.close_code + (d.close_reason ? " (" + d.close_reason + ")" : "") + "; the app got that code.";
    } else if (d.closed_by === "app") {
      text = "The app closed it with " + d.close_code + (d.close_reason ? " (" + d.close_reason + ")" : "") +
        "; the caller saw 1000 (API Gateway's server-side close passes no other code).";
    } else {
      text = "ttf ended it with " + d.close_code + (d.close_reason ? ": " + d.close_reason : "") + ".";
    }
    return h("div", {className: "notes"}, h("p", {className: d.state === "refused" ? "warn" : "info", id: "sock-ended"}, text));
  }
  // the parts of the detail that change (the send form between them is kept, with what you typed)
  function socketTop(d) {
    const meta = h("p", {className: "meta"}, h("span", {className: "s" + d.state}, sockStateText(d)),
      " · opened " + new Date(d.opened_at * 1000).toLocaleString(),
      d.closed_at && d.state !== "refused" ? " · lasted " + durationText(d.closed_at - d.opened_at) : "",
      d.tunnel ? " · tunnel " + d.tunnel : "");
    const counts = TTF.table(["", "messages", "bytes"], [
      ["caller → app", d.messages.to_app, TTF.humanBytes(d.bytes.to_app)],
      ["app → caller", d.messages.to_caller, TTF.humanBytes(d.bytes.to_caller)]]);
    return [meta, endedNote(d), d.state === "refused" ? null : counts];
  }
  function socketBottom(d) {
    const total = d.messages.to_app + d.messages.to_caller;
    const items = d.kept.slice().reverse().map(m => h("li", {className: m.direction},
      h("div", {className: "head"}, h("span", {className: "dir"}, arrow(m.direction)), h("span", {}, clock(m.time)),
        h("span", {}, TTF.humanBytes(m.size) + (m.truncated ? " (the first " + TTF.humanBytes(d.limits.message_keep) + " shown)" : "")),
        m.injected ? h("span", {className: "badge"}, "sent from the inspector") : null),
      h("pre", {className: "msg"}, m.text)));
    const kept = total > d.kept.length ? "; the last " + d.kept.length + " of " + total + " kept" : "";
    return [
      h("section", {className: "part"}, h("h3", {}, "Messages ", h("span", {className: "dim"}, "(newest first" + kept + ")")),
        items.length ? h("ul", {className: "wsmsgs", id: "sock-msgs"}, ...items) : h("p", {className: "dim"}, "No messages yet.")),
      h("section", {className: "part"}, h("h3", {}, "Handshake headers ", h("span", {className: "dim"}, "(as the caller sent them" +
        (d.headers_truncated ? "; cut" : "") + ")")), TTF.headerTable(d.headers))];
  }
  function sendForm(d) {
    const text = h("textarea", {id: "sock-text", className: "mono", rows: 4, "aria-label": "message text"});
    const to = h("select", {id: "sock-to", "aria-label": "send toward"},
      h("option", {value: "caller"}, "to the caller (as if the app sent it)"),
      h("option", {value: "app"}, "to the app (as if the caller sent it)"));
    const result = h("p", {id: "sock-result", role: "status", className: "dim"});
    async function send() {
      result.textContent = "";
      try {
        const r = await api("/api/sockets/" + d.id + "/send", {method: "POST", body: JSON.stringify({text: text.value, to: to.value})});
        result.textContent = "Sent " + TTF.humanBytes(r.sent.size) + " to the " + r.sent.to + ".";
        result.className = "dim";
      } catch (e) {
        result.textContent = "Not sent: " + e.message;
        result.className = "error";
      }
    }
    text.addEventListener("keydown", ev => { if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) { ev.preventDefault(); send(); } });
    const form = h("form", {className: "wssend", id: "sock-send-form", dataset: {id: d.id}, "aria-label": "Send a message into this session"},
      h("h3", {}, "Send a text message"), text,
      h("div", {className: "actions"}, to, h("button", {type: "button", className: "primary", id: "sock-send", onclick: send}, "Send"),
        h("span", {className: "dim"}, "Ctrl+Enter")),
      result);
    form.addEventListener("submit", ev => ev.preventDefault());
    return form;
  }
  function renderSocket(d, fresh) {
    const box = $("detail");
    const form = document.getElementById("sock-send-form");
    if (!fresh && form && form.dataset.id === String(d.id)) {
      $("sock-top").replaceChildren(...socketTop(d).filter(Boolean));
      $("sock-bottom").replaceChildren(...socketBottom(d));
      if (d.state !== "open") form.replaceWith(h("p", {className: "dim", id: "sock-closed"}, "The session is over: nothing more can be sent."));
      return;
    }
    const top = box.scrollTop;
    box.replaceChildren(
      h("h2", {className: "title"}, h("span", {className: "method"}, "WebSocket"), " ", h("span", {className: "mono"}, d.uri)),
      h("div", {id: "sock-top"}, ...socketTop(d).filter(Boolean)),
      d.state === "open" ? sendForm(d) : h("p", {className: "dim", id: "sock-closed"}, "The session is over: nothing more can be sent."),
      h("div", {id: "sock-bottom"}, ...socketBottom(d)));
    if (!fresh) box.scrollTop = top;
  }

  // ---- toolbar: pause, clear, history size, HAR ------------------------------------------------
  function exportHar() {
    const ids = Array.from(state.checked).filter(id => state.entries.has(id));
    const href = "/api/har?" + (ids.length ? "ids=" + ids.join(",") : filterQuery().toString());
    const a = h("a", {href: href, download: "ttf.har", hidden: true});
    document.body.append(a);
    a.click();
    a.remove();
  }
  async function importHar(file) {
    try {
      const r = await fetch("/api/har", {method: "POST", body: file, headers: {"Content-Type": "application/json"}});
      const data = await r.json().catch(() => ({error: "HTTP " + r.status}));
      if (!r.ok) { notice("HAR import refused: " + data.error); return; }
      notice("Imported " + data.imported + " request(s) from " + file.name + ".", "ok");
      await refresh();
    } finally {
      $("import").value = "";
    }
  }

  function wire() {
    for (const id of ["f-path", "f-text"]) {
      $(id).addEventListener("input", () => scheduleRefresh(250));
      for (const kind of ["search", "change"]) $(id).addEventListener(kind, () => scheduleRefresh(0));
    }
    for (const id of ["f-method", "f-status", "f-time", "f-tunnel"]) $(id).addEventListener("change", () => scheduleRefresh(0));
    $("pause").addEventListener("click", () => {
      state.paused = !state.paused;
      if (!state.paused) { state.missed = 0; scheduleRefresh(0); }
      renderPause();
    });
    $("clear").addEventListener("click", async () => {
      const n = state.status ? state.status.history.count : state.entries.size;
      if (!await confirmDialog("Clear all " + n + " captured request(s)? This cannot be undone.", "Clear")) return;
      try { await api("/api/requests", {method: "DELETE"}); } catch (e) { notice(e.message); }
      state.selected = null; state.checked.clear(); showNothing(); await refresh();
    });
    $("limit").addEventListener("change", async () => {
      const wanted = Number($("limit").value);
      const held = state.status ? state.status.history.count : 0;
      if (wanted >= 1 && wanted < held && !await confirmDialog("Keep only the newest " + wanted + " of the " + held +
          " captured requests? The " + (held - wanted) + " oldest are dropped now.", "Drop " + (held - wanted))) {
        $("limit").value = state.status.history.limit;
        return;
      }
      try { await api("/api/settings", {method: "PUT", body: JSON.stringify({history_limit: Number($("limit").value)})}); notice("History size set to " + $("limit").value + ".", "ok"); } catch (e) { notice(e.message); }
      api("/api/status").then(renderStatus, () => {});
    });
    $("view-requests").addEventListener("click", () => setView("requests"));
    $("view-sockets").addEventListener("click", () => setView("sockets"));
    $("export").addEventListener("click", exportHar);
    $("import").addEventListener("change", () => { if ($("import").files.length) importHar($("import").files[0]); });
    $("copy-empty").addEventListener("click", () => copyText($("empty-curl").textContent, "curl command"));
    document.addEventListener("keydown", keys);
  }

  function tick(id) {
    const box = id === null ? null : $("rows").querySelector('tr[data-id="' + id + '"] .pick input');
    if (!box) return;
    box.checked = !box.checked;
    if (box.checked) state.checked.add(id); else state.checked.delete(id);
  }

  function keys(ev) {
    const tag = (ev.target && ev.target.tagName) || "";
    if (ev.ctrlKey || ev.metaKey || ev.altKey || $("confirm").open) return;
    if (["INPUT", "TEXTAREA", "SELECT"].includes(tag)) {
      if (ev.key !== "Escape") return;
      const box = ev.target;
      if ((box.id === "f-path" || box.id === "f-text") && box.value) {
        ev.preventDefault();  // the first Esc clears the filter (in every browser) and lists all again
        box.value = "";
        scheduleRefresh(0);
        return;
      }
      box.blur();
      return;
    }
    const sockets = state.view === "sockets";
    const ids = Array.from($(sockets ? "sockrows" : "rows").children).map(tr => Number(tr.dataset.id));
    const at = ids.indexOf(sockets ? state.sockSelected : state.selected);
    const go = i => { if (ids.length) { ev.preventDefault(); (sockets ? selectSocket : select)(ids[Math.max(0, Math.min(ids.length - 1, i))]); } };
    if (sockets && !["ArrowDown", "ArrowUp", "j", "k", "Home", "End"].includes(ev.key)) return;  // the rest acts on requests
    switch (ev.key) {
      case "ArrowDown": case "j": go(at < 0 ? 0 : at + 1); break;
      case "ArrowUp": case "k": go(at < 0 ? 0 : at - 1); break;
      case "Home": go(0); break;
      case "End": go(ids.length - 1); break;
      case "/": ev.preventDefault(); $("f-text").focus(); break;
      case "p": $("pause").click(); break;
      case "x": tick(state.selected); break;
      case "r": if (state.detail && !state.editing) replay(state.detail, null, 1); break;
      case "e": if (state.detail && !state.editing) { ev.preventDefault(); openEditor(state.detail); } break;
      case "c": if (state.detail && !state.editing) copyCommand(state.detail, "curl", "local"); break;
      case "Escape": if (state.editing && state.detail) select(state.detail.id); break;
      default: return;
    }
  }

  wire();
  renderPause();
  showNothing();
  api("/api/status").then(renderStatus, e => notice("Cannot reach ttf: " + e.message));
  listen();
}());
