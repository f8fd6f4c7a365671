/* dlncheck report: the script every page shares (report.js at the report's root) */
(function () {
  var open = false;
  document.getElementById("expand-all").addEventListener("click", function () {
    open = !open;
    document.querySelectorAll("details").forEach(function (d) { d.open = open; });
    this.textContent = open ? "collapse all" : "expand all";
  });
  var menu = document.querySelector("header.menu");
  function heights() {
    var root = document.documentElement.style, bar = document.querySelector(".filters");
    root.setProperty("--menu-h", (getComputedStyle(menu).position === "sticky" ? menu.offsetHeight : 0) + "px");
    if (bar) { root.setProperty("--filters-h", bar.offsetHeight + "px"); }
  }
  heights();
  window.addEventListener("resize", heights);
})();
