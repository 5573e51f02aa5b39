// Keeps a page current without reloading it: asks the page's URL for its live part (X-Console-Fragment) with
// the last ETag, and replaces the part only when it changed, keeping the scroll position and which <details>
// the reader opened or closed. A signed-out session (401) reloads to the login page.
// While a person edits a form of the page (a field focused, or changed and not yet saved), nothing is
// replaced: what they typed or chose stays until they save it.
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (!live) { return; }
  var interval = Math.max(1, Number(live.dataset.interval) || 5) * 1000;
  var etag = live.dataset.etag || "";
  // a page that answered a form's POST names its own URL: the POST's is not one to ask again
  var src = live.dataset.src || (location.pathname + location.search);
  var stamp = document.getElementById("updated");

  function detailsState() {
    var state = {};
    live.querySelectorAll("details[id]").forEach(function (d) { state[d.id] = d.open; });
    return state;
  }

  function changed(el) {
    if (el.type === "hidden" || el.type === "submit") { return false; }
    if (el.tagName === "SELECT") {
      return Array.prototype.some.call(el.options, function (o) { return o.selected !== o.defaultSelected; });
    }
    if (el.type === "checkbox" || el.type === "radio") { return el.checked !== el.defaultChecked; }
    return el.value !== el.defaultValue;
  }

  function editing() {
    var a = document.activeElement;
    if (a && live.contains(a) && /^(INPUT|SELECT|TEXTAREA)$/.test(a.tagName)) { return true; }
    return Array.prototype.some.call(live.querySelectorAll("input, select, textarea"), changed);
  }

  function tick() {
    if (editing()) {
      if (stamp) { stamp.textContent = "paused while you edit"; }
      setTimeout(tick, interval);
      return;
    }
    fetch(src, {
      headers: { "X-Console-Fragment": "1", "If-None-Match": etag },
      credentials: "same-origin", cache: "no-store"
    }).then(function (resp) {
      if (resp.status === 401) { location.reload(); return null; }
      if (resp.status !== 200) { return null; }
      etag = resp.headers.get("ETag") || etag;
      return resp.text();
    }).then(function (html) {
      if (html === null || html === undefined || editing()) { return; }
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
