// Progressive enhancement only: every page works without this file.
(function () {
  "use strict";

  var TERMINAL = ["SUCCEEDED", "FAILED", "CANCELLED", "TIMED_OUT"];

  function pct(fraction) { return Math.round((fraction || 0) * 100); }
  function isTerminal(status) { return TERMINAL.indexOf(status) >= 0; }
  function statusLabel(status) {
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
          var value = job.status === "SUCCEEDED" ? 100 : pct(job.progress);
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
            var value = job.status === "SUCCEEDED" ? 100 : pct(job.progress);
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

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-picker]").forEach(picker);
    scrollHints();
    window.addEventListener("resize", scrollHints);
    confirmForms();
    var live = document.querySelector("[data-live-job]");
    if (live) followJob(live);
    var list = document.querySelector("[data-live-jobs]");
    if (list) followJobList(list);
    copyButtons();
  });
})();
