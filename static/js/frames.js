// Sandboxed body frames marked data-fit-content take the height of their content, so
// the page scrolls instead of the frame: on every load (the first, a new src, a form
// posted into the frame, a frame swapped in by htmx), as images arrive, and when the
// window is resized. The frames are same-origin (allow-same-origin, never
// allow-scripts), so the page can measure their document; nothing runs inside them.
// A frame's stylesheet (min-height, max-height) bounds the height.
(function () {
  "use strict";

  var SELECTOR = "iframe[data-fit-content]";

  function fit(frame) {
    var doc;
    try {
      doc = frame.contentDocument;
    } catch (error) {
      return; // not readable: the stylesheet's height and a scrollbar stay
    }
    if (!doc || !doc.body || doc.URL === "about:blank") return;
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

  // A frame's load event does not bubble: catch it on the way down.
  document.addEventListener(
    "load",
    function (event) {
      if (event.target instanceof HTMLIFrameElement && event.target.matches(SELECTOR)) {
        watch(event.target);
      }
    },
    true
  );

  function fitAll() {
    document.querySelectorAll(SELECTOR).forEach(function (frame) {
      var doc = frame.contentDocument;
      if (doc && doc.readyState === "complete") watch(frame); // loaded before this ran
    });
  }

  var pending;
  window.addEventListener("resize", function () {
    window.clearTimeout(pending);
    pending = window.setTimeout(function () {
      document.querySelectorAll(SELECTOR).forEach(fit);
    }, 100);
  });

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", fitAll);
  else fitAll();
})();
