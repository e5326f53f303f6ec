/* graph.js: a model's upgrade paths as an SVG picture: versions as nodes,
 * deltas (packages) as edges labelled with their size; the hops of one
 * path highlighted. Every label is set as text (textContent), never as
 * markup: versions come from uploads and devices. */
'use strict';
(function () {
  const NS = 'http://www.w3.org/2000/svg';
  const COL = 230, ROW = 64, W = 170, H = 30, PAD = 20, TOP = 56;

  function svgEl(tag, attrs, text) {
    const e = document.createElementNS(NS, tag);
    for (const k in attrs) e.setAttribute(k, String(attrs[k]));
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function size(n) {
    if (n >= 1048576) return (n / 1048576).toFixed(1) + ' MiB';
    if (n >= 1024) return (n / 1024).toFixed(1) + ' KiB';
    return n + ' B';
  }

  /* Columns by the longest chain of deltas leading to a version (cycles,
   * which uploads allow, are cut where they close). */
  function layout(packages) {
    const nodes = new Map();
    const node = (v) => {
      if (!nodes.has(v)) nodes.set(v, { v: v, col: 0, row: 0, out: [], inc: 0 });
      return nodes.get(v);
    };
    for (const p of packages) {
      node(p.from).out.push(p);
      node(p.to).inc++;
    }
    const state = new Map();
    const visit = (n, depth) => {
      if (state.get(n.v) === 1 || depth > 64) return; /* on the stack: a cycle */
      if (n.col >= depth && state.get(n.v) === 2) return;
      n.col = Math.max(n.col, depth);
      state.set(n.v, 1);
      for (const p of n.out) visit(nodes.get(p.to), depth + 1);
      state.set(n.v, 2);
    };
    const roots = [...nodes.values()].filter((n) => n.inc === 0);
    for (const n of roots.length ? roots : [...nodes.values()]) visit(n, 0);
    for (const n of nodes.values()) if (!state.has(n.v)) visit(n, 0);
    const rows = [];
    for (const n of [...nodes.values()].sort((a, b) => (a.v < b.v ? -1 : a.v > b.v ? 1 : 0))) {
      rows[n.col] = rows[n.col] || 0;
      n.row = rows[n.col]++;
    }
    return { nodes: nodes, cols: rows.length, rows: Math.max(1, ...rows) };
  }

  /* highlight: {packages: Set of package ids, versions: Set of versions} */
  function draw(packages, highlight) {
    const hl = highlight || { packages: new Set(), versions: new Set() };
    const g = layout(packages);
    const width = PAD * 2 + Math.max(1, g.cols) * COL - (COL - W);
    const height = TOP + PAD + g.rows * ROW - (ROW - H);
    const svg = svgEl('svg', { class: 'paths', viewBox: '0 0 ' + width + ' ' + height,
      role: 'img', 'aria-label': 'upgrade paths' });
    const defs = svgEl('defs', {});
    for (const id of ['arrow', 'arrow-on']) {
      const m = svgEl('marker', { id: id, viewBox: '0 0 10 10', refX: 9, refY: 5,
        markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' });
      m.appendChild(svgEl('path', { d: 'M0,0 L10,5 L0,10 z', class: id }));
      defs.appendChild(m);
    }
    svg.appendChild(defs);
    const pos = (n) => ({ x: PAD + n.col * COL, y: TOP + n.row * ROW });
    for (const p of packages) {
      const a = pos(g.nodes.get(p.from)), b = pos(g.nodes.get(p.to));
      const on = hl.packages.has(p.id);
      const x1 = a.x + W, y1 = a.y + H / 2, x2 = b.x, y2 = b.y + H / 2;
      const span = g.nodes.get(p.to).col - g.nodes.get(p.from).col;
      let d, lx = (x1 + x2) / 2, ly = (y1 + y2) / 2 - 5;
      if (span > 1) { /* over the columns between: an arc above them */
        const top = Math.max(8, Math.min(a.y, b.y) - 16 - 8 * Math.min(span, 4));
        d = 'M' + (a.x + W / 2) + ',' + a.y + ' C' + (a.x + W / 2) + ',' + top + ' ' + (b.x + W / 2) + ',' + top +
          ' ' + (b.x + W / 2) + ',' + b.y;
        lx = (a.x + b.x + W) / 2;
        ly = top + 14;
      } else if (x2 > x1) {
        const mx = (x1 + x2) / 2;
        d = 'M' + x1 + ',' + y1 + ' C' + mx + ',' + y1 + ' ' + mx + ',' + y2 + ' ' + x2 + ',' + y2;
      } else { /* backwards or same column: loop below */
        const low = Math.max(a.y, b.y) + H + ROW / 3;
        d = 'M' + (a.x + W / 2) + ',' + (a.y + H) + ' C' + (a.x + W / 2) + ',' + low + ' ' +
          (b.x + W / 2) + ',' + low + ' ' + (b.x + W / 2) + ',' + (b.y + H);
      }
      const e = svgEl('g', { class: on ? 'edge on' : 'edge', 'data-package': p.id });
      e.appendChild(svgEl('path', { d: d, 'marker-end': on ? 'url(#arrow-on)' : 'url(#arrow)' }));
      e.appendChild(svgEl('text', { x: lx, y: ly, 'text-anchor': 'middle' },
        size(p.size)));
      e.appendChild(svgEl('title', {}, p.from + ' → ' + p.to + ': ' + p.size + ' bytes (' + p.id + ')'));
      svg.appendChild(e);
    }
    for (const n of g.nodes.values()) {
      const at = pos(n);
      const e = svgEl('g', { class: hl.versions.has(n.v) ? 'node on' : 'node',
        transform: 'translate(' + at.x + ',' + at.y + ')' });
      e.appendChild(svgEl('rect', { width: W, height: H, rx: 5 }));
      const label = n.v.length > 22 ? n.v.slice(0, 21) + '…' : n.v;
      e.appendChild(svgEl('text', { x: W / 2, y: H / 2 + 4, 'text-anchor': 'middle' }, label));
      e.appendChild(svgEl('title', {}, n.v));
      svg.appendChild(e);
    }
    return svg;
  }

  window.PathGraph = { draw: draw, size: size };
})();
