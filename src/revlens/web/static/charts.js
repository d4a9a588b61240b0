// revlens charts: call the query API, turn answers into rows, draw them with Vega-Lite.
// `rows()` mirrors revlens/web/charts.py `rows()`; the browser test checks they agree.
// Wrapped in a function: the Vega bundle declares top-level names of its own.
(function () {
  "use strict";
  const MEASURE_LABELS = {
    uniques: "Unique users", totals: "Event totals", average: "Average per user",
    sums: "Sum of property", value_avg: "Average of property", frequency: "Users by number of events",
  };
  const PROPERTY_MEASURES = ["sums", "value_avg"];
  const INTERVAL_NAMES = { 1: "Day", 7: "Week", 30: "Month" };

  function meta(name) {
    const el = document.querySelector(`meta[name="${name}"]`);
    return el ? el.content : "";
  }

  class ApiError extends Error {}

  async function api(path, params, options) {
    const query = new URLSearchParams(params || {});
    query.set("project", meta("project"));
    const init = Object.assign({ credentials: "same-origin", headers: {} }, options || {});
    init.headers = Object.assign({ "X-CSRF-Token": meta("csrf-token"), Accept: "application/json" }, init.headers);
    let response;
    try {
      response = await fetch(`${path}?${query}`, init);
    } catch (err) {
      throw new ApiError("revlens did not answer: is the server still running?");
    }
    if (response.status === 401) {
      window.location.reload(); // the session ended: show the sign-in form
      throw new ApiError("Your session has ended: sign in again.");
    }
    const body = await response.json().catch(() => null);
    if (!response.ok) {
      throw new ApiError((body && typeof body.error === "string" && body.error) || `HTTP ${response.status}`);
    }
    return body;
  }

  function num(value) {
    if (value !== null && typeof value === "object") value = value.value;
    return value === null || value === undefined ? 0 : Number(value);
  }

  function seriesLabel(raw, fallback) {
    return Array.isArray(raw) && raw.length > 1 ? String(raw[raw.length - 1]) : fallback;
  }

  function segmentationRows(chart, data, name) {
    const labels = data.seriesLabels || [];
    const out = [];
    const xs = data.xValues || [];
    if (chart.measure === "frequency" || !chart.collapse) {
      (data.series || []).forEach((values, i) => {
        const series = seriesLabel(i < labels.length ? labels[i] : 0, name);
        values.slice(0, xs.length).forEach((value, order) => out.push({ x: xs[order], order, series, value: num(value) }));
      });
      return out;
    }
    (data.seriesCollapsed || []).forEach((collapsed, i) => {
      const series = seriesLabel(i < labels.length ? labels[i] : 0, name);
      out.push({ x: series, order: i, series, value: num(collapsed.length ? collapsed[0] : 0) });
    });
    return out;
  }

  function retentionLabel(chart, index) {
    if (chart.mode === "bracket") {
      const brackets = chart.brackets || [[0, 1], [1, 4], [4, 8]];
      if (index < brackets.length) {
        const [low, high] = brackets[index];
        return high - low === 1 ? `Day ${low}` : `Day ${low}-${high - 1}`;
      }
    }
    return `${INTERVAL_NAMES[chart.interval || 7] || "Day"} ${index}`;
  }

  function rows(chart, answers) {
    if (chart.kind === "retention") {
      const series = ((answers[0].series || [])[0]) || {};
      return (series.combined || []).slice(1).map((cell, i) => ({
        x: retentionLabel(chart, i), order: i, series: "Retained %",
        value: cell.outof ? (100.0 * (cell.count || 0)) / cell.outof : 0.0,
      }));
    }
    if (chart.kind === "cohort") {
      return segmentationRows(Object.assign({}, chart, { measure: "uniques" }), answers[1], "Active members");
    }
    const name = PROPERTY_MEASURES.includes(chart.measure) ? chart.title : MEASURE_LABELS[chart.measure || "totals"];
    return segmentationRows(chart, answers[0], name);
  }

  function toCsv(rowsList) {
    const cell = (v) => (/[",\n]/.test(String(v)) ? `"${String(v).replace(/"/g, '""')}"` : String(v));
    const lines = ["x,series,value"].concat(rowsList.map((r) => [r.x, r.series, r.value].map(cell).join(",")));
    return lines.join("\n") + "\n";
  }

  function downloadCsv(filename, rowsList) {
    const blob = new Blob([toCsv(rowsList)], { type: "text/csv" });
    const link = document.createElement("a");
    link.href = URL.createObjectURL(blob);
    link.download = filename;
    document.body.appendChild(link);
    link.click();
    link.remove();
  }

  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => node.setAttribute(k, v));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function formatValue(v) {
    return Number.isInteger(v) ? v.toLocaleString() : v.toLocaleString(undefined, { maximumFractionDigits: 4 });
  }

  function renderTable(body, rowsList) {
    const table = el("table", { class: "data" });
    const head = table.createTHead().insertRow();
    ["", "Series", "Value"].forEach((t) => head.appendChild(el("th", {}, t)));
    const tbody = table.createTBody();
    rowsList.forEach((r) => {
      const tr = tbody.insertRow();
      [r.x, r.series, formatValue(r.value)].forEach((t) => tr.appendChild(el("td", {}, String(t))));
    });
    const wrap = el("div", { class: "table-wrap" });
    wrap.appendChild(table);
    body.appendChild(wrap);
  }

  function setState(card, body, state, message) {
    card.dataset.state = state;
    body.replaceChildren();
    if (message) body.appendChild(el("p", { class: `state ${state}` }, message));
  }

  // Fetch a chart's answers and draw it into `card` (an element holding a `.chart-body`).
  // Resolves to the rows drawn; the card's data-state says loading, ready, empty or error.
  async function drawChart(card, item) {
    const body = card.querySelector(".chart-body");
    const chart = item.chart;
    setState(card, body, "loading", "Loading…");
    let answers;
    try {
      answers = await Promise.all(item.requests.map((r) => api(r.path, r.params)));
    } catch (err) {
      setState(card, body, "error", `This chart could not be loaded: ${err.message}`);
      return [];
    }
    const data = answers.map((a) => (a && a.data !== undefined ? a.data : a));
    const drawn = rows(chart, data);
    card.rows = drawn;
    card.answers = data;
    const total = drawn.reduce((sum, r) => sum + Math.abs(r.value), 0);
    if (chart.kind !== "cohort" && (!drawn.length || total === 0)) {
      setState(card, body, "empty", "No matching events in this date range yet. Charts fill in as soon as Stripe sends events; try a longer range or another event.");
      return drawn;
    }
    body.replaceChildren();
    if (chart.kind === "cohort") {
      const size = data[0].size;
      body.appendChild(el("p", { class: "big-number", "data-size": String(size) }, size === null ? "—" : `${Number(size).toLocaleString()} users`));
      body.appendChild(el("p", { class: "muted" }, "Members active each week:"));
    }
    if (chart.view === "table") {
      renderTable(body, drawn);
    } else {
      const target = el("div", { class: "vis" });
      body.appendChild(target);
      const spec = Object.assign({}, item.spec, { datasets: { rows: drawn } });
      try {
        await window.vegaEmbed(target, spec, { actions: false, renderer: "svg" });
      } catch (err) {
        setState(card, body, "error", `This chart could not be drawn: ${err.message}`);
        return drawn;
      }
    }
    card.dataset.state = "ready";
    return drawn;
  }

  window.revlensCharts = { api, rows, drawChart, downloadCsv, toCsv, el, setState, retentionLabel, ApiError, meta };
})();
