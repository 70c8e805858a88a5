// The health dashboard (dashboard/index.html): every 2 s, GET one server's Prometheus
// metrics from the reader's browser (its CORS setting allows this site, as for the live
// console's limits) and chart them with uPlot. Rates and latency quantiles come from the
// difference between two scrapes, as Prometheus' rate() and histogram_quantile() compute.
(function () {
  "use strict";

  var PERIOD_MS = 2000;
  // A scrape slower than this counts as failed, so one slow answer never overlaps the next.
  var TIMEOUT_MS = 1500;
  // Points kept per chart: 5 minutes at one scrape every 2 s.
  var WINDOW = 150;
  var METRICS_PATH = "/api/dashboard/metrics/websockets";
  var P = "leanvibe_ws_";
  var COLOURS = ["#3f51b5", "#e65100", "#2e7d32", "#c62828", "#6a1b9a", "#00838f", "#5d4037"];
  var SUBSCRIPTIONS = ["agents", "coordination", "tasks", "system", "alerts", "project_index"];

  // Each chart: its title, unit, and series; a series reads a gauge, the rate of a counter,
  // or a quantile of the latency histogram (names from docs/reference/metrics.md).
  var CHARTS = [
    { id: "connections", title: "Active connections", series: [{ label: "open", gauge: P + "active_connections" }] },
    { id: "deliveries", title: "Deliveries per second", series: [{ label: "frames sent/s", rate: P + "messages_sent_total" }] },
    { id: "inbound", title: "Inbound frames per second", series: [{ label: "frames received/s", rate: P + "messages_received_total" }] },
    {
      id: "drops",
      title: "Drops and cut-offs per second, by reason",
      series: [
        { label: "rate-limit drops", rate: P + "messages_dropped_rate_limit_total" },
        { label: "backpressure 1013", rate: P + "backpressure_disconnects_total" },
        { label: "flooding 1008", rate: P + "rate_limit_disconnects_total" },
        { label: "idle 1000", rate: P + "idle_disconnects_total" },
        { label: "auth 4401", rate: P + "auth_denied_total" },
        { label: "origin 4403", rate: P + "origin_denied_total" },
        { label: "send failures", rate: P + "messages_send_failures_total" },
      ],
    },
    {
      id: "latency",
      title: "Publish to send latency (ms)",
      series: [
        { label: "P50", quantile: 0.5 },
        { label: "P95", quantile: 0.95 },
      ],
    },
    {
      id: "subscribers",
      title: "Subscribers per subscription",
      series: SUBSCRIPTIONS.map(function (name) {
        return { label: name, gauge: P + "subscribers", labels: { subscription: name } };
      }),
    },
  ];
  var HISTOGRAM = P + "publish_to_send_seconds_bucket";

  function $(id) {
    return document.getElementById(id);
  }

  // Prometheus text exposition -> [{name, labels, value}]. Comments and blank lines skipped.
  function parse(text) {
    var samples = [];
    var line = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
    var pair = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
    text.split("\n").forEach(function (raw) {
      var found = line.exec(raw);
      if (!found || raw.charAt(0) === "#") return;
      var labels = {};
      var match;
      pair.lastIndex = 0;
      while ((match = pair.exec(found[2] || "")) !== null) {
        labels[match[1]] = match[2].replace(/\\n/g, "\n").replace(/\\(.)/g, "$1");
      }
      samples.push({ name: found[1], labels: labels, value: Number(found[3].replace("Inf", "Infinity")) });
    });
    return samples;
  }

  function matches(sample, name, labels) {
    if (sample.name !== name) return false;
    return Object.keys(labels || {}).every(function (key) {
      return sample.labels[key] === labels[key];
    });
  }

  // Sum of every sample of `name` carrying `labels`; null when the server exports none.
  function total(samples, name, labels) {
    var sum = null;
    samples.forEach(function (s) {
      if (matches(s, name, labels)) sum = (sum || 0) + s.value;
    });
    return sum;
  }

  // Per-second increase of a counter between two scrapes; a drop means the server
  // restarted, and then the new value is the increase (as Prometheus' rate() assumes).
  function rate(now, before, seconds) {
    if (now === null || before === null || seconds <= 0) return null;
    return (now >= before ? now - before : now) / seconds;
  }

  // Cumulative bucket counts [[le, count]] of the observations between two scrapes.
  function bucketDeltas(now, before) {
    var older = {};
    before.forEach(function (s) {
      if (s.name === HISTOGRAM) older[s.labels.le] = (older[s.labels.le] || 0) + s.value;
    });
    var newer = {};
    now.forEach(function (s) {
      if (s.name === HISTOGRAM) newer[s.labels.le] = (newer[s.labels.le] || 0) + s.value;
    });
    return Object.keys(newer)
      .map(function (le) {
        var delta = newer[le] - (older[le] || 0);
        return [Number(le.replace("Inf", "Infinity")), delta < 0 ? newer[le] : delta];
      })
      .sort(function (a, b) {
        return a[0] - b[0];
      });
  }

  // The q-quantile of cumulative buckets, interpolated linearly inside its bucket as
  // Prometheus' histogram_quantile() does; null without observations.
  function quantile(q, buckets) {
    if (!buckets.length) return null;
    var count = buckets[buckets.length - 1][1];
    if (!(count > 0)) return null;
    var rank = q * count;
    for (var i = 0; i < buckets.length; i++) {
      if (buckets[i][1] >= rank) {
        var upper = buckets[i][0];
        var lower = i > 0 ? buckets[i - 1][0] : 0;
        var below = i > 0 ? buckets[i - 1][1] : 0;
        // Above the highest finite bucket there is no upper bound: report that bucket's.
        if (upper === Infinity) return lower;
        if (buckets[i][1] === below) return upper;
        return lower + ((upper - lower) * (rank - below)) / (buckets[i][1] - below);
      }
    }
    return null;
  }

  function value(spec, scrape, previous) {
    if (spec.gauge) {
      var gauge = total(scrape.samples, spec.gauge, spec.labels);
      // A labelled gauge exports a child only once it was set: no `alerts` child is 0.
      var family = spec.labels && total(scrape.samples, spec.gauge) !== null;
      return gauge === null && family ? 0 : gauge;
    }
    if (!previous) return null;
    var seconds = (scrape.at - previous.at) / 1000;
    if (spec.rate) {
      return rate(total(scrape.samples, spec.rate), total(previous.samples, spec.rate), seconds);
    }
    var q = quantile(spec.quantile, bucketDeltas(scrape.samples, previous.samples));
    return q === null ? null : q * 1000;
  }

  function round(x) {
    return x === null ? "–" : String(Math.round(x * 100) / 100);
  }

  function Panel(chart, container) {
    var section = document.createElement("section");
    section.className = "hive-panel";
    section.dataset.chart = chart.id;
    section.dataset.points = "0";
    var title = document.createElement("h2");
    title.textContent = chart.title;
    var now = document.createElement("div");
    now.className = "hive-now";
    var plot = document.createElement("div");
    section.appendChild(title);
    section.appendChild(now);
    section.appendChild(plot);
    container.appendChild(section);
    this.chart = chart;
    this.section = section;
    this.now = now;
    this.data = [[]].concat(
      chart.series.map(function () {
        return [];
      })
    );
    this.plot = new uPlot(
      {
        width: Math.max(300, plot.clientWidth || section.clientWidth || 340),
        height: 180,
        scales: { x: { time: true }, y: { range: function (u, min, max) { return [0, Math.max(1, max)]; } } },
        series: [{}].concat(
          chart.series.map(function (spec, i) {
            return { label: spec.label, stroke: COLOURS[i % COLOURS.length], width: 2 };
          })
        ),
      },
      this.data,
      plot
    );
  }

  Panel.prototype.add = function (scrape, previous) {
    var chart = this.chart;
    var data = this.data;
    data[0].push(scrape.at / 1000);
    var shown = [];
    chart.series.forEach(function (spec, i) {
      var v = value(spec, scrape, previous);
      data[i + 1].push(v);
      shown.push(spec.label + " " + round(v));
    });
    if (data[0].length > WINDOW) {
      data.forEach(function (column) {
        column.shift();
      });
    }
    this.plot.setData(data);
    this.now.textContent = shown.join(" · ");
    this.section.dataset.points = String(data[0].length);
  };

  Panel.prototype.resize = function () {
    var width = this.section.clientWidth;
    if (width > 0) this.plot.setSize({ width: width, height: 180 });
  };

  function showBroker(up) {
    var box = $("hive-broker");
    var state = up === null ? "unknown" : up ? "up" : "down";
    if (box.dataset.state !== state) {
      box.dataset.state = state;
      box.dataset.since = new Date().toISOString();
    }
    var since = new Date(box.dataset.since).toLocaleTimeString();
    $("hive-broker-text").textContent =
      state === "up"
        ? "up: the broker is connected"
        : state === "down"
          ? "down since " + since + ": updates stop crossing instances"
          : "unknown: no metrics";
  }

  function showSubscribers(samples) {
    var body = document.createElement("tbody");
    samples.forEach(function (s) {
      if (s.name !== P + "subscribers") return;
      var row = body.insertRow();
      row.insertCell().textContent = s.labels.subscription;
      row.insertCell().textContent = String(s.value);
    });
    $("hive-subscribers").replaceChildren(body);
  }

  function init() {
    var form = $("hive-connect-form");
    if (!form || !$("hive-panels")) return;
    var input = $("hive-url");
    input.value = HiveAddress.initial();
    HiveAddress.carry($("hive-console-link"), input.value);
    var panels = CHARTS.map(function (chart) {
      return new Panel(chart, $("hive-panels"));
    });
    var timer = null;
    var watching = 0; // bumped on every Watch and Stop, so a late answer of an old run is dropped
    var previous = null;
    var painted = false;

    function status(text) {
      $("hive-status").textContent = text;
    }

    function scrape(url, run) {
      var controller = new AbortController();
      var abort = setTimeout(function () {
        controller.abort();
      }, TIMEOUT_MS);
      fetch(url, { signal: controller.signal, cache: "no-store" })
        .then(function (response) {
          if (!response.ok) throw new Error("HTTP " + response.status);
          return response.text();
        })
        .then(function (text) {
          if (run !== watching) return;
          var current = { at: Date.now(), samples: parse(text) };
          panels.forEach(function (panel) {
            panel.add(current, previous);
          });
          previous = current;
          var up = total(current.samples, P + "broker_up");
          // Only 1 is up and 0 down: absent, NaN (a gauge never set) or anything else is unknown.
          showBroker(up === 1 ? true : up === 0 ? false : null);
          showSubscribers(current.samples);
          status("watching " + url + " (last read " + new Date(current.at).toLocaleTimeString() + ")");
          if (!painted) {
            painted = true;
            performance.mark("hive-dashboard-first-charts");
          }
        })
        .catch(function (error) {
          if (run !== watching) return;
          previous = null;
          showBroker(null);
          status("metrics unavailable from " + url + ": " + error.message);
        })
        .finally(function () {
          clearTimeout(abort);
          if (run === watching) timer = setTimeout(scrape, PERIOD_MS, url, run);
        });
    }

    function start(address) {
      var url;
      try {
        url = HiveAddress.endpoint(address, METRICS_PATH);
      } catch (error) {
        status("invalid address: " + error.message);
        return;
      }
      HiveAddress.remember(address);
      HiveAddress.carry($("hive-console-link"), address);
      stop();
      watching += 1;
      $("hive-watch").disabled = true;
      $("hive-stop").disabled = false;
      status("reading " + url);
      scrape(url, watching);
    }

    function stop() {
      watching += 1;
      clearTimeout(timer);
      previous = null;
      $("hive-watch").disabled = false;
      $("hive-stop").disabled = true;
    }

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      start(input.value.trim());
    });
    $("hive-stop").addEventListener("click", function () {
      stop();
      status("stopped");
    });
    window.addEventListener("resize", function () {
      panels.forEach(function (panel) {
        panel.resize();
      });
    });
    // A link from the console (`?url=`) means "watch this server": start at once.
    if (new URLSearchParams(window.location.search).get("url")) start(input.value);
  }

  // The pure parts, for a reader's own checks in the browser's console (and the tests).
  window.HiveDashboard = { parse: parse, quantile: quantile, rate: rate };

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
