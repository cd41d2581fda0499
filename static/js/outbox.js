// Grow the message's body frame to its content, so the page scrolls instead of the
// frame. The frame is same-origin (sandbox with allow-same-origin, no scripts inside).
function fitFrame(frame) {
  try {
    const doc = frame.contentDocument;
    // offsetHeight, not scrollHeight: the latter is never less than the frame itself.
    if (doc && doc.documentElement && doc.URL !== "about:blank") {
      frame.style.height = `${doc.documentElement.offsetHeight + 4}px`;
    }
  } catch (error) {
    // A frame we may not read keeps its stylesheet height.
  }
}

document.querySelectorAll("iframe.outbox-frame").forEach((frame) => {
  frame.addEventListener("load", () => fitFrame(frame));
  if (frame.contentDocument && frame.contentDocument.readyState === "complete") {
    fitFrame(frame);
  }
});
