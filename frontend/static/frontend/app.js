// Progressive enhancement only: every page works without this file.
(function () {
  "use strict";

  var TERMINAL = ["SUCCEEDED", "PARTIAL", "FAILED", "CANCELLED", "TIMED_OUT"];

  function pct(fraction) { return Math.round((fraction || 0) * 100); }
  function isTerminal(status) { return TERMINAL.indexOf(status) >= 0; }
  function statusLabel(status) {
    if (status === "PARTIAL") return "Partly succeeded";
    return status.charAt(0) + status.slice(1).toLowerCase().replace("_", " ");
  }
  function getJson(url) {
    return fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); });
  }

  // Job page: follow progress, stage and log without reloading; reload once at the end
  // so the server renders the results table.
  function followJob(el) {
    var url = el.getAttribute("data-live-job");
    if (!url || el.getAttribute("data-terminal") === "1") return;
    var bar = document.getElementById("job-progress");
    var label = document.getElementById("job-percent");
    var stage = document.getElementById("job-stage");
    var status = document.getElementById("job-status");
    var log = document.getElementById("job-log");
    var waiting = document.getElementById("job-waiting");
    var times = document.getElementById("job-times");
    function tick() {
      getJson(url)
        .then(function (job) {
          var value = job.status === "SUCCEEDED" || job.status === "PARTIAL" ? 100 : pct(job.progress);
          bar.value = value; bar.textContent = value + "%"; label.textContent = value + "%";
          if (job.stage) stage.textContent = job.stage;
          status.textContent = statusLabel(job.status);
          status.className = "badge status-" + job.status.toLowerCase();
          if (waiting && job.status !== "QUEUED") waiting.hidden = true;
          if (times && job.status === "RUNNING" && times.textContent.indexOf("not started") === 0) {
            times.textContent = "running";
          }
          if (log && job.log && job.log.length) {
            var atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
            log.textContent = job.log.join("\n");
            if (atEnd) log.scrollTop = log.scrollHeight;
          }
          if (job.outlook) showOutlook(job);
          if (isTerminal(job.status)) {
            notifyEnd(job);
            setTimeout(function () { window.location.reload(); }, 600);
          }
          else { setTimeout(tick, 1000); }
        })
        .catch(function () { setTimeout(tick, 3000); });
    }
    tick();
  }

  function duration(seconds) {
    var total = Math.max(0, Math.round(seconds));
    var h = Math.floor(total / 3600), m = Math.floor((total % 3600) / 60), s = total % 60;
    if (h) return h + " h " + m + " min";
    if (m) return m + " min " + s + " s";
    return s + " s";
  }

  function setText(id, text) {
    var el = document.getElementById(id);
    if (el && el.textContent !== text) el.textContent = text;
  }

  // Queue position and estimates (the server computes them; "estimate" says so).
  function showOutlook(job) {
    var o = job.outlook;
    if (o.position) {
      setText("job-position", o.position + (o.position === 1 ? " (next)" : "") + " · " +
        o.jobs_ahead + " queued ahead, " + o.running + " running on " + o.workers +
        " worker" + (o.workers === 1 ? "" : "s"));
      setText("job-est-start", o.start_in_s !== null ? "in about " + duration(o.start_in_s) + " (estimate)" :
        (o.workers ? "unknown: no finished job of the jobs ahead to estimate from" : "when a " + job.queue + " worker joins"));
    } else if (job.status === "RUNNING") {
      setText("job-position", "started");
    }
    if (!job.terminal && o.finish_in_s !== null) {
      setText("job-est-finish", "in about " + duration(o.finish_in_s) + " (estimate)");
    }
    var elapsed = document.getElementById("job-elapsed");
    if (elapsed && o.elapsed_s !== null) elapsed.setAttribute("data-base", String(o.elapsed_s));
  }

  // Elapsed (or waiting) time ticks every second between refreshes.
  function tickElapsed() {
    var el = document.getElementById("job-elapsed");
    if (!el || el.hasAttribute("data-until")) return;
    var since = Date.parse(el.getAttribute("data-since"));
    if (isNaN(since)) return;
    setInterval(function () { el.textContent = duration((Date.now() - since) / 1000); }, 1000);
  }

  // A browser notification when the job ends, once the user asked for one.
  var NOTIFY_KEY = "quantplan-notify-";
  function notifyButton() {
    var button = document.getElementById("job-notify");
    var live = document.querySelector("[data-live-job]");
    if (!button || !live || !("Notification" in window)) return;
    var key = NOTIFY_KEY + live.getAttribute("data-live-job");
    var state = document.getElementById("job-notify-state");
    function show() {
      var on = Notification.permission === "granted" && localStorage.getItem(key) === "1";
      button.hidden = on || Notification.permission === "denied";
      state.textContent = on ? "You will get a browser notification when this job ends." :
        (Notification.permission === "denied" ? "Notifications are blocked for this site in the browser's settings." : "");
    }
    button.addEventListener("click", function () {
      Notification.requestPermission().then(function (permission) {
        if (permission === "granted") localStorage.setItem(key, "1");
        show();
      });
    });
    show();
  }
  function notifyEnd(job) {
    var live = document.querySelector("[data-live-job]");
    if (!live || !("Notification" in window) || Notification.permission !== "granted") return;
    var key = NOTIFY_KEY + live.getAttribute("data-live-job");
    if (localStorage.getItem(key) !== "1") return;
    localStorage.removeItem(key);
    try {
      new Notification("Quantplan: job " + statusLabel(job.status).toLowerCase(), {
        body: (job.name || "Your job") + (job.error ? " — " + job.error : ""), tag: key
      });
    } catch (e) { /* some browsers allow notifications only from a service worker */ }
  }

  // Jobs list: refresh status and progress of the rows still running.
  function followJobList(table) {
    var url = table.getAttribute("data-live-jobs");
    function active() { return table.querySelectorAll("tr[data-job][data-terminal='0']"); }
    if (!url || !active().length) return;
    function tick() {
      getJson(url)
        .then(function (page) {
          (page.results || page || []).forEach(function (job) {
            var row = table.querySelector("tr[data-job='" + job.id + "']");
            if (!row) return;
            var value = job.status === "SUCCEEDED" || job.status === "PARTIAL" ? 100 : pct(job.progress);
            var badge = row.querySelector("[data-field=status]");
            var bar = row.querySelector("[data-field=progress]");
            var text = row.querySelector("[data-field=percent]");
            if (badge) { badge.textContent = statusLabel(job.status); badge.className = "badge status-" + job.status.toLowerCase(); }
            if (bar) { bar.value = value; bar.textContent = value + "%"; }
            if (text) text.textContent = value + "%";
            row.setAttribute("data-terminal", isTerminal(job.status) ? "1" : "0");
          });
          if (active().length) setTimeout(tick, 2000);
        })
        .catch(function () { setTimeout(tick, 5000); });
    }
    setTimeout(tick, 1000);
  }

  function copyButtons() {
    if (!navigator.clipboard) return;  // the buttons stay hidden
    document.querySelectorAll("[data-copy]:not([data-bound])").forEach(function (button) {
      button.setAttribute("data-bound", "1");
      button.hidden = false;
      button.addEventListener("click", function () {
        var target = document.querySelector(button.getAttribute("data-copy"));
        if (!target) return;
        var text = "value" in target && target.value ? target.value : target.textContent;
        navigator.clipboard.writeText(text.trim()).then(function () {
          var old = button.textContent; button.textContent = "Copied";
          setTimeout(function () { button.textContent = old; }, 1500);
        });
      });
    });
  }

  // Pickers: the checkbox groups post without JS; this adds a filter, select
  // all/none (of what the filter shows) and keeps the "N selected: ..." line current.
  function picker(box) {
    var tools = box.querySelector("[data-picker-tools]");
    var filter = box.querySelector("[data-picker-filter]");
    var count = box.querySelector("[data-picked-count]");
    var list = box.querySelector("[data-picked-list]");
    var empty = box.querySelector("[data-picker-empty]");
    var options = [].slice.call(box.querySelectorAll("[data-picker-option]"));
    function boxes(visibleOnly, scope) {
      return [].slice.call((scope || box).querySelectorAll("[data-picker-option]"))
        .filter(function (li) { return !visibleOnly || !li.hidden; })
        .map(function (li) { return li.querySelector("input[type=checkbox]"); });
    }
    function summary() {
      var picked = boxes(false).filter(function (c) { return c.checked; });
      count.textContent = picked.length + " selected";
      list.textContent = picked.map(function (c) {
        return c.nextElementSibling.querySelector(".opt-label").textContent;
      }).join(", ");
      if (list.previousSibling && list.previousSibling.nodeType === 3) list.previousSibling.remove();
      if (picked.length) count.insertAdjacentText("afterend", ": ");
    }
    function applyFilter() {
      var words = filter.value.toLowerCase().split(/\s+/).filter(Boolean);
      var shown = 0;
      options.forEach(function (li) {
        var text = li.getAttribute("data-search");
        var match = words.every(function (w) { return text.indexOf(w) >= 0; });
        li.hidden = !match;
        if (match) shown += 1;
      });
      box.querySelectorAll("[data-picker-group]").forEach(function (group) {
        group.hidden = !group.querySelector("[data-picker-option]:not([hidden])");
      });
      empty.hidden = shown > 0;
    }
    function setAll(value, scope) {
      boxes(true, scope).forEach(function (c) { c.checked = value; });
      summary();
    }
    tools.hidden = false;
    filter.addEventListener("input", applyFilter);
    filter.addEventListener("keydown", function (e) { if (e.key === "Enter") e.preventDefault(); });
    box.querySelector("[data-pick=all]").addEventListener("click", function () { setAll(true); });
    box.querySelector("[data-pick=none]").addEventListener("click", function () { setAll(false); });
    box.querySelectorAll("[data-picker-group]").forEach(function (group) {
      var button = group.querySelector("[data-pick-group]");
      var name = group.querySelector("legend").firstChild.textContent.trim();
      button.hidden = false;
      function label() {
        var all = boxes(true, group).every(function (c) { return c.checked; });
        button.textContent = all ? "none" : "all";
        button.setAttribute("aria-label", (all ? "Select none of " : "Select all of ") + name);
      }
      button.addEventListener("click", function () {
        setAll(button.textContent === "all", group); label();
      });
      group.addEventListener("change", label);
      label();
    });
    box.addEventListener("change", summary);
  }

  // Wide tables: say so in words when the table is wider than its box.
  function scrollHints() {
    document.querySelectorAll(".table-scroll").forEach(function (wrap) {
      var hint = wrap.previousElementSibling;
      var has = hint && hint.classList.contains("scroll-hint");
      var wide = wrap.scrollWidth > wrap.clientWidth + 2;
      if (wide && !has) {
        hint = document.createElement("p");
        hint.className = "scroll-hint";
        hint.textContent = "Scroll sideways for more columns";
        wrap.parentNode.insertBefore(hint, wrap);
      } else if (!wide && has) {
        hint.remove();
      }
    });
  }

  // Forms that delete ask first.
  function confirmForms() {
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (e) {
        if (!window.confirm(form.getAttribute("data-confirm"))) e.preventDefault();
      });
    });
  }

  // Charts: every mark with a <title> shows its value on hover and on keyboard focus.
  var tip = null;
  function chartTips(root) {
    if (!tip) {
      tip = document.createElement("div");
      tip.id = "chart-tip"; tip.className = "chart-tip"; tip.hidden = true;
      tip.setAttribute("role", "status"); tip.setAttribute("aria-live", "polite");
      document.body.appendChild(tip);
    }
    (root || document).querySelectorAll("svg.chart").forEach(function (svg) {
      [].slice.call(svg.querySelectorAll("rect, circle, path")).forEach(function (mark) {
        var title = mark.querySelector(":scope > title");
        if (!title || mark.hasAttribute("data-tip")) return;
        mark.setAttribute("data-tip", title.textContent);
        mark.setAttribute("tabindex", "0");
        mark.classList.add("has-tip");
        function show() {
          var box = mark.getBoundingClientRect();
          tip.textContent = mark.getAttribute("data-tip");
          tip.hidden = false;
          var left = Math.min(Math.max(box.left + box.width / 2 - tip.offsetWidth / 2, 4),
            document.documentElement.clientWidth - tip.offsetWidth - 4);
          var top = box.top - tip.offsetHeight - 8;
          tip.style.left = left + "px";
          tip.style.top = (top < 4 ? box.bottom + 8 : top) + "px";
        }
        function hide() { tip.hidden = true; }
        mark.addEventListener("mouseenter", show);
        mark.addEventListener("focus", show);
        mark.addEventListener("mouseleave", hide);
        mark.addEventListener("blur", hide);
      });
    });
  }

  // Sliders for context and concurrency: plan again on the server, swap the results.
  function replan() {
    var box = document.querySelector("[data-replan]");
    var results = document.getElementById("results");
    var link = document.getElementById("share-link");
    if (!box || !results || !link || !window.fetch || !window.DOMParser) return;
    var status = document.getElementById("replan-status");
    var sliders = [].slice.call(box.querySelectorAll("input[type=range]"));
    var timer = null, seq = 0;
    sliders.forEach(function (slider) {
      var values = slider.getAttribute("data-values").split(",").map(Number);
      var current = Number(slider.getAttribute("data-current"));
      if (values.indexOf(current) < 0) { values.push(current); values.sort(function (a, b) { return a - b; }); }
      slider.max = String(values.length - 1);
      slider.value = String(values.indexOf(current));
      slider._values = values;
      function label() {
        var value = values[Number(slider.value)];
        document.getElementById(slider.getAttribute("data-output")).textContent = value.toLocaleString("en-US");
        slider.setAttribute("aria-valuetext", value.toLocaleString("en-US"));
      }
      label();
      slider.addEventListener("input", function () { label(); clearTimeout(timer); timer = setTimeout(go, 300); });
    });
    function go() {
      var url = new URL(link.href, window.location.href);
      sliders.forEach(function (slider) {
        url.searchParams.set(slider.getAttribute("data-param"), String(slider._values[Number(slider.value)]));
      });
      var mine = ++seq;
      status.textContent = "Planning…";
      fetch(url.toString(), { credentials: "same-origin" })
        .then(function (r) { return r.text(); })
        .then(function (html) {
          if (mine !== seq) return;
          var doc = new DOMParser().parseFromString(html, "text/html");
          var fresh = doc.getElementById("results");
          if (!fresh) {
            var err = doc.querySelector(".form-errors, .field .error");
            status.textContent = err ? err.textContent.trim() : "These values cannot be planned.";
            return;
          }
          results.innerHTML = fresh.innerHTML;
          link = document.getElementById("share-link");
          history.replaceState(null, "", url.pathname + url.search);
          sliders.forEach(function (slider) {
            var field = document.getElementById("id_" + slider.getAttribute("data-param"));
            if (field) field.value = String(slider._values[Number(slider.value)]);
          });
          status.textContent = "Planned again for " + document.getElementById("replan-context-out").textContent +
            " tokens and " + document.getElementById("replan-concurrency-out").textContent + " concurrent sequences.";
          chartTips(results); scrollHints(); copyButtons();
        })
        .catch(function () { status.textContent = "Could not reach the server; try again."; });
    }
    box.hidden = false;
  }

  // Uploads: without JS the form posts the file in one request. With JS the file goes
  // through tus (resumable, in chunks): a dropped connection resumes where it stopped,
  // and so does choosing the same file again after closing the page.
  function resumableUploads() {
    var form = document.querySelector("[data-upload-form]");
    if (!form || !window.tus || !window.tus.isSupported) return;
    var wrap = form.querySelector("[data-upload-progress]");
    var bar = document.getElementById("upload-bar");
    var state = document.getElementById("upload-state");
    var input = form.querySelector("input[type=file]");
    var csrf = form.querySelector("input[name=csrfmiddlewaretoken]").value;
    var endpoint = form.getAttribute("data-tus-endpoint");
    function fail(message) {
      state.textContent = message;
      state.className = "error";
    }
    form.addEventListener("submit", function (e) {
      if (!input.files.length) return;  // the server says what is missing
      e.preventDefault();
      var file = input.files[0];
      wrap.hidden = false; state.className = "muted small";
      state.textContent = "Starting…";
      var upload = new window.tus.Upload(file, {
        endpoint: endpoint,
        chunkSize: 8 * 1024 * 1024,
        retryDelays: [0, 1000, 3000, 5000, 10000, 20000],
        headers: { "X-CSRFToken": csrf },
        metadata: { filename: file.name },
        removeFingerprintOnSuccess: true,
        onProgress: function (sent, total) {
          var value = Math.floor(sent / total * 100);
          bar.value = value; bar.textContent = value + "%";
          state.textContent = value + "% · " + (sent / 1e6).toFixed(1) + " of " + (total / 1e6).toFixed(1) + " MB sent";
        },
        onShouldRetry: function (err, attempt) {
          state.textContent = "Connection lost; resuming (try " + (attempt + 1) + ")…";
          var status = err.originalResponse ? err.originalResponse.getStatus() : 0;
          return !(status >= 400 && status < 500 && status !== 409 && status !== 423);
        },
        onError: function (err) {
          var body = err.originalResponse ? err.originalResponse.getBody() : "";
          var detail = "";
          try { detail = JSON.parse(body).detail; } catch (x) { /* not JSON */ }
          fail(detail || "The upload stopped: " + (err.message || err) + ". Choose the file again to resume.");
        },
        onSuccess: function () {
          state.textContent = "Checking the file…";
          fetch(upload.url, { credentials: "same-origin", headers: { Accept: "application/json" } })
            .then(function (r) { return r.json(); })
            .then(function (result) {
              if (result.upload_id) { window.location.assign(form.action + "?uploaded=" + result.upload_id); }
              else { fail(result.error || "The file was not accepted."); }
            });
        }
      });
      upload.findPreviousUploads().then(function (previous) {
        if (previous.length) { upload.resumeFromPreviousUpload(previous[0]); state.textContent = "Resuming an earlier upload of this file…"; }
        upload.start();
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    resumableUploads();
    chartTips();
    replan();
    document.querySelectorAll("[data-picker]").forEach(picker);
    scrollHints();
    window.addEventListener("resize", scrollHints);
    confirmForms();
    var live = document.querySelector("[data-live-job]");
    if (live) followJob(live);
    tickElapsed();
    notifyButton();
    var list = document.querySelector("[data-live-jobs]");
    if (list) followJobList(list);
    copyButtons();
  });
})();
