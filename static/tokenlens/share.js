// The share box's Copy button: copies the link from the readonly input beside it.
(function () {
  if (window.tokenlensShareCopy) return;  // the box may be swapped in again by htmx
  window.tokenlensShareCopy = true;
  document.addEventListener("click", function (event) {
    const button = event.target.closest && event.target.closest("button[data-copy]");
    if (!button) return;
    const input = document.getElementById(button.dataset.copy);
    const done = button.parentElement.querySelector(".copy-done");
    input.select();
    const said = function (text) { if (done) done.textContent = text; };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(input.value).then(
        function () { said("Copied"); },
        function () { said("Press Ctrl+C to copy"); }
      );
    } else {
      said(document.execCommand("copy") ? "Copied" : "Press Ctrl+C to copy");
    }
  });
})();
