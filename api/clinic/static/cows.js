// The COWS form's live total and band (progressive enhancement: the server scores on save).
(function () {
  "use strict";
  var form = document.getElementById("cows-form");
  if (!form) { return; }
  var bands = (form.getAttribute("data-bands") || "").split(";").filter(Boolean).map(function (b) {
    var p = b.split(":");
    return { min: parseInt(p[0], 10), max: parseInt(p[1], 10), name: p[2].replace(/_/g, " ") };
  });
  var box = document.getElementById("cows-total");
  var value = document.getElementById("cows-total-value");
  var answered = document.getElementById("cows-total-answered");
  var band = document.getElementById("cows-band");
  var wrap = document.getElementById("cows-band-wrap");
  function update() {
    var total = 0;
    var count = 0;
    var names = {};
    form.querySelectorAll("input[type=radio]").forEach(function (input) {
      names[input.name] = true;
      if (input.checked) { total += parseInt(input.value, 10); count += 1; }
    });
    value.textContent = String(total);
    answered.textContent = String(count);
    var found = bands.filter(function (b) { return total >= b.min && total <= b.max; })[0];
    band.textContent = found ? found.name : "below the mild band";
    wrap.hidden = count === 0;
  }
  box.hidden = false;
  form.addEventListener("change", update);
  update();
}());
