// The template editor's live preview. As the user types (debounced), the text is
// rendered for the chosen record and sender: the subject, text body and any template
// error come back as an htmx partial, and the HTML body is posted to the sandboxed
// frame by a form submit targeting it (no script runs inside the frame; frames.js sizes it).
(function () {
  "use strict";

  var DELAY = 400;
  var PARTS = ["subject", "body_html", "body_text"];

  function start() {
    var form = document.getElementById("template-form");
    if (!form || !window.htmx) return;
    var frameSubmit = document.getElementById("preview-frame-submit");
    var previewUrl = form.dataset.previewUrl;
    var timer = null;

    function markInvalid() {
      PARTS.forEach(function (name) {
        var field = form.elements.namedItem(name);
        var slot = document.getElementById(name + "-error");
        if (!field || !slot) return;
        if (slot.textContent.trim()) field.setAttribute("aria-invalid", "true");
        else field.removeAttribute("aria-invalid");
      });
    }

    function refresh() {
      timer = null;
      htmx.ajax("POST", previewUrl, {
        source: form,
        target: "#preview-parts",
        swap: "innerHTML",
      }).then(markInvalid);
      form.requestSubmit(frameSubmit);
    }

    function schedule() {
      window.clearTimeout(timer);
      timer = window.setTimeout(refresh, DELAY);
    }

    form.addEventListener("input", function (event) {
      // The record search refreshes the record list; the list's swap refreshes the preview.
      if (event.target.id !== "record-search") schedule();
    });
    form.addEventListener("change", function (event) {
      if (event.target.tagName === "SELECT") schedule();
    });
    document.body.addEventListener("htmx:afterSwap", function (event) {
      if (event.detail.target && event.detail.target.id === "preview-record") schedule();
    });

    refresh();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
