// revlens pages: dashboards and the chart builder. Retention, cohorts and setup are in pages.js.
"use strict";

(function () {
  const { api, drawChart, downloadCsv, el, meta } = window.revlensCharts;
  const base = `/p/${encodeURIComponent(meta("project"))}`;
  const json = (method, body) => ({ method, body: JSON.stringify(body), headers: { "Content-Type": "application/json" } });
  const slug = (text) => (text.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "") || "chart").slice(0, 30);

  async function listBoards() {
    return (await api(`${base}/boards`)).dashboards;
  }

  // ---- dashboards --------------------------------------------------------------------------
  async function dashboardPage() {
    const grid = document.getElementById("board");
    const message = document.getElementById("board-message");
    const select = document.getElementById("board-select");
    let board;

    async function saveCharts(charts, name) {
      board = await api(`${base}/boards/${board.id}`, {}, json("PUT", { name: name || board.name, charts }));
      show(board);
    }

    function card(item) {
      const chart = item.chart;
      const node = el("article", { class: "chart-card", "data-chart": chart.id, "data-state": "loading" });
      const header = el("header");
      header.appendChild(el("h2", {}, chart.title));
      const actions = el("div", { class: "actions" });
      const edit = el("a", { class: "button small", href: `${base}/chart?board=${board.id}&chart=${encodeURIComponent(chart.id)}` }, "Edit");
      const rename = el("button", { class: "small", type: "button" }, "Rename");
      const remove = el("button", { class: "small", type: "button" }, "Remove");
      const csv = el("button", { class: "small", type: "button" }, "CSV");
      rename.addEventListener("click", async () => {
        const title = window.prompt("New name for this chart:", chart.title);
        if (!title || !title.trim()) return;
        const charts = board.charts.map((c) => (c.id === chart.id ? Object.assign({}, c, { title: title.trim() }) : c));
        await saveCharts(charts).catch((err) => (message.textContent = `Could not rename: ${err.message}`));
      });
      remove.addEventListener("click", async () => {
        if (!window.confirm(`Remove "${chart.title}" from this dashboard?`)) return;
        await saveCharts(board.charts.filter((c) => c.id !== chart.id)).catch((err) => (message.textContent = `Could not remove: ${err.message}`));
      });
      csv.addEventListener("click", () => downloadCsv(`${slug(chart.title)}.csv`, node.rows || []));
      [edit, rename, remove, csv].forEach((b) => actions.appendChild(b));
      header.appendChild(actions);
      node.appendChild(header);
      node.appendChild(el("div", { class: "chart-body" }));
      return node;
    }

    function show(found) {
      board = found;
      document.getElementById("board-name").textContent = board.name;
      document.getElementById("add-chart").href = `${base}/chart?board=${board.id}`;
      select.value = String(board.id);
      grid.replaceChildren();
      if (!board.items.length) {
        message.textContent = "This dashboard has no charts yet: use \u201cAdd chart\u201d to build one.";
        grid.dataset.ready = "true";
        return;
      }
      message.textContent = "";
      const cards = board.items.map((item) => {
        const node = card(item);
        grid.appendChild(node);
        return [node, item];
      });
      Promise.all(cards.map(([node, item]) => drawChart(node, item))).then(() => {
        grid.dataset.ready = "true";
        window.revlensPaintedAt = performance.now();
      });
    }

    async function open(id) {
      grid.dataset.ready = "false";
      message.textContent = "Loading the dashboard…";
      show(await api(`${base}/boards/${id}`));
    }

    try {
      const boards = await listBoards();
      select.replaceChildren(...boards.map((b) => el("option", { value: String(b.id) }, b.name)));
      const wanted = grid.dataset.board && boards.some((b) => String(b.id) === grid.dataset.board) ? grid.dataset.board : boards[0].id;
      await open(wanted);
    } catch (err) {
      message.textContent = `The dashboard could not be loaded: ${err.message}`;
      message.classList.add("error");
      return;
    }
    select.addEventListener("change", () => open(select.value));
    document.getElementById("rename-board").addEventListener("click", async () => {
      const name = window.prompt("New name for this dashboard:", board.name);
      if (name && name.trim()) await saveCharts(board.charts, name.trim());
      select.querySelector(`option[value="${board.id}"]`).textContent = board.name;
    });
    document.getElementById("new-board").addEventListener("click", async () => {
      const name = window.prompt("Name of the new dashboard:", "My dashboard");
      if (!name || !name.trim()) return;
      const made = await api(`${base}/boards`, {}, json("POST", { name: name.trim(), charts: [] }));
      window.location.href = `${base}?board=${made.id}`;
    });
  }

  // ---- chart builder -----------------------------------------------------------------------
  async function builderPage() {
    const root = document.querySelector(".builder");
    const form = document.getElementById("chart-form");
    const preview = document.getElementById("preview");
    preview.appendChild(el("div", { class: "chart-body" }));
    const params = new URLSearchParams(window.location.search);
    let editing = null;
    let timer = null;
    let read = () => readForm();

    function addFilter(f) {
      const row = el("div", { class: "filter" });
      row.innerHTML = '<input name="fprop" list="props" placeholder="property"><select name="fop"><option>is</option><option>is not</option><option>contains</option><option>greater</option><option>less</option></select><input name="fvalue" placeholder="value(s), comma separated"><button type="button" class="small">×</button>';
      if (f) {
        row.querySelector("[name=fprop]").value = f.prop;
        row.querySelector("[name=fop]").value = f.op;
        row.querySelector("[name=fvalue]").value = (f.values || []).join(", ");
      }
      row.querySelector("button").addEventListener("click", () => { row.remove(); schedule(); });
      document.getElementById("filters").appendChild(row);
    }

    function readForm() {
      const v = (name) => form.elements[name].value;
      const chart = { id: (editing && editing.id) || `${slug(v("title"))}-${Date.now().toString(36)}`, title: v("title").trim() || "Chart", kind: "segmentation", event: v("event"), measure: v("measure"), interval: Number(v("interval")), view: v("view"), collapse: form.elements.collapse.checked };
      if (["sums", "value_avg"].includes(chart.measure)) chart.property = v("property").trim() || "$revenue";
      if (chart.measure === "frequency") chart.buckets = v("buckets").split(",").map((s) => parseInt(s, 10)).filter((n) => !Number.isNaN(n));
      if (v("group_by").trim()) chart.group_by = v("group_by").trim();
      if (v("cohort_id")) chart.cohort_id = Number(v("cohort_id"));
      if (v("days") === "0" && v("start") && v("end")) { chart.start = v("start"); chart.end = v("end"); } else chart.days = Number(v("days")) || 180;
      chart.filters = [...document.querySelectorAll("#filters .filter")].map((row) => ({
        prop: row.querySelector("[name=fprop]").value.trim(), op: row.querySelector("[name=fop]").value,
        values: row.querySelector("[name=fvalue]").value.split(",").map((s) => s.trim()).filter(Boolean),
      })).filter((f) => f.prop);
      if (editing && editing.unit) chart.unit = editing.unit;
      return chart;
    }

    function fill(chart) {
      const set = (name, value) => { if (value !== undefined && value !== null) form.elements[name].value = String(value); };
      set("title", chart.title); set("measure", chart.measure); set("property", chart.property); set("group_by", chart.group_by);
      set("interval", chart.interval); set("view", chart.view); set("cohort_id", chart.cohort_id);
      if ([...form.elements.event.options].every((o) => o.value !== chart.event)) form.elements.event.appendChild(el("option", {}, chart.event));
      set("event", chart.event);
      if (chart.buckets) set("buckets", chart.buckets.join(", "));
      if (chart.start) { set("days", "0"); set("start", chart.start); set("end", chart.end); } else set("days", [30, 90, 180, 365].includes(chart.days) ? chart.days : 180);
      form.elements.collapse.checked = Boolean(chart.collapse);
      (chart.filters || []).forEach(addFilter);
    }

    function toggle() {
      const m = form.elements.measure.value;
      form.querySelector('[data-for="property"]').hidden = !["sums", "value_avg"].includes(m);
      form.querySelector('[data-for="buckets"]').hidden = m !== "frequency";
      form.querySelector('[data-for="dates"]').hidden = form.elements.days.value !== "0";
    }

    async function refresh() {
      toggle();
      const chart = read();
      document.getElementById("definition").textContent = JSON.stringify(chart, null, 2);
      try {
        const item = await api(`${base}/preview`, {}, json("POST", { chart }));
        await drawChart(preview, item);
      } catch (err) {
        window.revlensCharts.setState(preview, preview.querySelector(".chart-body"), "error", `This chart is not valid yet: ${err.message}`);
      }
    }

    function schedule() { clearTimeout(timer); timer = setTimeout(refresh, 250); }

    const boards = await listBoards().catch(() => []);
    const target = document.getElementById("target-board");
    target.replaceChildren(...boards.map((b) => el("option", { value: String(b.id) }, b.name)));
    if (root.dataset.board) target.value = root.dataset.board;
    const cohorts = await api("/api/cohorts").catch(() => ({ cohorts: [] }));
    cohorts.cohorts.forEach((c) => form.elements.cohort_id.appendChild(el("option", { value: String(c.id) }, c.name)));
    if (params.get("cohort")) form.elements.cohort_id.value = params.get("cohort");
    if (root.dataset.board && root.dataset.chart) {
      const board = await api(`${base}/boards/${root.dataset.board}`);
      editing = board.charts.find((c) => c.id === root.dataset.chart) || null;
      if (editing) document.getElementById("builder-title").textContent = `Edit chart: ${editing.title}`;
      if (editing && editing.kind === "segmentation") fill(editing);
    }
    if (editing && editing.kind !== "segmentation") {
      // Retention and cohort charts keep their query; the builder edits title, range and view.
      form.elements.title.value = editing.title;
      form.elements.view.value = editing.view || "line";
      read = () => Object.assign({}, editing, { title: form.elements.title.value.trim() || editing.title, view: form.elements.view.value });
    }
    document.getElementById("add-filter").addEventListener("click", () => addFilter());
    form.addEventListener("input", schedule);
    form.addEventListener("change", schedule);
    document.getElementById("download-csv").addEventListener("click", () => downloadCsv(`${slug(form.elements.title.value)}.csv`, preview.rows || []));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const chart = read();
      const boardId = target.value;
      try {
        const board = await api(`${base}/boards/${boardId}`);
        const exists = board.charts.some((c) => c.id === chart.id);
        const charts = exists ? board.charts.map((c) => (c.id === chart.id ? chart : c)) : board.charts.concat([chart]);
        await api(`${base}/boards/${boardId}`, {}, json("PUT", { charts }));
        window.location.href = `${base}?board=${boardId}`;
      } catch (err) {
        window.revlensCharts.setState(preview, preview.querySelector(".chart-body"), "error", `The chart was not saved: ${err.message}`);
      }
    });
    refresh();
  }

  const pages = { dashboard: dashboardPage, builder: builderPage };
  document.addEventListener("DOMContentLoaded", () => {
    const run = pages[document.body.dataset.page];
    if (run) run();
  });
})();
