// The compose page: suggestion lists (combobox: arrows, Enter, Escape), the regarding
// record picker, the sender's approval note, attachments by picker or drag and drop
// (XHR upload with a progress bar per file; the first upload saves the draft), and
// fragments swapped by htmx that also carry 4xx answers (refusals in words).
(function () {
  "use strict";

  const form = document.getElementById("compose");
  if (!form) return;
  const statusRegion = document.getElementById("compose-status");
  const csrf = form.querySelector("[name=csrfmiddlewaretoken]").value;

  function announce(text) {
    statusRegion.textContent = "";
    window.setTimeout(function () { statusRegion.textContent = text; }, 50);
  }

  // A saved draft lives at its edit URL; a refused send is answered at the old URL.
  function settle(editUrl) {
    if (!editUrl) return;
    // (form.action would be the buttons named "action")
    form.setAttribute("action", editUrl);
    form.dataset.editUrl = editUrl;
    if (window.location.pathname !== editUrl) window.history.replaceState(null, "", editUrl);
  }
  settle(form.dataset.editUrl);

  // --- sender: say why an unapproved address cannot send ----------------------------
  const sender = form.querySelector("[data-sender]");
  const senderNote = document.getElementById("sender-note");
  if (sender && senderNote) {
    sender.addEventListener("change", function () {
      senderNote.textContent = sender.selectedOptions[0].dataset.note || "";
    });
  }

  // --- comboboxes ----------------------------------------------------------------------
  function optionsOf(list) {
    return Array.from(list.querySelectorAll('[role="option"]'));
  }

  function activeIndex(list) {
    return optionsOf(list).findIndex(function (o) { return o.getAttribute("aria-selected") === "true"; });
  }

  function openList(input, list) {
    list.hidden = false;
    input.setAttribute("aria-expanded", "true");
  }

  function closeList(input, list) {
    list.hidden = true;
    input.setAttribute("aria-expanded", "false");
    input.removeAttribute("aria-activedescendant");
    optionsOf(list).forEach(function (o) { o.setAttribute("aria-selected", "false"); });
  }

  function setActive(input, list, index) {
    const options = optionsOf(list);
    options.forEach(function (o, i) { o.setAttribute("aria-selected", i === index ? "true" : "false"); });
    const option = options[index];
    if (option) {
      input.setAttribute("aria-activedescendant", option.id);
      option.scrollIntoView({ block: "nearest" });
    }
  }

  const regardingType = form.querySelector("[data-regarding-type]");
  const regardingId = form.querySelector("[data-regarding-id]");
  const regardingChosen = form.querySelector("[data-regarding-chosen]");
  const regardingLabel = form.querySelector("[data-regarding-label]");

  function choose(input, list, option) {
    if (input.id === "regarding-search") {
      regardingType.value = option.dataset.type;
      regardingId.value = option.dataset.id;
      regardingLabel.textContent = option.dataset.label;
      regardingChosen.hidden = false;
      input.value = "";
      announce("Regarding " + option.dataset.label);
    } else {
      // Replace the address being typed (after the last separator) with the choice.
      const match = input.value.match(/^(.*[,;])[^,;]*$/);
      const before = match ? match[1] + " " : "";
      input.value = before + option.dataset.value + ", ";
      announce("Added " + option.dataset.value);
    }
    closeList(input, list);
    input.focus();
  }

  form.querySelectorAll('[role="combobox"]').forEach(function (input) {
    const list = document.getElementById(input.getAttribute("aria-controls"));
    input.addEventListener("keydown", function (event) {
      const options = optionsOf(list);
      const isOpen = !list.hidden && options.length > 0;
      const current = activeIndex(list);
      if (event.key === "ArrowDown" || event.key === "ArrowUp") {
        if (!options.length) return;
        event.preventDefault();
        openList(input, list);
        const step = event.key === "ArrowDown" ? 1 : -1;
        const start = current < 0 && step < 0 ? 0 : current;
        setActive(input, list, (start + step + options.length) % options.length);
      } else if (event.key === "Enter" && isOpen && current >= 0) {
        event.preventDefault();
        choose(input, list, options[current]);
      } else if (event.key === "Escape" && isOpen) {
        event.preventDefault();
        closeList(input, list);
      }
    });
    input.addEventListener("blur", function () {
      window.setTimeout(function () {
        if (document.activeElement !== input) closeList(input, list);
      }, 150);
    });
    // Keep the focus in the input while an option is clicked.
    list.addEventListener("mousedown", function (event) { event.preventDefault(); });
    list.addEventListener("click", function (event) {
      const option = event.target.closest('[role="option"]');
      if (option) choose(input, list, option);
    });
  });

  const clear = form.querySelector("[data-regarding-clear]");
  if (clear) {
    clear.addEventListener("click", function () {
      regardingType.value = "";
      regardingId.value = "";
      regardingLabel.textContent = "";
      regardingChosen.hidden = true;
      document.getElementById("regarding-search").focus();
      announce("No record chosen");
    });
  }

  // --- htmx: suggestion lists, template insertion, refusals in fragments -----------------
  let focusInsert = false;
  document.body.addEventListener("htmx:beforeRequest", function (event) {
    if (event.detail.elt.matches && event.detail.elt.matches("[data-insert-template]")) focusInsert = true;
  });
  document.body.addEventListener("htmx:beforeSwap", function (event) {
    const status = event.detail.xhr.status;
    if (status >= 400 && status < 500 && form.contains(event.detail.target)) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });
  document.body.addEventListener("htmx:afterSwap", function (event) {
    const list = event.detail.target;
    if (list.getAttribute && list.getAttribute("role") === "listbox") {
      const input = form.querySelector('[aria-controls="' + list.id + '"]');
      const count = optionsOf(list).length;
      if (count && document.activeElement === input) {
        openList(input, list);
        announce(count + (count === 1 ? " suggestion" : " suggestions") + ": use the arrow keys");
      } else {
        closeList(input, list);
      }
    }
  });
  document.body.addEventListener("htmx:afterSettle", function () {
    if (!focusInsert) return;
    focusInsert = false;
    const button = form.querySelector("[data-insert-template]");
    if (button) button.focus();
    const said = form.querySelector("#template-error, .template-note");
    if (said) announce(said.textContent);
  });

  // --- attachments -------------------------------------------------------------------
  const dropzone = form.querySelector("[data-dropzone]");
  if (!dropzone) return;
  const fileInput = form.querySelector("[data-file-input]");
  const uploads = form.querySelector("[data-upload-list]");
  const attached = document.getElementById("attachment-list");
  const maxBytes = parseInt(form.dataset.maxBytes, 10);
  let draftSaved = null;

  function ensureDraft() {
    if (form.dataset.uploadUrl) return Promise.resolve(form.dataset.uploadUrl);
    if (draftSaved) return draftSaved;
    const data = new FormData(form);
    data.set("action", "save");
    draftSaved = fetch(form.getAttribute("action"), {
      method: "POST",
      body: data,
      credentials: "same-origin",
      headers: { "X-Compose-Save": "1", "X-CSRFToken": csrf, Accept: "application/json" },
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (body) {
        if (!response.ok) throw new Error(body.error || "The draft could not be saved.");
        form.dataset.uploadUrl = body.upload_url;
        settle(body.edit_url);
        const forwarded = form.querySelector("[data-forward-files]");
        if (forwarded) forwarded.remove();
        if (body.attachments_html) {
          attached.insertAdjacentHTML("beforeend", body.attachments_html);
          window.htmx.process(attached);
        }
        return body.upload_url;
      });
    }).catch(function (error) {
      draftSaved = null;
      throw error;
    });
    return draftSaved;
  }

  function failed(item, bar, text) {
    if (bar) bar.remove();
    item.classList.add("failed");
    item.querySelector(".upload-state").textContent = text;
    announce(text);
  }

  function upload(file) {
    const item = document.createElement("li");
    item.className = "upload";
    const name = document.createElement("span");
    name.className = "filename";
    name.textContent = file.name;
    const bar = document.createElement("progress");
    bar.max = 100;
    bar.value = 0;
    bar.setAttribute("aria-label", "Uploading " + file.name);
    const state = document.createElement("span");
    state.className = "upload-state";
    item.append(name, bar, state);
    uploads.append(item);
    if (file.size > maxBytes) {
      failed(item, bar, file.name + " is larger than the limit of " + maxBytes + " bytes; it was not added.");
      return;
    }
    ensureDraft().then(function (url) {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", url);
      xhr.setRequestHeader("X-CSRFToken", csrf);
      xhr.upload.addEventListener("progress", function (event) {
        if (event.lengthComputable) bar.value = Math.round((100 * event.loaded) / event.total);
      });
      xhr.addEventListener("load", function () {
        if (xhr.status === 201) {
          item.remove();
          attached.insertAdjacentHTML("beforeend", xhr.responseText);
          window.htmx.process(attached.lastElementChild);
          const reused = attached.lastElementChild.querySelector(".stored");
          announce("Added " + file.name + (reused ? " (already stored)" : ""));
        } else {
          failed(item, bar, file.name + ": " + (xhr.responseText || "the upload was refused"));
        }
      });
      xhr.addEventListener("error", function () {
        failed(item, bar, file.name + ": the upload did not reach the server; try again.");
      });
      const data = new FormData();
      data.append("file", file);
      xhr.send(data);
    }).catch(function (error) {
      failed(item, bar, file.name + " was not added: " + error.message);
    });
  }

  fileInput.addEventListener("change", function () {
    Array.from(fileInput.files).forEach(upload);
    fileInput.value = "";
  });
  dropzone.addEventListener("dragover", function (event) {
    event.preventDefault();
    dropzone.classList.add("dragging");
  });
  dropzone.addEventListener("dragleave", function () { dropzone.classList.remove("dragging"); });
  dropzone.addEventListener("drop", function (event) {
    event.preventDefault();
    dropzone.classList.remove("dragging");
    Array.from(event.dataTransfer.files).forEach(upload);
  });
})();
