// Renders /api/openapi.json: no framework, no CDN. Every string from the document is inserted as
// text (textContent), never as HTML.
"use strict";
(function () {
  const el = (tag, attrs, ...children) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return e;
  };
  let spec;
  const resolve = (s) => {
    if (s && s.$ref) return spec.components.schemas[s.$ref.split("/").pop()] || {};
    return s || {};
  };
  // A compact JSON-ish sketch of a schema, two levels deep.
  const sketch = (s, depth) => {
    const ref = s && s.$ref ? s.$ref.split("/").pop() : null;
    s = resolve(s);
    if (depth > 3) return ref || s.type || "…";
    if (s.oneOf || s.anyOf) return (s.oneOf || s.anyOf).map((x) => sketch(x, depth + 1)).join(" | ");
    if (s.allOf) return s.allOf.map((x) => sketch(x, depth)).join(" & ");
    const t = Array.isArray(s.type) ? s.type.filter((x) => x !== "null").join("|") + (s.type.includes("null") ? "?" : "") : s.type;
    if (t && t.startsWith("array")) return "[" + sketch(s.items, depth + 1) + "]";
    if (s.properties) {
      const pad = "  ".repeat(depth + 1);
      const req = new Set(s.required || []);
      const lines = Object.entries(s.properties).map(([k, v]) => pad + k + (req.has(k) ? "" : "?") + ": " + sketch(v, depth + 1));
      return "{\n" + lines.join(",\n") + "\n" + "  ".repeat(depth) + "}";
    }
    if (s.enum) return s.enum.map((x) => JSON.stringify(x)).join(" | ");
    return (t || ref || "any") + (s.format ? " (" + s.format + ")" : "");
  };
  const roles = (op) => {
    if (!op.security) return "";
    const names = new Set();
    let pub = false;
    for (const req of op.security) {
      const keys = Object.keys(req);
      if (keys.length === 0) pub = true;
      for (const k of keys) for (const r of req[k]) names.add(r);
    }
    if (pub) return "public";
    return names.size ? "needs " + [...names].join(", ") : "authenticated";
  };
  const render = (filter) => {
    const main = document.getElementById("doc");
    main.replaceChildren();
    const byTag = new Map();
    for (const [path, item] of Object.entries(spec.paths || {})) {
      for (const [method, op] of Object.entries(item)) {
        if (!["get", "post", "put", "patch", "delete"].includes(method)) continue;
        const text = (method + " " + path + " " + (op.summary || "")).toLowerCase();
        if (filter && !text.includes(filter.toLowerCase())) continue;
        const tag = (op.tags && op.tags[0]) || "other";
        if (!byTag.has(tag)) byTag.set(tag, []);
        byTag.get(tag).push([method, path, op]);
      }
    }
    for (const [tag, ops] of byTag) {
      main.append(el("h2", {}, tag));
      for (const [method, path, op] of ops) {
        const body = el("div", {});
        if (op.description) body.append(el("p", {}, op.description));
        const params = op.parameters || [];
        if (params.length) {
          const t = el("table", {}, el("tr", {}, el("th", {}, "parameter"), el("th", {}, "in"), el("th", {}, "schema"), el("th", {}, "")));
          for (const p of params) t.append(el("tr", {}, el("td", {}, el("code", {}, p.name + (p.required ? "" : "?"))), el("td", {}, p.in), el("td", {}, el("code", {}, sketch(p.schema, 0))), el("td", {}, p.description || "")));
          body.append(t);
        }
        const rb = op.requestBody && op.requestBody.content;
        if (rb) for (const [ct, media] of Object.entries(rb)) body.append(el("p", {}, "Request body (" + ct + "):"), el("pre", {}, sketch(media.schema, 0)));
        for (const [code, resp] of Object.entries(op.responses || {})) {
          body.append(el("p", {}, el("strong", {}, code), " " + (resp.description || "")));
          for (const media of Object.values(resp.content || {})) if (media.schema) body.append(el("pre", {}, sketch(media.schema, 0)));
        }
        main.append(el("details", {}, el("summary", {}, el("span", { class: "m " + method }, method.toUpperCase()), " ", el("code", {}, path), " ", op.summary || "", el("span", { class: "role" }, roles(op))), body));
      }
    }
  };
  fetch("/api/openapi.json")
    .then((r) => r.json())
    .then((s) => {
      spec = s;
      document.getElementById("title").textContent = s.info.title + " " + s.info.version;
      const main = document.getElementById("doc");
      render("");
      if (s.info.description) main.prepend(el("p", {}, s.info.description));
      document.getElementById("filter").addEventListener("input", (e) => render(e.target.value));
    })
    .catch((e) => { document.getElementById("doc").textContent = "Could not load the API document: " + e; });
})();
