// The email page: size the body frame to its content, and load remote images on request.
// The frame is same-origin (allow-same-origin, never allow-scripts), so the page can
// measure its document; nothing runs inside it.
(function () {
  "use strict";

  function fit(frame) {
    var doc;
    try {
      doc = frame.contentDocument;
    } catch (error) {
      return; // not readable: the stylesheet's height and a scrollbar stay
    }
    if (!doc || !doc.documentElement || !doc.body) return;
    // The body's own height (the root element is never shorter than the frame), so
    // that the frame shrinks to a short message as well as grows to a long one.
    var height = Math.ceil(doc.body.scrollHeight);
    if (height > 0) frame.style.height = height + 2 + "px";
  }

  function watch(frame) {
    fit(frame);
    var doc = frame.contentDocument;
    if (!doc) return;
    // Images change the height as they arrive.
    Array.prototype.forEach.call(doc.images || [], function (image) {
      if (!image.complete) image.addEventListener("load", function () { fit(frame); });
    });
  }

  function setUp() {
    var frame = document.querySelector("iframe.email-frame");
    if (!frame) return;
    frame.addEventListener("load", function () { watch(frame); });
    var doc = frame.contentDocument;
    if (doc && doc.readyState === "complete" && doc.URL !== "about:blank") watch(frame);
    var pending;
    window.addEventListener("resize", function () {
      window.clearTimeout(pending);
      pending = window.setTimeout(function () { fit(frame); }, 100);
    });

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
