// Poll a batch's status while it is being processed and reload the page when it is done.
// Loaded as a file (not inline) so the Content-Security-Policy can forbid inline scripts.
(function () {
  var box = document.getElementById("batch-progress");
  if (!box || box.hidden) return;
  var bar = box.querySelector("progress"), note = box.querySelector(".note");
  function poll() {
    fetch(box.dataset.url, {credentials: "same-origin"}).then(function (r) { return r.json(); }).then(function (s) {
      // No value: an indeterminate bar, for work that reports no share done (one transaction).
      if (s.progress) { bar.value = s.progress; } else { bar.removeAttribute("value"); }
      note.textContent = s.note;
      if (s.done) { window.location.reload(); } else { setTimeout(poll, 1000); }
    }).catch(function () { setTimeout(poll, 3000); });
  }
  setTimeout(poll, 500);
})();
