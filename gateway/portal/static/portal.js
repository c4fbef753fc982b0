// The graduate portal's only script: a button that copies a grant token. The page works without it
// (the token sits in a read-only text box that can be selected by hand).
"use strict";
document.querySelectorAll("button.copy[data-copy]").forEach(function (button) {
  var source = document.getElementById(button.getAttribute("data-copy"));
  if (!source) { return; }
  button.hidden = false;
  button.addEventListener("click", function () {
    var done = function () { button.textContent = button.getAttribute("data-copied"); };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(source.value).then(done);
    } else {
      source.focus();
      source.select();
      if (document.execCommand("copy")) { done(); }
    }
  });
});
