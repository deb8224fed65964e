// Live updates for the dashboard: the server says, as server-sent events on /live, that
// something operators see may have changed; each live part of the page (an element with
// data-live="its address") then fetches itself again through htmx. No reload.
(function () {
  "use strict";
  var status = document.getElementById("live-status");
  if (!status || !window.EventSource) {
    return;
  }
  // the stamp the page was rendered at: a change since then is announced at once
  var since = document.body.getAttribute("data-stamp") || "";
  var source = new EventSource("/live?since=" + encodeURIComponent(since));
  source.addEventListener("open", function () {
    status.textContent = "Live updates: on";
  });
  source.addEventListener("error", function () {
    status.textContent = "Live updates: reconnecting";
  });
  // At most one refresh every QUIET ms, and no change lost: one that comes inside that
  // time, or while the parts are still on their way (perhaps read before it), is shown by
  // the refresh after.
  var QUIET = 2000;
  var last = 0;
  var due = null;
  var busy = false;
  var waiting = false;
  function schedule() {
    if (due === null) {
      due = setTimeout(refresh, Math.max(0, last + QUIET - Date.now()));
    }
  }
  function refresh() {
    due = null;
    if (busy) {
      waiting = true;
      return;
    }
    var parts = document.querySelectorAll("[data-live]");
    if (!window.htmx || parts.length === 0) {
      return;
    }
    last = Date.now();
    busy = true;
    var fetches = Array.prototype.map.call(parts, function (part) {
      return window.htmx
        .ajax("GET", part.getAttribute("data-live"), { source: part, target: part, swap: "outerHTML" })
        .catch(function () {}); // not answered: the next change fetches it again
    });
    Promise.all(fetches).then(function () {
      busy = false;
      if (waiting) {
        waiting = false;
        schedule();
      }
    });
  }
  source.addEventListener("change", schedule);
})();
