// Keeps a page current without reloading it: asks the same URL for its live part (X-Console-Fragment) with
// the last ETag, and replaces the part only when it changed, keeping the scroll position and which <details>
// the reader opened or closed. A signed-out session (401) reloads to the login page.
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (!live) { return; }
  var interval = Math.max(1, Number(live.dataset.interval) || 5) * 1000;
  var etag = live.dataset.etag || "";
  var stamp = document.getElementById("updated");

  function detailsState() {
    var state = {};
    live.querySelectorAll("details[id]").forEach(function (d) { state[d.id] = d.open; });
    return state;
  }

  function tick() {
    fetch(location.pathname + location.search, {
      headers: { "X-Console-Fragment": "1", "If-None-Match": etag },
      credentials: "same-origin", cache: "no-store"
    }).then(function (resp) {
      if (resp.status === 401) { location.reload(); return null; }
      if (resp.status !== 200) { return null; }
      etag = resp.headers.get("ETag") || etag;
      return resp.text();
    }).then(function (html) {
      if (html === null || html === undefined) { return; }
      var state = detailsState(), x = window.scrollX, y = window.scrollY;
      live.innerHTML = html;
      Object.keys(state).forEach(function (id) {
        var d = document.getElementById(id);
        if (d) { d.open = state[id]; }
      });
      window.scrollTo(x, y);
      if (stamp) { stamp.textContent = "updated " + new Date().toLocaleTimeString(); }
    }).catch(function () {
      if (stamp) { stamp.textContent = "service unreachable, retrying"; }
    }).then(function () { setTimeout(tick, interval); });
  }
  setTimeout(tick, interval);
})();
