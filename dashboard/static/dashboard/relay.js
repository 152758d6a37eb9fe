// Relay dashboard behaviour. No inline scripts anywhere (the CSP forbids them): pages mark
// elements with data attributes and this file gives them behaviour.
//   <time datetime="...">      shown in the browser's time zone (or UTC) + "3 min ago"
//   #live                       the region refreshed every N seconds (picker in the header),
//                               paused while the tab is hidden or a form in it has focus
//   form[data-confirm]          asks before submitting (destructive actions)
//   input[data-select-all]      toggles every input[name=ids] on the page
(function () {
  "use strict";
  var store = window.localStorage;
  var selected = new Set();

  function useUtc() { return store.getItem("relay.utc") === "1"; }

  function relative(date) {
    var s = Math.round((Date.now() - date.getTime()) / 1000);
    var future = s < 0; s = Math.abs(s);
    var text;
    if (s < 45) text = s + " s";
    else if (s < 2700) text = Math.round(s / 60) + " min";
    else if (s < 129600) text = Math.round(s / 3600) + " h";
    else text = Math.round(s / 86400) + " d";
    return future ? "in " + text : text + " ago";
  }

  function pad(n) { return (n < 10 ? "0" : "") + n; }

  function format(date) {
    if (useUtc()) {
      return date.getUTCFullYear() + "-" + pad(date.getUTCMonth() + 1) + "-" + pad(date.getUTCDate()) +
        " " + pad(date.getUTCHours()) + ":" + pad(date.getUTCMinutes()) + ":" + pad(date.getUTCSeconds()) + " UTC";
    }
    return date.getFullYear() + "-" + pad(date.getMonth() + 1) + "-" + pad(date.getDate()) +
      " " + pad(date.getHours()) + ":" + pad(date.getMinutes()) + ":" + pad(date.getSeconds());
  }

  function localiseTimes(root) {
    (root || document).querySelectorAll("time[datetime]").forEach(function (el) {
      var date = new Date(el.getAttribute("datetime"));
      if (isNaN(date)) return;
      el.textContent = format(date) + " (" + relative(date) + ")";
    });
  }

  function restoreSelection(root) {
    (root || document).querySelectorAll("input[name=ids]").forEach(function (box) {
      box.checked = selected.has(box.value);
    });
  }

  function refresh() {
    var live = document.getElementById("live");
    if (!live || document.hidden || !window.htmx) return;
    if (live.contains(document.activeElement) && document.activeElement.form) return;
    window.htmx.ajax("GET", window.location.href, {target: "#live", select: "#live", swap: "outerHTML"});
  }

  var timer = null;
  function schedule() {
    if (timer) clearInterval(timer);
    var seconds = parseInt(store.getItem("relay.refresh") || "5", 10);
    var picker = document.getElementById("refresh-interval");
    if (picker) picker.value = String(seconds);
    if (seconds > 0) timer = setInterval(refresh, seconds * 1000);
  }

  document.addEventListener("DOMContentLoaded", function () {
    var utc = document.getElementById("utc-toggle");
    if (utc) {
      utc.checked = useUtc();
      utc.addEventListener("change", function () {
        store.setItem("relay.utc", utc.checked ? "1" : "0");
        localiseTimes();
      });
    }
    var picker = document.getElementById("refresh-interval");
    if (picker) picker.addEventListener("change", function () {
      store.setItem("relay.refresh", picker.value);
      schedule();
    });
    document.querySelectorAll("input[name=ids]:checked").forEach(function (b) { selected.add(b.value); });
    localiseTimes();
    schedule();
    setInterval(function () { localiseTimes(); }, 30000);
  });

  document.addEventListener("visibilitychange", function () { if (!document.hidden) refresh(); });

  document.addEventListener("change", function (event) {
    var el = event.target;
    if (el.matches("input[name=ids]")) {
      if (el.checked) selected.add(el.value); else selected.delete(el.value);
    } else if (el.matches("input[data-select-all]")) {
      document.querySelectorAll("input[name=ids]").forEach(function (box) {
        box.checked = el.checked;
        if (el.checked) selected.add(box.value); else selected.delete(box.value);
      });
    }
  });

  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) event.preventDefault();
  }, true);

  // A fresh copy without a live region (say a job that has just finished, whose page stops
  // refreshing) is loaded whole rather than swapping nothing in place of the region.
  document.addEventListener("htmx:beforeSwap", function (event) {
    var target = event.detail.target, xhr = event.detail.xhr;
    if (!target || target.id !== "live" || !xhr || xhr.status !== 200) return;
    var fresh = new DOMParser().parseFromString(xhr.responseText, "text/html");
    if (!fresh.getElementById("live")) {
      event.detail.shouldSwap = false;
      window.location.reload();
    }
  });

  document.addEventListener("htmx:afterSwap", function (event) {
    localiseTimes(event.target.parentNode || document);
    restoreSelection(document);
  });
})();
