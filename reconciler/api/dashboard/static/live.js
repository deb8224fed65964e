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
  // An operator's own request for a live part (a search, another page of the list) wins:
  // both replace the same element, and the answer that came second would find it gone. A
  // refresh of that element still on its way is not shown (the operator's answer is newer),
  // and none starts until that answer is in: it then asks at the address the answer gives.
  var asked = 0;
  function own(event) {
    var target = event.detail.target;
    return !event.detail.elt.hasAttribute("data-live") && target && target.hasAttribute("data-live");
  }
  document.body.addEventListener("htmx:beforeRequest", function (event) {
    if (own(event)) {
      asked += 1;
      event.detail.target.superseded = true;
    }
  });
  document.body.addEventListener("htmx:afterRequest", function (event) {
    if (own(event)) {
      asked = Math.max(0, asked - 1);
    }
  });
  document.body.addEventListener("htmx:beforeSwap", function (event) {
    var config = event.detail.requestConfig; // the event's own elt is the target
    var elt = config && config.elt;
    if (elt && elt.superseded && elt.hasAttribute("data-live")) {
      event.detail.shouldSwap = false;
    }
  });
  // The answer to an operator's action ("Rollout paused by ada.") stays when the part it
  // came in is fetched again (the action itself moves the stamp): until the next action or
  // page, as a notice would on a reload-free page.
  function keep(notice, part) {
    var fresh = part.id && document.getElementById(part.id);
    if (!notice || !fresh || fresh === part || fresh.querySelector(":scope > .notice")) {
      return;
    }
    var before = notice.previousElementSibling;
    var at = before && before.id ? fresh.querySelector(":scope > #" + CSS.escape(before.id)) : null;
    if (at) {
      at.after(notice);
    } else {
      fresh.prepend(notice);
    }
  }
  function refresh() {
    due = null;
    if (busy) {
      waiting = true;
      return;
    }
    if (asked > 0) {
      due = setTimeout(refresh, 100);
      return;
    }
    var parts = document.querySelectorAll("[data-live]");
    if (!window.htmx || parts.length === 0) {
      return;
    }
    last = Date.now();
    busy = true;
    var fetches = Array.prototype.map.call(parts, function (part) {
      var notice = part.querySelector(":scope > .notice");
      return window.htmx
        .ajax("GET", part.getAttribute("data-live"), { source: part, target: part, swap: "outerHTML" })
        .then(function () {
          keep(notice, part);
        })
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
