"""The web dashboard: sign-in sessions, saved dashboards, chart definitions and their Vega-Lite specs.

Pages are HTML shells; the browser fetches the same JSON query API as every other client and draws
the answers with Vega-Lite, served from the `vl-convert-python` package (no CDN). The CLI renders the
same specs to PNG or SVG with `revlens chart`.
"""
