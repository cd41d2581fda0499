// Bulk send pages (loaded with defer; no inline script under the CSP).
// - The wizard's "Send to N contacts" posts once: a second click while the first post
//   is on its way does nothing (the server also answers a repeat with the same job).
// (The sample frames grow to their content by frames.js.)
(function () {
  "use strict";

  document.addEventListener("submit", function (event) {
    var form = event.target;
    var button = event.submitter;
    if (!form.matches("form[data-start-once]") || !button || button.value !== "start") {
      return;
    }
    if (form.dataset.starting) {
      event.preventDefault();
      return;
    }
    form.dataset.starting = "1";
    button.setAttribute("aria-disabled", "true");
  });

  // Back to a page kept in the browser's cache: the form may be sent again (the server
  // answers the same start token with the job it already started).
  window.addEventListener("pageshow", function () {
    document.querySelectorAll("form[data-start-once]").forEach(function (form) {
      delete form.dataset.starting;
      form.querySelectorAll("[aria-disabled]").forEach(function (button) {
        button.removeAttribute("aria-disabled");
      });
    });
  });
})();
