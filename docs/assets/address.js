// The server address the live console (console.md) and the health dashboard
// (dashboard/index.html) share: the same form field, filled from `?url=` or from what this
// browser last used on either page, and the REST endpoints derived from it.
(function () {
  "use strict";

  var KEY = "hive-server-address";
  var DEFAULT = "ws://127.0.0.1:8000/api/dashboard/ws/dashboard";

  function stored() {
    // Storage throws in some private modes and sandboxed frames: the default is fine there.
    try {
      return window.localStorage.getItem(KEY);
    } catch (error) {
      return null;
    }
  }

  // The address a page starts with: `?url=` (a link from the other page), then the last one
  // used in this browser, then the default of a server started with no options.
  function initial() {
    return new URLSearchParams(window.location.search).get("url") || stored() || DEFAULT;
  }

  function remember(address) {
    try {
      window.localStorage.setItem(KEY, address);
    } catch (error) {
      // Not remembered: the next visit starts from `?url=` or the default instead.
    }
  }

  // `path` on the server behind a WebSocket (or HTTP) address: ws -> http, wss -> https.
  function endpoint(address, path) {
    var url = new URL(address);
    url.protocol = url.protocol === "wss:" || url.protocol === "https:" ? "https:" : "http:";
    url.pathname = path;
    url.search = "";
    url.hash = "";
    return url.toString();
  }

  // Point `anchor` at the other page with this address, so a click keeps the server.
  function carry(anchor, address) {
    var url = new URL(anchor.getAttribute("href"), window.location.href);
    url.searchParams.set("url", address);
    anchor.href = url.toString();
  }

  window.HiveAddress = {
    DEFAULT: DEFAULT,
    initial: initial,
    remember: remember,
    endpoint: endpoint,
    carry: carry,
  };
})();
