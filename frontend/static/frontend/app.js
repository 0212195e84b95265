// Progressive enhancement only: every page works without this file.
(function () {
  "use strict";

  function pct(fraction) { return Math.round((fraction || 0) * 100); }

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
    function tick() {
      fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
        .then(function (job) {
          var value = job.status === "SUCCEEDED" ? 100 : pct(job.progress);
          bar.value = value; label.textContent = value + "%";
          if (job.stage) stage.textContent = job.stage;
          status.textContent = job.status.charAt(0) + job.status.slice(1).toLowerCase().replace("_", " ");
          status.className = "badge status-" + job.status.toLowerCase();
          if (log && job.log && job.log.length) log.textContent = job.log.slice(-40).join("\n");
          var terminal = ["SUCCEEDED", "FAILED", "CANCELLED", "TIMED_OUT"].indexOf(job.status) >= 0;
          if (terminal) { setTimeout(function () { window.location.reload(); }, 600); }
          else { setTimeout(tick, 1000); }
        })
        .catch(function () { setTimeout(tick, 3000); });
    }
    tick();
  }

  function copyButtons() {
    document.querySelectorAll("[data-copy]").forEach(function (button) {
      button.addEventListener("click", function () {
        var target = document.querySelector(button.getAttribute("data-copy"));
        if (!target || !navigator.clipboard) return;
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
    copyButtons();
  });
})();
