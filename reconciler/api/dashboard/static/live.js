// Live updates for the dashboard: the server says, as server-sent events on /live, that
// something operators see may have changed; each live part of the page (an element with
// hx-trigger="fleet-changed from:body") then fetches itself again through htmx. No reload.
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
  source.addEventListener("change", function () {
    if (window.htmx) {
      window.htmx.trigger(document.body, "fleet-changed");
    }
  });
})();
