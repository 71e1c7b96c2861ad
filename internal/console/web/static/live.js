// Live updates for the console's pages. Everything works without this script; with it, the
// dashboard's counters refresh every 15 seconds and a running task's page reloads itself.
"use strict";
(function () {
  var counters = document.querySelectorAll("[data-live]");
  if (counters.length > 0) {
    setInterval(function () {
      fetch("/live", { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (data) {
          if (!data) return;
          counters.forEach(function (el) {
            var v = data[el.getAttribute("data-live")];
            if (v !== undefined) el.textContent = String(v);
          });
        })
        .catch(function () {});
    }, 15000);
  }
  var refresh = document.querySelector("[data-refresh]");
  if (refresh) {
    var seconds = parseInt(refresh.getAttribute("data-refresh"), 10) || 5;
    setTimeout(function () { window.location.reload(); }, seconds * 1000);
  }
})();
