// The live console (console.md): a WebSocket from the reader's browser to a reference
// server, its frames listed as they arrive, subscriptions as checkboxes, and the limits the
// server reports. Loaded on every page; does nothing where the console is absent.
(function () {
  "use strict";

  var SUBSCRIPTIONS = ["agents", "coordination", "tasks", "system", "alerts", "project_index"];
  // Keeps the page light under demo traffic: older frames are dropped from the list.
  var MAX_FRAMES = 200;

  function $(id) {
    return document.getElementById(id);
  }


  function init() {
    if (!$("hive-console")) return;
    var socket = null;
    var sent = 0;
    var boxes = {};
    var fieldset = $("hive-subscriptions");
    // The address form is shared with the health dashboard (assets/address.js).
    $("hive-url").value = HiveAddress.initial();
    HiveAddress.carry($("hive-dashboard-link"), $("hive-url").value);

    SUBSCRIPTIONS.forEach(function (name) {
      var label = document.createElement("label");
      var box = document.createElement("input");
      box.type = "checkbox";
      box.value = name;
      box.id = "hive-sub-" + name;
      box.addEventListener("change", function () {
        send({ type: box.checked ? "subscribe" : "unsubscribe", subscriptions: [name] });
      });
      label.appendChild(box);
      label.appendChild(document.createTextNode(" " + name));
      fieldset.appendChild(label);
      boxes[name] = box;
    });

    function status(text) {
      $("hive-status").textContent = text;
    }

    function send(frame) {
      if (!socket || socket.readyState !== WebSocket.OPEN) return;
      sent += 1;
      frame.correlation_id = "console-" + sent;
      socket.send(JSON.stringify(frame));
      show({ type: "→ " + frame.type }, JSON.stringify(frame));
    }

    function show(frame, text) {
      var item = document.createElement("li");
      item.dataset.kind = frame.type;
      var title = document.createElement("strong");
      var parts = [frame.type];
      if (frame.subscription) parts.push(frame.subscription);
      if (frame.seq) parts.push("#" + frame.seq);
      title.textContent = parts.join(" ") + " ";
      var body = document.createElement("code");
      body.textContent = text;
      item.appendChild(title);
      item.appendChild(body);
      var list = $("hive-frames");
      list.insertBefore(item, list.firstChild);
      while (list.children.length > MAX_FRAMES) list.removeChild(list.lastChild);
    }

    function showSubscriptions(names) {
      SUBSCRIPTIONS.forEach(function (name) {
        boxes[name].checked = names.indexOf(name) >= 0;
      });
    }

    function showLimits(wsUrl) {
      var table = $("hive-limits");
      fetch(HiveAddress.endpoint(wsUrl, "/api/dashboard/websocket/limits"))
        .then(function (response) {
          if (!response.ok) throw new Error("HTTP " + response.status);
          return response.json();
        })
        .then(function (limits) {
          var body = document.createElement("tbody");
          Object.keys(limits).forEach(function (key) {
            var row = body.insertRow();
            row.insertCell().textContent = key;
            row.insertCell().textContent = String(limits[key]);
          });
          table.replaceChildren(body);
        })
        .catch(function (error) {
          table.replaceChildren();
          table.insertRow().insertCell().textContent = "limits unavailable: " + error.message;
        });
    }

    function setConnected(connected) {
      $("hive-connect").disabled = connected;
      $("hive-disconnect").disabled = !connected;
      $("hive-ping").disabled = !connected;
      fieldset.disabled = !connected;
    }

    $("hive-connect-form").addEventListener("submit", function (event) {
      event.preventDefault();
      var url = $("hive-url").value.trim();
      try {
        socket = new WebSocket(url);
      } catch (error) {
        status("invalid address: " + error.message);
        return;
      }
      status("connecting to " + url);
      HiveAddress.remember(url);
      HiveAddress.carry($("hive-dashboard-link"), url);
      setConnected(true);
      socket.onopen = function () {
        status("connected");
        showLimits(url);
      };
      socket.onmessage = function (event) {
        var frame;
        try {
          frame = JSON.parse(event.data);
        } catch (error) {
          frame = { type: "unreadable" };
        }
        if (frame.type === "connection_established" || frame.type === "subscription_updated") {
          showSubscriptions(frame.subscriptions || []);
        }
        show(frame, event.data);
      };
      socket.onclose = function (event) {
        status("closed (code " + event.code + (event.reason ? ", " + event.reason : "") + ")");
        setConnected(false);
        socket = null;
      };
    });

    $("hive-disconnect").addEventListener("click", function () {
      if (socket) socket.close(1000, "closed from the console");
    });
    $("hive-ping").addEventListener("click", function () {
      send({ type: "ping" });
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
