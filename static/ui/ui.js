// Small progressive enhancements; every page reads the same without this file.
(function () {
  "use strict";
  var root = document.documentElement;

  function dark() {
    var set = root.dataset.theme;
    return set ? set === "dark" : window.matchMedia("(prefers-color-scheme: dark)").matches;
  }

  function sync(button) {
    var on = dark();
    button.setAttribute("aria-pressed", on ? "true" : "false");
    button.textContent = on ? "Light theme" : "Dark theme";
  }

  document.addEventListener("DOMContentLoaded", function () {
    var button = document.getElementById("theme-toggle");
    if (button) {
      button.hidden = false;
      sync(button);
      button.addEventListener("click", function () {
        root.dataset.theme = dark() ? "light" : "dark";
        try { localStorage.setItem("ui-theme", root.dataset.theme); } catch (e) { /* private mode */ }
        sync(button);
      });
    }
  });

  // A search of a remote modality can take the modality's whole timeout: say so on the button meanwhile
  // (given back when the page is shown again from the browser's history).
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var button = form.matches && form.matches(".qr-form") && form.querySelector("button[type=submit]");
    if (button) {
      button.dataset.label = button.textContent;
      button.textContent = "Searching…";
      button.setAttribute("aria-disabled", "true");
    }
  });
  window.addEventListener("pageshow", function () {
    document.querySelectorAll(".qr-form button[data-label]").forEach(function (button) {
      button.textContent = button.dataset.label;
      button.removeAttribute("aria-disabled");
    });
  });

  // The Series button of a query answer opens its series, and a second click closes them (aria-expanded).
  document.addEventListener("htmx:beforeRequest", function (event) {
    var link = event.detail.elt;
    if (!link.matches || !link.matches(".qr-actions a[aria-controls]")) return;
    var target = document.getElementById(link.getAttribute("aria-controls"));
    if (target && target.children.length) {
      event.preventDefault();
      target.innerHTML = "";
      link.setAttribute("aria-expanded", "false");
    }
  });
  document.addEventListener("htmx:afterSwap", function (event) {
    var id = event.detail.target && event.detail.target.id;
    var link = id && document.querySelector('.qr-actions a[aria-controls="' + id + '"]');
    if (link) link.setAttribute("aria-expanded", "true");
  });

  // A thumbnail the server cannot render (a broken file, an unsupported syntax) becomes a grey tile that
  // says so, as the server's own tile of a series without images.
  function tileInstead(img) {
    var tile = document.createElement("span");
    tile.className = (img.classList.contains("thumb") ? "thumb" : "preview") + " placeholder missing";
    tile.textContent = "No preview";
    img.replaceWith(tile);
  }
  document.addEventListener("error", function (event) {
    var img = event.target;
    if (img.tagName === "IMG" && (img.classList.contains("thumb") || img.classList.contains("preview"))) {
      tileInstead(img);
    }
  }, true);
  // and one that failed before this script ran (deferred: a big page's preview can fail while it is parsed)
  document.querySelectorAll("img.thumb, img.preview").forEach(function (img) {
    if (img.complete && img.naturalWidth === 0 && img.getAttribute("src")) tileInstead(img);
  });
})();
