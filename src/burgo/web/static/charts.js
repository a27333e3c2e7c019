// The entity page's charts: each numeric attribute's history (raw or aggregated) drawn with uPlot.
(function () {
  "use strict";
  var plots = [];
  function draw(figure, series, labels) {
    var box = figure.querySelector(".plot");
    box.textContent = "";
    figure.dataset.points = String(series.t.length);
    if (!series.t.length) {
      var empty = document.createElement("p");
      empty.className = "empty";
      empty.textContent = labels.empty;
      box.appendChild(empty);
      return;
    }
    var width = Math.max(240, box.clientWidth || figure.clientWidth - 16);
    var options = {
      width: width,
      height: 220,
      legend: { show: true },
      scales: { x: { time: true } },
      series: [{}, { label: series.aggregated ? labels.avg : figure.dataset.unit || "value", stroke: "#1f6f8b", width: 2 }],
    };
    var data = [series.t, series.v];
    if (series.aggregated) {
      options.series.push({ label: labels.min, stroke: "#8fb8c9", width: 1 });
      options.series.push({ label: labels.max, stroke: "#d0342c", width: 1 });
      data.push(series.min, series.max);
    }
    plots.push(new uPlot(options, data, box));
    figure.dataset.drawn = "true";
  }
  function load(section, period) {
    var labels = { empty: section.dataset.empty, avg: section.dataset.avg, min: section.dataset.min, max: section.dataset.max };
    plots.forEach(function (p) { p.destroy(); });
    plots = [];
    section.querySelectorAll("button[data-period]").forEach(function (b) {
      b.setAttribute("aria-pressed", b.dataset.period === period ? "true" : "false");
    });
    section.querySelectorAll("figure.chart").forEach(function (figure) {
      figure.dataset.drawn = "false";
      var url = new URL(section.dataset.history, window.location.href);
      url.searchParams.set("entity", section.dataset.entity);
      url.searchParams.set("attr", figure.dataset.attr);
      url.searchParams.set("period", period);
      figure.querySelectorAll("a[data-download]").forEach(function (a) {
        var target = new URL(a.href, window.location.href);
        target.searchParams.set("period", period);
        a.href = target.pathname + target.search;
      });
      fetch(url).then(function (r) { return r.json(); }).then(function (series) {
        draw(figure, series, labels);
      });
    });
  }
  function start() {
    var section = document.querySelector("section.charts");
    if (!section) { return; }
    var pressed = section.querySelector("button[aria-pressed='true']");
    section.querySelectorAll("button[data-period]").forEach(function (button) {
      button.addEventListener("click", function () { load(section, button.dataset.period); });
    });
    load(section, pressed ? pressed.dataset.period : "day");
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
