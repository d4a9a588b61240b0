// revlens pages: retention (heat table and curve), cohorts (builder, sizes, members), setup (live status).
"use strict";

(function () {
  const { api, drawChart, el, meta } = window.revlensCharts;
  const base = `/p/${encodeURIComponent(meta("project"))}`;
  const json = (method, body) => ({ method, body: JSON.stringify(body), headers: { "Content-Type": "application/json" } });

  // Heat colour of a retention cell: white at 0 %, the accent blue at 100 %.
  function heat(pct) {
    const t = Math.max(0, Math.min(1, pct / 100));
    const mix = (a, b) => Math.round(a + (b - a) * t);
    return { bg: `rgb(${mix(255, 37)}, ${mix(255, 99)}, ${mix(255, 235)})`, fg: t > 0.55 ? "#fff" : "#1f2937" };
  }

  // ---- retention ---------------------------------------------------------------------------
  async function retentionPage() {
    const form = document.getElementById("retention-form");
    const message = document.getElementById("retention-message");
    const curve = document.getElementById("retention-curve");
    const table = document.getElementById("retention-table");
    curve.appendChild(el("div", { class: "chart-body" }));

    function chartFromForm() {
      const v = (name) => form.elements[name].value;
      const chart = { id: "retention", title: "Retention", kind: "retention", event: v("event"), return_event: v("return_event"), mode: v("mode"), interval: Number(v("interval")), days: Number(v("days")), view: "line" };
      if (chart.mode === "bracket") {
        chart.brackets = v("brackets").split(",").map((part) => part.split("-").map((n) => parseInt(n, 10))).filter((b) => b.length === 2 && !b.some(Number.isNaN));
      }
      return chart;
    }

    function drawTable(chart, data) {
      table.replaceChildren();
      const series = ((data.series || [])[0]) || {};
      const dates = series.dates || [];
      if (!dates.length) return;
      const width = Math.max(0, (series.combined || []).length - 1);
      const head = table.createTHead().insertRow();
      ["Cohort", "Users"].concat([...Array(width).keys()].map((i) => window.revlensCharts.retentionLabel(chart, i))).forEach((t) => head.appendChild(el("th", {}, t)));
      const body = table.createTBody();
      dates.slice().reverse().forEach((day) => {
        const cells = series.values[day] || [];
        const tr = body.insertRow();
        tr.appendChild(el("td", {}, day));
        tr.appendChild(el("td", {}, String(cells.length ? cells[0].outof : 0)));
        cells.slice(1).forEach((cell) => {
          const pct = cell.outof ? (100 * cell.count) / cell.outof : 0;
          const td = el("td", { title: `${cell.count} of ${cell.outof} users${cell.incomplete ? " (interval not over yet)" : ""}` }, cell.incomplete ? "…" : `${pct.toFixed(1)}%`);
          const colour = heat(pct);
          td.style.background = colour.bg;
          td.style.color = colour.fg;
          tr.appendChild(td);
        });
      });
    }

    async function show() {
      const chart = chartFromForm();
      message.textContent = "Loading retention…";
      form.querySelector('[data-for="brackets"]').hidden = chart.mode !== "bracket";
      try {
        const item = await api(`${base}/preview`, {}, json("POST", { chart }));
        await drawChart(curve, item);
        if (!curve.answers) throw new Error(curve.querySelector(".state") ? curve.querySelector(".state").textContent : "no answer");
        drawTable(chart, curve.answers[0]);
        const cohorts = (((curve.answers[0].series || [])[0] || {}).dates || []).length;
        message.textContent = cohorts ? "Each row is the users who did the start event in that interval; each cell, the share of them who came back. Hover a cell for the counts." : "Nobody did the start event in this range yet.";
      } catch (err) {
        message.textContent = `Retention could not be loaded: ${err.message}`;
      }
    }
    form.addEventListener("submit", (event) => { event.preventDefault(); show(); });
    form.addEventListener("change", show);
    show();
  }

  // ---- cohorts -----------------------------------------------------------------------------
  async function cohortsPage() {
    const form = document.getElementById("cohort-form");
    const message = document.getElementById("cohort-message");
    const list = document.getElementById("cohort-list");
    const project = encodeURIComponent(meta("project"));

    async function load(keepMessage) {
      let cohorts;
      try {
        cohorts = (await api("/api/cohorts")).cohorts;
      } catch (err) {
        message.textContent = `Cohorts could not be loaded: ${err.message}`;
        return;
      }
      list.replaceChildren();
      if (!cohorts.length) {
        message.textContent = "No cohorts yet: describe one on the left.";
        return;
      }
      if (!keepMessage) message.textContent = "Sizes are worked out again each time you open this page.";
      const head = list.createTHead().insertRow();
      ["Name", "Users", ""].forEach((t) => head.appendChild(el("th", {}, t)));
      const body = list.createTBody();
      for (const cohort of cohorts) {
        const tr = body.insertRow();
        tr.dataset.cohort = String(cohort.id);
        tr.appendChild(el("td", {}, cohort.name));
        const size = el("td", { class: "size" }, "…");
        tr.appendChild(size);
        const actions = el("td", { class: "actions" });
        actions.appendChild(el("a", { class: "button small", href: `/api/cohorts/${cohort.id}/members?format=csv&project=${project}` }, "Download members"));
        actions.appendChild(el("a", { class: "button small", href: `${base}/chart?cohort=${cohort.id}` }, "Use as segment"));
        const remove = el("button", { class: "small", type: "button" }, "Delete");
        remove.addEventListener("click", async () => {
          if (!window.confirm(`Delete the cohort "${cohort.name}"?`)) return;
          await api(`/api/cohorts/${cohort.id}`, {}, { method: "DELETE" }).catch((err) => (message.textContent = err.message));
          load();
        });
        actions.appendChild(remove);
        tr.appendChild(actions);
        api(`/api/cohorts/${cohort.id}`).then((fresh) => (size.textContent = Number(fresh.size).toLocaleString()), () => (size.textContent = "?"));
      }
    }

    function toggle() {
      form.querySelector('[data-for="property"]').hidden = form.elements.kind.value !== "sum";
    }
    form.addEventListener("change", toggle);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const v = (name) => form.elements[name].value;
      const measure = { kind: v("kind"), op: v("op"), value: Number(v("value")) };
      if (measure.kind === "sum") measure.property = v("property").trim() || "$revenue";
      const definition = { performed: { event_type: v("event"), measure, timing: { kind: v("timing"), days: Number(v("days")) } } };
      message.textContent = "Creating the cohort…";
      try {
        const made = await api("/api/cohorts", {}, json("POST", { name: v("name").trim(), definition }));
        message.textContent = `Created \u201c${made.name}\u201d: ${made.size} users.`;
        load(true);
      } catch (err) {
        message.textContent = `The cohort was not created: ${err.message}`;
      }
    });
    toggle();
    load();
  }

  // ---- setup -------------------------------------------------------------------------------
  async function setupPage() {
    const message = document.getElementById("status-message");
    const table = document.getElementById("status-table");
    const columns = [["received", "Received"], ["stored", "Stored"], ["duplicates", "Duplicates"], ["ignored", "Ignored"], ["rejected_signatures", "Rejected signatures"], ["parked", "Parked"], ["failed", "Failed"], ["fx_missing", "Waiting for an exchange rate"], ["last_delivery_at", "Last delivery"]];

    async function poll() {
      try {
        const found = (await api(`${base}/status`)).endpoints;
        table.replaceChildren();
        if (!found.length) {
          message.textContent = "No endpoint yet, so nothing can arrive.";
          return;
        }
        const head = table.createTHead().insertRow();
        ["Endpoint"].concat(columns.map((c) => c[1])).forEach((t) => head.appendChild(el("th", {}, t)));
        const body = table.createTBody();
        found.forEach((e) => {
          const tr = body.insertRow();
          tr.appendChild(el("td", {}, e.endpoint));
          columns.forEach(([key]) => {
            const value = e[key];
            const text = key === "last_delivery_at" ? (value ? new Date(`${value}Z`).toLocaleString() : "never") : Number(value).toLocaleString();
            tr.appendChild(el("td", { "data-key": key }, text));
          });
        });
        const total = found.reduce((sum, e) => sum + e.received, 0);
        const waiting = found.reduce((sum, e) => sum + e.fx_missing, 0);
        message.textContent = total ? `Updated ${new Date().toLocaleTimeString()}; refreshes every 5 seconds.` : "Nothing has arrived yet. Send a test event from Stripe; it shows up here within seconds.";
        if (waiting) {
          message.textContent += ` ${waiting.toLocaleString()} payments are in a currency with no exchange rate yet: they keep their original amount and are left out of revenue until you run "revlens rates fetch" or "revlens rates import".`;
        }
      } catch (err) {
        message.textContent = `The status could not be loaded: ${err.message}`;
      }
    }
    poll();
    setInterval(poll, 5000);
  }

  const pages = { retention: retentionPage, cohorts: cohortsPage, setup: setupPage };
  document.addEventListener("DOMContentLoaded", () => {
    const run = pages[document.body.dataset.page];
    if (run) run();
  });
})();
