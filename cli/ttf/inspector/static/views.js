// ttf inspector: DOM helpers and body views. Network data only ever becomes text nodes
// (textContent / createTextNode); nothing here parses a string as markup.
"use strict";

const TTF = {};

// Control characters (C0 but tab/newline/CR, DEL, C1) and the format characters that reorder
// or hide text (bidi embeddings/overrides/isolates, LRM/RLM, line/paragraph separators) are
// shown as \uNNNN: a captured path cannot make what you read differ from what was sent.
TTF.CONTROLS = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;
TTF.visible = function visible(text) {
  return String(text).replace(TTF.CONTROLS, ch => "\\u" + ch.charCodeAt(0).toString(16).padStart(4, "0"));
};

// h("div", {className: "x"}, "text", child) -> element; strings become text nodes (controls made visible).
TTF.h = function h(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "textContent" || key === "title") {
      node[key] = TTF.visible(value);
    } else if (key === "className" || key === "value" || key === "type" ||
        key === "disabled" || key === "checked" || key === "open" || key === "hidden" || key === "tabIndex") {
      node[key] = value;
    } else if (key === "dataset") {
      for (const [k, v] of Object.entries(value)) node.dataset[k] = String(v);
    } else if (key === "onclick" || key === "oninput" || key === "onchange" || key === "onkeydown") {
      node.addEventListener(key.slice(2), value);
    } else {
      node.setAttribute(key, String(value));
    }
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(typeof child === "string" || typeof child === "number" ? document.createTextNode(TTF.visible(child)) : child);
  }
  return node;
};
const h = TTF.h;

TTF.bytes = function bytes(b64) {
  const text = atob(b64 || "");
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i);
  return out;
};

TTF.base64 = function base64(bytes) {
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  return btoa(text);
};

TTF.utf8 = function utf8(bytes) {
  try { return new TextDecoder("utf-8", {fatal: true}).decode(bytes); } catch (e) { return null; }
};

TTF.humanBytes = function humanBytes(n) {
  if (n < 1024) return n + " B";
  if (n < 1024 * 1024) return (n / 1024).toFixed(1) + " KB";
  return (n / 1024 / 1024).toFixed(1) + " MB";
};

// ---- hex dump ------------------------------------------------------------------------
TTF.HEX_MAX = 16 * 1024;
TTF.hexDump = function hexDump(bytes) {
  const lines = [];
  const shown = Math.min(bytes.length, TTF.HEX_MAX);
  for (let off = 0; off < shown; off += 16) {
    const row = bytes.subarray(off, Math.min(off + 16, shown));
    let hex = "", ascii = "";
    for (let i = 0; i < 16; i++) {
      hex += i < row.length ? row[i].toString(16).padStart(2, "0") + " " : "   ";
      if (i === 7) hex += " ";
      if (i < row.length) ascii += row[i] >= 0x20 && row[i] < 0x7f ? String.fromCharCode(row[i]) : ".";
    }
    lines.push(off.toString(16).padStart(8, "0") + "  " + hex + " |" + ascii + "|");
  }
  if (bytes.length > shown) lines.push("… first " + shown + " of " + bytes.length + " bytes shown");
  return h("pre", {className: "hex"}, lines.join("\n"));
};

// ---- JSON: collapsible and searchable ---------------------------------------------------
TTF.JSON_NODES_MAX = 5000;
TTF.jsonTree = function jsonTree(value) {
  let budget = TTF.JSON_NODES_MAX;
  function node(key, v, depth) {
    budget--;
    const label = key === null ? [] : [h("span", {className: "jkey"}, JSON.stringify(key)), ": "];
    if (v !== null && typeof v === "object") {
      const isArray = Array.isArray(v);
      const keys = Object.keys(v);
      const summary = h("summary", {}, ...label,
        h("span", {className: "jmeta"}, isArray ? "[" + keys.length + " items]" : "{" + keys.length + " keys}"));
      const box = h("details", {className: "jnode", open: depth < 2}, summary);
      for (const k of keys) {
        if (budget <= 0) { box.append(h("div", {className: "jmore"}, "… more not shown (see Raw)")); break; }
        box.append(node(isArray ? null : k, v[k], depth + 1));
      }
      return box;
    }
    const kind = v === null ? "jnull" : "j" + typeof v;
    return h("div", {className: "jleaf"}, ...label, h("span", {className: kind}, JSON.stringify(v)));
  }
  return node(null, value, 0);
};

TTF.jsonView = function jsonView(text) {
  let value;
  try { value = JSON.parse(text); } catch (e) { return null; }
  const tree = h("div", {className: "jtree"}, TTF.jsonTree(value));
  const count = h("span", {className: "dim", "aria-live": "polite"});
  const search = h("input", {type: "search", className: "jsearch", placeholder: "search in JSON", "aria-label": "Search in JSON"});
  search.addEventListener("input", () => {
    const term = search.value.toLowerCase();
    let hits = 0;
    for (const el of tree.querySelectorAll(".hit")) el.classList.remove("hit");
    if (term) {
      for (const el of tree.querySelectorAll(".jleaf, summary")) {
        const own = el.tagName === "SUMMARY" ? el.firstChild && el.firstChild.textContent : el.textContent;
        if (own && own.toLowerCase().includes(term)) {
          el.classList.add("hit");
          hits++;
          for (let p = el.parentElement; p && p !== tree; p = p.parentElement) if (p.tagName === "DETAILS") p.open = true;
        }
      }
    }
    count.textContent = term ? hits + " match" + (hits === 1 ? "" : "es") : "";
  });
  const expand = h("button", {type: "button", onclick: () => tree.querySelectorAll("details").forEach(d => { d.open = true; })}, "Expand all");
  const collapse = h("button", {type: "button", onclick: () => tree.querySelectorAll("details").forEach(d => { d.open = false; })}, "Collapse all");
  return h("div", {className: "json"}, h("div", {className: "tools"}, search, expand, collapse, count), tree);
};

// ---- a body, laid out as the server says --------------------------------------------------
TTF.table = function table(headings, rows) {
  return h("table", {className: "kv"},
    h("thead", {}, h("tr", {}, ...headings.map(t => h("th", {scope: "col"}, t)))),
    h("tbody", {}, ...rows.map(r => h("tr", {}, ...r.map(c => h("td", {}, c === null || c === undefined ? "" : String(c)))))));
};

TTF.objectUrls = [];
TTF.bodyView = function bodyView(b64, size, truncated, view, headers) {
  const raw = TTF.bytes(b64);
  const box = h("div", {className: "body"});
  const notes = h("div", {className: "notes"});
  box.append(notes);
  if (truncated) notes.append(h("p", {className: "warn"}, "Truncated capture: " + raw.length + " of " + size + " bytes kept (the forwarded body was not cut)."));
  let shown = raw;
  const decoded = view && view.decoded;
  if (decoded && decoded.body !== undefined) {
    shown = TTF.bytes(decoded.body);
    notes.append(h("p", {className: "info"}, "Decoded for display (" + decoded.encoding + "): " + shown.length + " bytes from " + raw.length + " captured. The bytes forwarded were not changed."));
  } else if (decoded && decoded.error) {
    notes.append(h("p", {className: "warn"}, "Content-Encoding " + decoded.encoding + ": " + decoded.error + "."));
  }
  const layout = (view && view.layout) || {kind: raw.length ? "binary" : "empty"};
  if (!size) { box.append(h("p", {className: "dim"}, "(empty)")); return box; }
  const text = TTF.utf8(shown);
  const panes = {};
  if (layout.kind === "json" && text !== null) panes.JSON = () => TTF.jsonView(text) || h("pre", {}, text);
  if (layout.kind === "form") {
    panes.Form = () => h("div", {}, TTF.table(["name", "value"], layout.fields),
      layout.more ? h("p", {className: "dim"}, "… " + layout.more + " more fields") : null);
  }
  if (layout.kind === "multipart") {
    panes.Parts = () => TTF.table(["name", "filename", "content-type", "size", "content"], layout.parts.map(p => [
      p.name, p.filename, (p.headers.find(x => x[0].toLowerCase() === "content-type") || [null, ""])[1],
      TTF.humanBytes(p.size), p.text === null ? "(binary)" : p.text + (p.more ? " …" : "")]));
  }
  if (layout.kind === "image") {
    panes.Image = () => {
      const url = URL.createObjectURL(new Blob([shown], {type: layout.media_type}));
      TTF.objectUrls.push(url);
      const img = h("img", {className: "preview", alt: "image body (" + layout.media_type + ", " + shown.length + " bytes)"});
      img.src = url;
      return img;
    };
  }
  if (text !== null) panes.Text = () => h("pre", {className: "text"}, text);
  panes.Hex = () => TTF.hexDump(shown);
  const names = Object.keys(panes);
  const holder = h("div", {className: "pane"});
  const tabs = h("div", {className: "tabs", role: "tablist"});
  function pick(name) {
    for (const b of tabs.children) b.setAttribute("aria-selected", String(b.textContent === name));
    holder.replaceChildren(panes[name]());
  }
  for (const name of names) tabs.append(h("button", {type: "button", role: "tab", onclick: () => pick(name)}, name));
  box.append(tabs, holder);
  pick(names[0]);
  return box;
};

TTF.releaseObjectUrls = function releaseObjectUrls() {
  for (const url of TTF.objectUrls) URL.revokeObjectURL(url);
  TTF.objectUrls = [];
};

TTF.headerTable = function headerTable(headers) {
  const rows = [];
  for (const [name, values] of Object.entries(headers || {})) for (const v of values) rows.push([name, v]);
  if (!rows.length) return h("p", {className: "dim"}, "(none)");
  return TTF.table(["name", "value"], rows);
};
