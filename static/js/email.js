// The email page: load remote images on request (frames.js sizes the body frame).
(function () {
  "use strict";

  function setUp() {
    var frame = document.querySelector("iframe.email-frame");
    if (!frame) return;

    var load = document.querySelector("[data-load-images]");
    if (!load) return;
    load.addEventListener("click", function (event) {
      event.preventDefault();
      frame.src = load.getAttribute("data-frame-src");
      var status = document.querySelector("[data-images-status]");
      if (status) {
        // The link goes away with the notice: keep the keyboard's place on the notice.
        var note = document.createElement("p");
        note.tabIndex = -1;
        note.textContent = "Remote images are shown.";
        status.replaceChildren(note);
        note.focus();
      }
      if (window.history && window.history.replaceState) {
        window.history.replaceState(null, "", load.href);
      }
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", setUp);
  } else {
    setUp();
  }
})();
