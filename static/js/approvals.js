// A refusal (4xx) on the Approvals page comes back as the row with the reason in it:
// swap it in like a success, so the reason shows where the button was.
document.addEventListener("htmx:beforeSwap", (event) => {
  const status = event.detail.xhr.status;
  if (status >= 400 && status < 500 && event.detail.elt.closest("[data-swap-errors]")) {
    event.detail.shouldSwap = true;
    event.detail.isError = false;
  }
});
