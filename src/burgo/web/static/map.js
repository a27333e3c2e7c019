// The town map: one Leaflet layer per vertical, a marker per located thing, coloured by state.
(function () {
  "use strict";
  var RAISE = { alert: 2000, warn: 1000 };
  function start() {
    var box = document.getElementById("map");
    var data = JSON.parse(document.getElementById("things").textContent);
    var map = L.map(box, { zoomControl: true, attributionControl: true });
    var tiles = box.dataset.tiles;
    if (tiles) {
      L.tileLayer(tiles, { maxZoom: 19, attribution: box.dataset.attribution || "" }).addTo(map);
    }
    var layers = {};
    var overlays = {};
    data.layers.forEach(function (layer) {
      layers[layer.id] = L.layerGroup().addTo(map);
    });
    var bounds = [];
    // Things at the same spot (a home's sensors, a school's classrooms) are fanned out around
    // it, so that each marker can be seen and tapped.
    var spots = {};
    data.things.forEach(function (thing) {
      var key = thing.lat + "," + thing.lon;
      spots[key] = (spots[key] || 0) + 1;
    });
    var placed = {};
    data.things.forEach(function (thing) {
      var key = thing.lat + "," + thing.lon;
      var anchor = [7, 7];
      if (spots[key] > 1) {
        var k = placed[key] = (placed[key] || 0) + 1;
        var angle = 2 * Math.PI * (k - 1) / spots[key];
        var radius = 8 + 2 * spots[key];
        anchor = [7 - Math.round(radius * Math.sin(angle)), 7 + Math.round(radius * Math.cos(angle))];
      }
      var icon = L.divIcon({
        className: "burgo-marker state-" + thing.state + " vertical-" + thing.vertical,
        iconSize: [14, 14],
        iconAnchor: anchor,
        popupAnchor: [7 - anchor[0], 7 - anchor[1] - 7],
      });
      // Problems are drawn above the rest, so that a crowded centre never hides them.
      var marker = L.marker([thing.lat, thing.lon], {
        icon: icon, title: thing.name, alt: thing.name, zIndexOffset: RAISE[thing.state] || 0,
      });
      var link = document.createElement("a");
      link.href = box.dataset.view.replace("?", encodeURI(thing.id) + "?").replace(/\/$/, "/" + encodeURI(thing.id));
      link.textContent = box.dataset.open + " " + thing.name;
      var popup = document.createElement("div");
      var title = document.createElement("strong");
      title.textContent = thing.name;
      popup.appendChild(title);
      popup.appendChild(document.createElement("br"));
      popup.appendChild(document.createTextNode(thing.type));
      popup.appendChild(document.createElement("br"));
      popup.appendChild(link);
      marker.bindPopup(popup);
      marker.getElement && marker.on("add", function () {
        var element = marker.getElement();
        if (element) { element.dataset.id = thing.id; }
      });
      marker.addTo(layers[thing.vertical] || layers.other);
      bounds.push([thing.lat, thing.lon]);
    });
    data.layers.forEach(function (layer) {
      var count = data.things.filter(function (t) { return t.vertical === layer.id; }).length;
      if (count || layer.id !== "other") { overlays[layer.label + " (" + count + ")"] = layers[layer.id]; }
    });
    L.control.layers(null, overlays, { collapsed: window.innerWidth < 700 }).addTo(map);
    if (bounds.length) {
      map.fitBounds(bounds, { padding: [24, 24], maxZoom: 16 });
    } else {
      map.setView([40.14, -7.5], 12);
    }
    box.dataset.markers = String(bounds.length);
    box.classList.add("ready");
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
