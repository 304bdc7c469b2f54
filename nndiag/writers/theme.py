"""The HTML report's static parts: light and dark palettes, the stylesheet, the one inline script
and the Content-Security-Policy that allows exactly that script (by its hash) and nothing else.

The script does two things, both driven by the query string only: ``?theme=dark`` or
``?theme=light`` forces a palette (the default follows ``prefers-color-scheme``), and ``?selftest``
records script errors, ``alert`` calls and each plot's rendered size into ``<pre id="selftest">``
(used by tests/test_report_browser.py through ``chromium --dump-dom``).
"""

from __future__ import annotations

import base64
import hashlib
from typing import Mapping


_LIGHT = {
    "bg": "#ffffff", "fg": "#1f2328", "muted": "#59636e", "line": "#d1d9e0", "panel": "#f6f8fa",
    "plot-fg": "#5c5c5c", "plot-grid": "#dcdcdc",
    "c1": "#1f77b4", "c2": "#e8710a", "c3": "#2ca02c", "c4": "#d62728", "c5": "#9467bd",
    "pass": "#1a7f37", "pass-bg": "#dafbe1", "warn": "#9a6700", "warn-bg": "#fff8c5",
    "fail": "#cf222e", "fail-bg": "#ffebe9", "error": "#8250df", "error-bg": "#fbefff",
    "skip": "#59636e", "skip-bg": "#eaeef2",
}
_DARK = {
    "bg": "#0d1117", "fg": "#e6edf3", "muted": "#9198a1", "line": "#3d444d", "panel": "#151b23",
    "plot-fg": "#a8a8a8", "plot-grid": "#3a3f46",
    "c1": "#58a6ff", "c2": "#ffa657", "c3": "#3fb950", "c4": "#ff7b72", "c5": "#d2a8ff",
    "pass": "#3fb950", "pass-bg": "#12261e", "warn": "#d29922", "warn-bg": "#272115",
    "fail": "#f85149", "fail-bg": "#2d1214", "error": "#a371f7", "error-bg": "#231a33",
    "skip": "#9198a1", "skip-bg": "#21262d",
}


def _vars(palette: Mapping[str, str]) -> str:
    return "".join(f"--{k}:{v};" for k, v in palette.items())


CSS = (
    f":root{{{_vars(_LIGHT)}color-scheme:light}}"
    f"@media (prefers-color-scheme:dark){{:root:not(.light){{{_vars(_DARK)}color-scheme:dark}}}}"
    f":root.dark{{{_vars(_DARK)}color-scheme:dark}}"
    """
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif}
main{max-width:1100px;margin:0 auto;padding:1.2rem 1.2rem 4rem}
h1{font-size:1.5rem;margin:.2rem 0 .6rem}
h2{font-size:1.25rem;margin:2.2rem 0 .6rem;padding-bottom:.3rem;border-bottom:1px solid var(--line);overflow-wrap:anywhere}
h3{font-size:1.05rem;margin:0;display:inline}
a{color:var(--c1)}
code,pre,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"DejaVu Sans Mono",monospace;font-size:.86em}
pre{white-space:pre-wrap;overflow-wrap:anywhere;background:var(--panel);padding:.6rem;border-radius:6px;max-height:30rem;overflow:auto}
.muted{color:var(--muted)}
.badge{display:inline-block;min-width:3.6em;text-align:center;padding:.05rem .5rem;border-radius:1rem;font-weight:600;font-size:.8rem;text-transform:uppercase;letter-spacing:.03em;border:1px solid currentColor}
.st-pass{color:var(--pass);background:var(--pass-bg)}.st-warn{color:var(--warn);background:var(--warn-bg)}
.st-fail{color:var(--fail);background:var(--fail-bg)}.st-error{color:var(--error);background:var(--error-bg)}
.st-skip{color:var(--skip);background:var(--skip-bg)}
.banner{border:1px solid var(--line);border-radius:8px;padding:.8rem 1rem;background:var(--panel)}
.banner table{margin:0}
.count{display:inline-block;min-width:1.8em;text-align:center;border-radius:4px;padding:0 .3rem;font-weight:600}
.count.zero{opacity:.35;background:none}
.strip{display:flex;flex-wrap:wrap;gap:3px}
.strip a{display:block;width:1.05rem;height:1.05rem;border-radius:3px;background:currentColor;text-decoration:none}
table{border-collapse:collapse;margin:.5rem 0;font-size:.88rem;width:auto;max-width:100%}
th,td{border-bottom:1px solid var(--line);padding:.25rem .55rem;text-align:left;vertical-align:top;overflow-wrap:break-word}
th{font-weight:600;color:var(--muted);white-space:nowrap}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.tablewrap{overflow-x:auto;max-width:100%}
.probe{border:1px solid var(--line);border-left:5px solid var(--skip);border-radius:8px;padding:.7rem 1rem;margin:1rem 0}
.probe.st-pass,.probe.st-warn,.probe.st-fail,.probe.st-error,.probe.st-skip{background:none;color:inherit}
.probe.st-pass{border-left-color:var(--pass)}.probe.st-warn{border-left-color:var(--warn)}
.probe.st-fail{border-left-color:var(--fail)}.probe.st-error{border-left-color:var(--error)}
.probe-head{display:flex;gap:.7rem;align-items:baseline;flex-wrap:wrap}
.probe-head .secs{margin-left:auto}
.summary{margin:.4rem 0;overflow-wrap:anywhere}
.desc{font-size:.85rem;margin:.1rem 0 .3rem}
figure.plot{margin:.8rem 0;max-width:760px}
figure.plot svg{display:block;width:100%;height:auto}
figure.plot figcaption{font-size:.82rem;color:var(--muted)}
details{margin:.4rem 0}
summary{cursor:pointer;color:var(--muted);font-size:.9rem}
.note{font-size:.85rem;color:var(--muted);font-style:italic}
.loaderr{border-left:5px solid var(--error);padding:.5rem 1rem;background:var(--error-bg)}
footer{margin-top:3rem;font-size:.8rem;color:var(--muted)}
"""
)

# Runs first, in <head>; the CSP below allows exactly this text (by hash) and nothing else.
SCRIPT = r"""(function(){
var q=location.search||"",root=document.documentElement;
var m=/[?&]theme=(dark|light)/.exec(q);if(m){root.classList.add(m[1]);}
if(!/[?&]selftest/.test(q)){return;}
var rec={errors:[],alerts:[],plots:[],probes:0,subjects:0,banner:false,ready:""};
window.addEventListener("error",function(e){var t=e.target;rec.errors.push(e.message?String(e.message)+" @ "+(e.filename||"")+":"+(e.lineno||0):"resource error: "+(t&&(t.src||t.href||t.tagName)));},true);
window.addEventListener("unhandledrejection",function(e){rec.errors.push("unhandled rejection: "+String(e.reason));});
["alert","confirm","prompt"].forEach(function(n){window[n]=function(x){rec.alerts.push(n+": "+String(x));};});
var ce=console.error;console.error=function(){rec.errors.push("console.error: "+Array.prototype.join.call(arguments," "));return ce.apply(console,arguments);};
function out(stage){
rec.ready=stage;
rec.plots=Array.prototype.map.call(document.querySelectorAll("figure.plot"),function(f){var s=f.querySelector("svg"),r=s?s.getBoundingClientRect():{width:0,height:0};return {id:f.id,w:Math.round(r.width),h:Math.round(r.height)};});
rec.probes=document.querySelectorAll("article.probe").length;
rec.subjects=document.querySelectorAll("section.subject").length;
rec.banner=!!document.querySelector("section.banner");
var p=document.getElementById("selftest");if(!p){p=document.createElement("pre");p.id="selftest";document.body.appendChild(p);}
p.textContent=JSON.stringify(rec);}
document.addEventListener("DOMContentLoaded",function(){out("domcontentloaded");});
window.addEventListener("load",function(){out("load");});
})();"""

_SCRIPT_HASH = base64.b64encode(hashlib.sha256(SCRIPT.encode("utf-8")).digest()).decode("ascii")
CSP = (f"default-src 'none'; script-src 'sha256-{_SCRIPT_HASH}'; style-src 'unsafe-inline'; "
       "img-src data:; font-src data:; base-uri 'none'; form-action 'none'")
