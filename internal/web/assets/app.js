// workq dashboard: live updates for the pages the server renders.
// The Jobs list reloads its table every few seconds; a Job's page follows
// the server-sent events of /api/jobs/{name}/events and draws the
// throughput chart from the samples it receives. Every text from the server
// goes into the page through textContent, never as HTML.
(function () {
  "use strict";

  var body = document.body;
  var page = body.dataset.page;
  var STATES = ["succeeded", "dead", "leased", "retrying", "pending"];
  var MAX_SAMPLES = 300; // five minutes at one event per second

  function $(sel, root) { return (root || document).querySelector(sel); }
  function $$(sel, root) { return Array.prototype.slice.call((root || document).querySelectorAll(sel)); }

  function fmtInt(n) { return Number(n || 0).toLocaleString("en-US"); }

  function fmtRate(r) {
    if (!r) return "0/s";
    if (r < 10) return r.toFixed(2) + "/s";
    if (r < 1000) return r.toFixed(1) + "/s";
    return fmtInt(Math.round(r)) + "/s";
  }

  function pad2(n) { return (n < 10 ? "0" : "") + n; }

  function fmtDur(ms) {
    if (ms < 1000) return Math.max(0, Math.round(ms)) + "ms";
    var s = Math.floor(ms / 1000);
    if (s < 60) return s + "s";
    if (s < 3600) return Math.floor(s / 60) + "m" + pad2(s % 60) + "s";
    if (s < 86400) return Math.floor(s / 3600) + "h" + pad2(Math.floor(s % 3600 / 60)) + "m";
    return Math.floor(s / 86400) + "d" + Math.floor(s % 86400 / 3600) + "h";
  }

  function fmtPct(f) {
    if (f > 0 && f < 1) return "<1%";
    return Math.floor(f) + "%";
  }

  function isZeroTime(t) { return !t || t.indexOf("0001-01-01") === 0; }

  function ago(t, now) {
    if (isZeroTime(t)) return "never";
    var d = Date.parse(now) - Date.parse(t);
    return d < 0 ? "in " + fmtDur(-d) : fmtDur(d) + " ago";
  }

  function stamp(t) {
    if (isZeroTime(t)) return "";
    return new Date(t).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC").replace(/Z$/, " UTC");
  }

  function setField(name, text) {
    $$('[data-field="' + name + '"]').forEach(function (el) { el.textContent = text; });
  }

  function cell(tr, text, cls, title) {
    var td = document.createElement("td");
    if (cls) td.className = cls;
    if (title) td.title = title;
    if (text instanceof Node) td.appendChild(text); else td.textContent = text;
    tr.appendChild(td);
    return td;
  }

  function emptyRow(tbody, cols, text) {
    var tr = document.createElement("tr");
    tr.className = "none";
    var td = cell(tr, text);
    td.colSpan = cols;
    tbody.appendChild(tr);
  }

  function clear(el) { while (el.firstChild) el.removeChild(el.firstChild); }

  function setLive(state, text) {
    var el = $("#live");
    if (!el) return;
    el.hidden = false;
    el.className = "live " + state;
    el.textContent = text;
  }

  // progress returns the bar segments in percent, as the server draws them:
  // items handed back unstarted (returned) count as pending.
  function progress(it) {
    var counts = [it.succeeded, it.dead, it.leased, it.retrying, it.pending + (it.returned || 0)];
    var sum = counts.reduce(function (a, b) { return a + b; }, 0);
    var total = Math.max(it.total, sum);
    var x = 0, segs = {};
    STATES.forEach(function (s, i) {
      var w = total ? 100 * counts[i] / total : 0;
      segs[s] = { x: x, w: w, n: counts[i] };
      x += w;
    });
    return { segs: segs, done: total ? 100 * (it.succeeded + it.dead) / total : 0 };
  }

  // ---- the Jobs list: reload the table from the server's own HTML ----

  function pollList() {
    var every = (Number(body.dataset.refresh) || 5) * 1000;
    function tick() {
      fetch(location.pathname, { headers: { Accept: "text/html" }, cache: "no-store" })
        .then(function (r) {
          if (!r.ok) throw new Error("HTTP " + r.status);
          return r.text();
        })
        .then(function (html) {
          var doc = new DOMParser().parseFromString(html, "text/html");
          var fresh = $("main", doc), old = $("main");
          if (fresh && old) old.replaceWith(document.adoptNode(fresh));
          setLive("on", "live");
        })
        .catch(function () { setLive("off", "reconnecting…"); })
        .then(function () { setTimeout(tick, every); });
    }
    setTimeout(tick, every);
  }

  // ---- one Job ----

  function Chart(svg) {
    this.svg = svg;
    this.samples = [];
    this.last = null;
    var self = this;
    window.addEventListener("resize", function () { self.draw(); });
  }

  // recent is the mean per-second rate of the last few samples, or null.
  Chart.prototype.recent = function () {
    var r = this.samples.slice(-5).filter(function (p) { return p.rate !== null; });
    if (!r.length) return null;
    return r.reduce(function (a, p) { return a + p.rate; }, 0) / r.length;
  };

  Chart.prototype.add = function (st) {
    this.finished = st.phase === "Complete" || st.phase === "Failed";
    var t = Date.parse(st.now);
    var rate = null;
    if (this.last && t > this.last.t) {
      rate = Math.max(0, (st.items.succeeded - this.last.succeeded) * 1000 / (t - this.last.t));
    }
    if (!this.last || t > this.last.t) {
      this.last = { t: t, succeeded: st.items.succeeded };
      this.samples.push({ t: t, rate: rate, avg: st.throughput || 0 });
      if (this.samples.length > MAX_SAMPLES) this.samples.shift();
    }
    this.draw();
  };

  function niceMax(v) {
    if (v <= 0) return 1;
    var p = Math.pow(10, Math.floor(Math.log10(v)));
    var steps = [1, 2, 2.5, 5, 10];
    for (var i = 0; i < steps.length; i++) if (steps[i] * p >= v) return steps[i] * p;
    return 10 * p;
  }

  function svgEl(name, attrs, text) {
    var el = document.createElementNS("http://www.w3.org/2000/svg", name);
    Object.keys(attrs).forEach(function (k) { el.setAttribute(k, attrs[k]); });
    if (text !== undefined) el.textContent = text;
    return el;
  }

  Chart.prototype.draw = function () {
    var svg = this.svg, s = this.samples;
    var W = svg.clientWidth || 800, H = svg.clientHeight || 200;
    svg.setAttribute("viewBox", "0 0 " + W + " " + H);
    svg.removeAttribute("preserveAspectRatio");
    clear(svg);
    var L = 48, R = 8, T = 10, B = 22;
    var pts = s.filter(function (p) { return p.rate !== null; });
    var idle = this.finished && !pts.some(function (p) { return p.rate > 0; });
    if (pts.length < 1 || idle) {
      svg.appendChild(svgEl("text", { x: W / 2, y: H / 2, "class": "chart-empty" },
        idle ? "The Job has finished: the chart draws while its items succeed." : "collecting samples…"));
      return;
    }
    var tMax = s[s.length - 1].t;
    var span = Math.max(10000, tMax - s[0].t);
    var tMin = tMax - span;
    var yMax = niceMax(1.1 * Math.max.apply(null, s.map(function (p) { return Math.max(p.rate || 0, p.avg); })));
    function X(t) { return L + (W - L - R) * (t - tMin) / span; }
    function Y(v) { return T + (H - T - B) * (1 - v / yMax); }

    [0, 0.5, 1].forEach(function (f) {
      var y = Y(f * yMax);
      svg.appendChild(svgEl("line", { x1: L, x2: W - R, y1: y, y2: y, "class": "grid" }));
      svg.appendChild(svgEl("text", { x: L - 6, y: y + 4, "text-anchor": "end" }, fmtRate(f * yMax).replace("/s", "")));
    });
    svg.appendChild(svgEl("text", { x: L, y: H - 5 }, "−" + fmtDur(span)));
    svg.appendChild(svgEl("text", { x: W - R, y: H - 5, "text-anchor": "end" }, "now"));

    var line = pts.map(function (p, i) { return (i ? "L" : "M") + X(p.t).toFixed(1) + " " + Y(p.rate).toFixed(1); }).join(" ");
    var first = pts[0], lastP = pts[pts.length - 1];
    svg.appendChild(svgEl("path", {
      d: line + " L" + X(lastP.t).toFixed(1) + " " + Y(0) + " L" + X(first.t).toFixed(1) + " " + Y(0) + " Z",
      "class": "area"
    }));
    svg.appendChild(svgEl("path", { d: line, "class": "line" }));
    var avg = s.map(function (p, i) { return (i ? "L" : "M") + X(p.t).toFixed(1) + " " + Y(p.avg).toFixed(1); }).join(" ");
    svg.appendChild(svgEl("path", { d: avg, "class": "avg" }));
    var range = $("#chart-range");
    if (range) range.textContent = "peak " + fmtRate(Math.max.apply(null, pts.map(function (p) { return p.rate; }))) + " · " + s.length + " samples";
  };

  function renderWorkers(ws, now) {
    var tbody = $("#workers");
    if (!tbody) return;
    clear(tbody);
    setField("workers.count", String(ws.length));
    if (!ws.length) { emptyRow(tbody, 6, "No worker is running."); return; }
    ws.forEach(function (w) {
      var tr = document.createElement("tr");
      if (w.expired) tr.className = "stale";
      cell(tr, w.id, "mono");
      cell(tr, w.host || "");
      cell(tr, String(w.pid || ""), "n");
      cell(tr, ago(w.started, now), "", stamp(w.started));
      cell(tr, ago(w.lastHeartbeat, now) + (w.expired ? " · expired" : ""), "", stamp(w.lastHeartbeat));
      cell(tr, w.version || "");
      tbody.appendChild(tr);
    });
  }

  function renderDead(dead, total) {
    var tbody = $("#dead");
    if (!tbody) return;
    clear(tbody);
    var note = $("#dead-note");
    if (note) {
      note.hidden = total <= dead.length;
      if (!note.hidden && note.firstChild) note.firstChild.textContent = "Showing the first " + dead.length + "; ";
    }
    if (!dead.length) { emptyRow(tbody, 4, "No dead items."); return; }
    dead.forEach(function (d) {
      var tr = document.createElement("tr");
      cell(tr, d.shard ? d.shard + ":" + d.id : String(d.id), "n");
      cell(tr, String(d.attempts), "n");
      var code = document.createElement("code");
      code.className = "item";
      code.textContent = d.item + (d.itemTruncated ? "…" : "");
      cell(tr, code);
      var pre = document.createElement("pre");
      pre.className = "err";
      pre.textContent = d.lastError;
      cell(tr, pre);
      tbody.appendChild(tr);
    });
  }

  function renderConditions(cs, now) {
    var tbody = $("#conditions");
    if (!tbody) return;
    clear(tbody);
    if (!cs || !cs.length) { emptyRow(tbody, 5, "No conditions yet."); return; }
    cs.forEach(function (c) {
      var tr = document.createElement("tr");
      cell(tr, c.type);
      cell(tr, c.status);
      cell(tr, c.reason || "");
      cell(tr, c.message || "");
      cell(tr, ago(c.lastTransitionTime, now), "", stamp(c.lastTransitionTime));
      tbody.appendChild(tr);
    });
  }

  function renderStatus(st) {
    var it = st.items;
    var badge = $(".head .badge");
    if (badge) {
      badge.className = "badge phase-" + st.phase.toLowerCase();
      badge.textContent = st.phase;
    }
    var susp = $('[data-field="suspended"]');
    if (susp) susp.hidden = !st.suspended;
    if (st.kind !== "Indexed") setField("sealed", st.sealed ? "sealed" : "loading (not sealed)");

    var p = progress(it);
    STATES.forEach(function (s) {
      var seg = p.segs[s];
      $$('.progress rect[data-state="' + s + '"]').forEach(function (r) {
        r.setAttribute("x", seg.x.toFixed(2));
        r.setAttribute("width", seg.w.toFixed(2));
        var title = r.querySelector("title");
        if (title) title.textContent = s + ": " + fmtInt(seg.n);
      });
      setField("items." + s, fmtInt(seg.n));
    });
    setField("done", fmtPct(p.done));
    setField("processed", fmtInt(it.succeeded + it.dead));
    setField("items.total", fmtInt(it.total));
    setField("items.failedAttempts", fmtInt(it.failedAttempts));
    setField("items.takeovers", fmtInt(it.takeovers));
    setField("leases", fmtInt(st.leases));
    setField("ready", String(st.ready));
    setField("active", String(st.active));
    setField("wsucceeded", String(st.succeeded));
    setField("wfailed", String(st.failed));
    setField("throughput", fmtRate(st.throughput));
    setField("throughputNote", "average of the last minute");
    setField("eta", st.phase === "Complete" || st.phase === "Failed" || st.phase === "Succeeding" ? "done" :
      (st.etaSeconds === null || st.etaSeconds === undefined ? "unknown" : fmtDur(1000 * st.etaSeconds)));
    setField("oldestPending", it.pending ? fmtDur(1000 * st.oldestPendingAgeSeconds) : "–");
    var end = st.completionTime ? Date.parse(st.completionTime) : Date.parse(st.now);
    setField("elapsed", st.startTime ? fmtDur(end - Date.parse(st.startTime)) : "not started");
    setField("elapsedLabel", st.completionTime ? "Ran for" : "Running for");
    setField("startTime", st.startTime ? stamp(st.startTime) : "–");
    setField("completionTime", st.completionTime ? stamp(st.completionTime) : "–");
    setField("completedIndexes", st.completedIndexes || "–");
    setField("failedIndexes", st.failedIndexes || "–");
    renderConditions(st.conditions, st.now);
    document.title = fmtPct(p.done) + " " + st.name + " · workq";

    // A Job that is Failing or Succeeding is ending: it can no longer be
    // suspended (the server answers 409).
    var ending = st.phase === "Complete" || st.phase === "Failed" || st.phase === "Failing" || st.phase === "Succeeding";
    setEnabled("suspend", !st.suspended && !ending);
    setEnabled("resume", st.suspended);
    setEnabled("retry", it.dead > 0);
  }

  function setEnabled(action, on) {
    var b = $('button[data-action="' + action + '"]');
    if (b) b.disabled = !on;
  }

  function watchJob(job) {
    var chart = $("#chart") ? new Chart($("#chart")) : null;
    var url = "/api/jobs/" + encodeURIComponent(job) + "/events";
    var es = new EventSource(url);
    es.addEventListener("status", function (e) {
      var v = JSON.parse(e.data);
      $("#stream-error").hidden = true;
      renderStatus(v.status);
      renderWorkers(v.workers || [], v.status.now);
      if (v.dead) renderDead(v.dead, v.status.items.dead);
      if (chart) {
        chart.add(v.status);
        var recent = chart.recent();
        if (recent !== null && !chart.finished) {
          setField("throughput", fmtRate(recent));
          setField("throughputNote", "last 5s · 1-minute average " + fmtRate(v.status.throughput));
        }
      }
      setLive("on", "live");
    });
    es.addEventListener("error", function (e) {
      // Both the server's "error" events (with data) and lost connections
      // (without) arrive here; EventSource reconnects by itself.
      var box = $("#stream-error");
      if (e.data) {
        var v = JSON.parse(e.data);
        box.textContent = v.error + (v.hint ? " — " + v.hint : "");
        box.hidden = false;
      }
      setLive("off", "reconnecting…");
    });
    es.addEventListener("gone", function (e) {
      es.close();
      var v = JSON.parse(e.data);
      var box = $("#gone");
      box.textContent = v.error + ": " + (v.hint || "") + ".";
      box.hidden = false;
      setLive("off", "ended");
    });
    setupActions(job);
  }

  // ---- actions (only when serve has a token) ----

  var TOKEN_KEY = "workq-token";

  function setupActions(job) {
    var box = $("#actions");
    if (!box) return;
    var out = $("#action-result");
    box.addEventListener("click", function (e) {
      var b = e.target.closest("button[data-action]");
      if (!b) return;
      var action = b.dataset.action;
      if (action === "delete" && !window.confirm("Delete Job " + job + " and all its items? Its workers stop.")) return;
      // A Job that has ended (or is ending) takes its dead items back only
      // when it is reopened, as `coordinator retry --reopen` does.
      var badge = $(".head .badge"), phase = badge ? badge.textContent : "";
      var reopen = action === "retry" && ["Complete", "Failed", "Failing", "Succeeding"].indexOf(phase) >= 0;
      if (reopen && !window.confirm("Job " + job + " is " + phase + ". Reopen it and retry its dead items?")) return;
      var token = sessionStorage.getItem(TOKEN_KEY) || window.prompt("Token (the --token that serve was started with):");
      if (!token) return;
      var base = "/api/jobs/" + encodeURIComponent(job);
      var req = action === "delete" ? { url: base, method: "DELETE" } : { url: base + "/" + action + (reopen ? "?reopen=true" : ""), method: "POST" };
      out.textContent = action + "…";
      fetch(req.url, { method: req.method, headers: { Authorization: "Bearer " + token } })
        .then(function (r) { return r.json().then(function (v) { return { ok: r.ok, code: r.status, v: v }; }); })
        .then(function (res) {
          if (res.code === 401 || res.code === 403) sessionStorage.removeItem(TOKEN_KEY);
          else sessionStorage.setItem(TOKEN_KEY, token);
          if (!res.ok) { out.textContent = res.v.error + (res.v.hint ? " — " + res.v.hint : ""); return; }
          if (action === "delete") { location.href = "/"; return; }
          if (action === "retry") out.textContent = res.v.retried + " dead items back in the queue";
          else out.textContent = res.v.changed ? action + "d" : "already " + (action === "suspend" ? "suspended" : "running");
        })
        .catch(function (err) { out.textContent = action + " failed: " + err; });
    });
  }

  if (page === "jobs") pollList();
  if (page === "job") watchJob(body.dataset.job);
})();
