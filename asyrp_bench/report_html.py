"""report.html: a self-contained page to explore a run (docs/results.md, "report.html").

Inline CSS and JavaScript, no CDN and no external URL, so it works offline. Images are linked relatively
(``report/*.svg``, ``cells/<id>/images/*.png``) and only where the file exists, so the page loads without a
missing-resource error. The summary table and the settings table sort by a click on a header; the per-image
view shows source, reconstruction and edit of one (backend, edit, editor) side by side with that image's
scores, sorted by any per-image metric, best or worst first.
"""

from __future__ import annotations

import html
import json
import math
import re
from typing import Any

import pandas as pd

from asyrp_bench.report_plots import SOURCES_DIR, baseline_cell, image_ids
from asyrp_bench.report_tables import UNITS, directions, short_name
from asyrp_bench.results import BASELINE_EDITOR, RunDir

_CSS = """body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;font-size:0.85em}td,th{border:1px solid #ccc;padding:3px 7px;text-align:right;
white-space:nowrap}th{background:#f3f3f3;cursor:pointer}th[aria-sort=ascending]::after{content:" ▲"}
th[aria-sort=descending]::after{content:" ▼"}td.key,th.key{text-align:left}
td.published,th.published{background:#f4f0ff;color:#553;font-style:italic}
blockquote{border-left:4px solid #e0b000;margin:0.8em 0;padding:0.2em 0.8em;background:#fffbea}
img{max-width:100%;border:1px solid #eee;margin:0.3em 0}code{background:#f4f4f4}
#images img{width:96px;image-rendering:pixelated}#images td{vertical-align:middle}
.scroll{overflow-x:auto}"""

_JS = """
function sortTable(th){
  const table=th.closest('table'), body=table.tBodies[0], col=th.cellIndex;
  const asc=th.getAttribute('aria-sort')!=='ascending';
  for(const other of table.tHead.rows[0].cells){other.removeAttribute('aria-sort');}
  th.setAttribute('aria-sort', asc?'ascending':'descending');
  const key=r=>{const c=r.cells[col]; const v=c.dataset.sort!==undefined?c.dataset.sort:c.textContent;
    const n=parseFloat(v); return isNaN(n)?[1,v]:[0,n];};
  const rows=Array.from(body.rows).sort((a,b)=>{const x=key(a),y=key(b);
    if(x[0]!==y[0]) return x[0]-y[0]; const d=x[1]<y[1]?-1:(x[1]>y[1]?1:0); return asc?d:-d;});
  for(const r of rows) body.appendChild(r);
}
document.querySelectorAll('table.sortable th').forEach(th=>th.addEventListener('click',()=>sortTable(th)));
const DATA=JSON.parse(document.getElementById('data').textContent);
const $=id=>document.getElementById(id);
function fill(select, values){select.innerHTML='';
  for(const v of values){const o=document.createElement('option'); o.value=v; o.textContent=v; select.appendChild(o);}}
function cellsOf(group){return DATA.cells.filter(c=>c.backend+' / '+c.edit===group);}
function renderImages(){
  const cell=DATA.cells.find(c=>c.id===$('pick-editor').value); const out=$('images');
  out.innerHTML='';
  if(!cell){return;}
  const metric=$('pick-metric').value, best=$('pick-order').value==='best';
  const higher=DATA.metrics[metric]?DATA.metrics[metric].higher:true;
  const ids=Object.keys(cell.scores);
  const val=i=>{const v=cell.scores[i][metric]; return v===null||v===undefined?NaN:v;};
  ids.sort((a,b)=>{const x=val(a),y=val(b); if(isNaN(x)) return 1; if(isNaN(y)) return -1;
    return (higher===best)?y-x:x-y;});
  const head=document.createElement('tr');
  for(const h of ['image','source','reconstruction','edit',...Object.keys(DATA.metrics)]){
    const th=document.createElement('th'); th.textContent=h; head.appendChild(th);}
  out.appendChild(head);
  for(const i of ids){
    const tr=document.createElement('tr'); tr.dataset.image=i;
    const id=document.createElement('td'); id.textContent=i; tr.appendChild(id);
    for(const src of [cell.sources[i], cell.recon[i], cell.images[i]]){
      const td=document.createElement('td');
      if(src){const img=document.createElement('img'); img.src=src; img.alt=i; td.appendChild(img);}
      else{td.textContent='–';}
      tr.appendChild(td);}
    for(const m of Object.keys(DATA.metrics)){const td=document.createElement('td');
      const v=cell.scores[i][m]; td.textContent=(v===null||v===undefined)?'–':v.toPrecision(4);
      tr.appendChild(td);}
    out.appendChild(tr);}
}
function pickGroup(){const cells=cellsOf($('pick-group').value);
  fill($('pick-editor'), cells.map(c=>c.id));
  Array.from($('pick-editor').options).forEach((o,k)=>o.textContent=cells[k].editor+' (seed '+cells[k].seed+')');
  renderImages();}
if(DATA.cells.length){
  fill($('pick-group'), Array.from(new Set(DATA.cells.map(c=>c.backend+' / '+c.edit))));
  fill($('pick-metric'), Object.keys(DATA.metrics));
  Array.from($('pick-metric').options).forEach(o=>o.textContent=DATA.metrics[o.value].label);
  $('pick-group').addEventListener('change', pickGroup);
  for(const id of ['pick-editor','pick-metric','pick-order']) $(id).addEventListener('change', renderImages);
  pickGroup();
}
"""


def _md_inline(text: str) -> str:
    """Escape for HTML and turn the few markdown marks used (**bold**, `code`) into tags."""
    out = html.escape(text)
    out = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", out)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", out)


def _number(text: str) -> str:
    match = re.match(r"\s*(-?[0-9.]+(?:e[-+]?[0-9]+)?)", text)
    return match.group(1) if match else ""


def _metric_tooltip(run: RunDir, summary: pd.DataFrame, metric: str, higher: bool | None) -> str:
    rows = summary[summary["metric"] == metric]
    config = ", ".join(sorted({f"v{v} config {c}" for v, c in zip(rows["metric_version"], rows["metric_config"],
                                                                    strict=True)}))
    params = next((m.get("params") for m in run.suite.get("metrics") or [] if m.get("name") == metric.split(".")[0]),
                  None)
    direction = {True: "higher is better", False: "lower is better"}.get(higher, "no direction")  # type: ignore[arg-type]
    return (f"{metric}: {direction}; unit: {UNITS.get(metric, 'see docs/metrics.md')}; {config}; "
            f"params {json.dumps(params or {})}. Cells show the mean; hover a value for its 95% CI.")


def _summary_html(run: RunDir, table: pd.DataFrame, kinds: dict[str, str]) -> str:
    if table.empty:
        return "<p><i>no complete cells</i></p>"
    summary = run.summary()
    known = directions(summary)
    heads = []
    for column in table.columns:
        kind, _, metric = kinds.get(column, "key").partition(":")
        if kind == "metric":
            tip = _metric_tooltip(run, summary, metric, known.get(metric))
        elif kind == "published":
            tip = f"published value of {short_name(metric)} for this edit (see the footnotes); not ours"
        else:
            tip = "click to sort"
        heads.append(f"<th class='{kind}' title='{html.escape(tip)}'>{html.escape(str(column))}</th>")
    rows = []
    for row in table.itertuples(index=False):
        cells = []
        for column, value in zip(table.columns, row, strict=True):
            kind = kinds.get(column, "key").partition(":")[0]
            text = str(value)
            if kind == "metric":
                shown = text.split(" [")[0]
                cells.append(f"<td data-sort='{_number(text)}' title='{html.escape(text)}'>{html.escape(shown)}</td>")
            else:
                cells.append(f"<td class='{kind}' data-sort='{html.escape(_number(text) or text)}'>"
                             f"{html.escape(text)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return (f"<div class='scroll'><table id='summary' class='sortable'><thead><tr>{''.join(heads)}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table></div>")


def _plain_table(frame: pd.DataFrame, table_id: str) -> str:
    head = "".join(f"<th class='key'>{html.escape(str(c))}</th>" for c in frame.columns)
    body = "".join("<tr>" + "".join(f"<td class='key'>{html.escape(str(v))}</td>" for v in row) + "</tr>"
                   for row in frame.itertuples(index=False))
    return (f"<div class='scroll'><table id='{table_id}' class='sortable'><thead><tr>{head}</tr></thead>"
            f"<tbody>{body}</tbody></table></div>")


def _files(run: RunDir, folder: Any) -> dict[str, str]:
    """image id -> path relative to the run folder, for the PNGs that exist."""
    if not folder.is_dir():
        return {}
    return {i: (folder / f"{i}.png").relative_to(run.path).as_posix() for i in image_ids(folder)}


def image_data(run: RunDir) -> dict[str, Any]:
    """What the per-image view needs: per edited cell its images, the baseline's, and per-image scores."""
    scores = run.scores()
    summary = run.summary()
    known = directions(summary)
    per_image = [m for m in dict.fromkeys(scores["metric"]) if known.get(m) is not None]
    metrics = {m: {"label": short_name(m), "higher": known[m]} for m in per_image}
    cells = []
    for cell_id in run.complete_cells():
        cell = run.manifest["cells"][cell_id]
        if cell.get("editor") == BASELINE_EDITOR:
            continue
        base = baseline_cell(run, str(cell.get("backend")))
        base_dir = run.cell_dir(base) if base else run.path / "missing"
        values: dict[str, dict[str, float | None]] = {}
        for row in scores[scores["cell"] == cell_id].itertuples(index=False):
            value = float(row.value)
            values.setdefault(str(row.image_id), {})[str(row.metric)] = value if math.isfinite(value) else None
        cells.append({"id": cell_id, "backend": str(cell.get("backend")), "editor": str(cell.get("editor")),
                      "edit": str(cell.get("edit") or ""), "seed": cell.get("seed"), "scores": values,
                      "images": _files(run, run.cell_dir(cell_id) / "images"),
                      "sources": _files(run, base_dir / SOURCES_DIR), "recon": _files(run, base_dir / "images")})
    return {"cells": cells, "metrics": metrics}


_PICKER = """<p><label>backend / edit <select id='pick-group'></select></label>
<label>editor <select id='pick-editor'></select></label>
<label>sort by <select id='pick-metric'></select></label>
<label><select id='pick-order'><option value='best'>best first</option>
<option value='worst'>worst first</option></select></label></p>
<div class='scroll'><table id='images'></table></div>"""


def render_html(run: RunDir, sections: list[tuple[str, list[tuple[str, str]]]], table: pd.DataFrame,
                kinds: dict[str, str], settings: pd.DataFrame) -> str:
    title = f"{run.manifest.get('suite')}: asyrp-bench report"
    parts = [f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>"]
    for heading, items in sections:
        parts.append(f"<h2>{html.escape(heading)}</h2>")
        for kind, payload in items:
            if kind == "table":
                parts.append(_summary_html(run, table, kinds))
            elif kind == "settings":
                parts.append(_plain_table(settings, "settings"))
            elif kind == "image":
                src, alt = payload.split("|", 1)
                if (src.endswith(".png") and "/metric_" in src) or src.endswith("tradeoff.png"):
                    src = src[: -len(".png")] + ".svg"  # plots: the SVG copy, sharp at any zoom
                parts.append(f"<p><img src='{html.escape(src)}' alt='{html.escape(alt)}'></p>")
            elif kind == "note":
                parts.append(f"<blockquote>{_md_inline(payload)}</blockquote>")
            else:
                parts.append(f"<p>{_md_inline(payload)}</p>")
    data = image_data(run)
    parts.append("<h2>Per-image view</h2>")
    if data["cells"]:
        parts.append("<p>Pick an edit and an editor: each row is one image, its source, reconstruction and edit "
                     "with that image's scores, sorted by the chosen metric.</p>" + _PICKER)
    else:
        parts.append("<p>No edited cells with per-image scores in this run folder.</p><table id='images'></table>")
    payload = json.dumps(data, allow_nan=False).replace("</", "<\\/")
    parts.append(f"<script type='application/json' id='data'>{payload}</script><script>{_JS}</script>")
    parts.append("</body></html>\n")
    return "\n".join(parts)
