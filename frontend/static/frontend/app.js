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
          if (log && job.log && job.log.length) log.textContent = job.log.slice(-40).join("\n");
          if (isTerminal(job.status)) { setTimeout(function () { window.location.reload(); }, 600); }
          else { setTimeout(tick, 1000); }
        })
        .catch(function () { setTimeout(tick, 3000); });
    }
    tick();
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
    document.querySelectorAll("[data-copy]").forEach(function (button) {
      button.hidden = false;
      button.addEventListener("click", function () {
        var target = document.querySelector(button.getAttribute("data-copy"));
        if (!target) return;
        navigator.clipboard.writeText(target.textContent.trim()).then(function () {
          var old = button.textContent; button.textContent = "Copied";
          setTimeout(function () { button.textContent = old; }, 1500);
        });
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var live = document.querySelector("[data-live-job]");
    if (live) followJob(live);
    var list = document.querySelector("[data-live-jobs]");
    if (list) followJobList(list);
    copyButtons();
  });
})();
